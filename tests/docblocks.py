"""The fenced code blocks of a Markdown page, as the docs tests read them (tests/test_docs.py, tests/test_readme.py)."""

from __future__ import annotations


def code_blocks(text: str) -> list[tuple[str, list[str]]]:
    """(the heading above it, its lines) for each fenced block; a line ending in `\\` is joined to the next."""
    blocks, heading, current = [], "", None
    for line in text.splitlines():
        if line.startswith("```"):
            if current is None:
                current = []
            else:
                blocks.append((heading, _joined(current)))
                current = None
        elif current is not None:
            current.append(line)
        elif line.startswith("#"):
            heading = line.strip()
    return blocks


def _joined(lines: list[str]) -> list[str]:
    out, pending = [], ""
    for line in lines:
        line = line.rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append((pending + line).strip())
        pending = ""
    return [line for line in out if line]
