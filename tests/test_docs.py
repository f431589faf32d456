"""The docs keep up with the code: every flag of every tool has a row in its page's flags table, and the
training commands of the README and docs/ never send runs of different shapes into one --output-dir."""

from __future__ import annotations

import argparse
import glob
import importlib
import os
import re
import shlex

import pytest

from docblocks import code_blocks
from pix2pix_tf.config import TrainConfig, config_from_args
from pix2pix_tf.train.checkpointing import network_shape

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md")))
# tool -> (the module whose main() builds its parser, the page, the heading of its flags table)
TABLES = {
    "train": ("pix2pix_tf.train.__main__", "docs/training.md", "## Flags"),
    "export": ("pix2pix_tf.deploy.export", "docs/export-and-serving.md", "### `export.py` flags"),
    "predict": ("pix2pix_tf.apps.predict", "docs/export-and-serving.md", "### `predict` flags"),
    "demo": ("pix2pix_tf.apps.demo", "docs/export-and-serving.md", "### Demo flags"),
    "evaluate": ("pix2pix_tf.evaluate.__main__", "docs/evaluation.md", "### `evaluate.py` flags"),
    "segmenter": ("pix2pix_tf.evaluate.segmenter", "docs/evaluation.md", "### Segmenter flags"),
}
TRAIN_COMMANDS = (("python", "train.py"), ("python", "-m", "pix2pix_tf.train"), ("pix2pix-train",))


class _Parsed(Exception):
    """Carries the parser a command's main() built, stopping it before it runs."""

    def __init__(self, parser: argparse.ArgumentParser):
        super().__init__()
        self.parser = parser


def tool_parser(module: str, monkeypatch) -> argparse.ArgumentParser:
    """The parser the tool's main() builds: caught at parse_args, since predict and the demo build it inside main()."""

    def catch(parser, *args, **kwargs):
        raise _Parsed(parser)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", catch)
    with pytest.raises(_Parsed) as parsed:
        importlib.import_module(module).main([])
    monkeypatch.undo()
    return parsed.value.parser


def parser_flags(parser: argparse.ArgumentParser) -> set[str]:
    """Its options (`--no-x` forms left out: they belong to `--x`) and positionals (as `INPUTS`), subcommands' too.

    argparse has no public list of a parser's arguments, hence `_actions`.
    """
    flags = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            flags |= {flag for sub in action.choices.values() for flag in parser_flags(sub)}
        elif isinstance(action, argparse._HelpAction):
            continue
        elif action.option_strings:
            flags |= {o for o in action.option_strings if o.startswith("--") and not o.startswith("--no-")}
        else:
            flags.add(action.dest.upper())
    return flags


def table_flags(page: str, heading: str) -> set[str]:
    """The flags named in the first column of the first table under `heading` (before the next heading)."""
    with open(os.path.join(REPO, page)) as f:
        lines = f.read().splitlines()
    assert heading in lines, f"{page} has no {heading!r} section: it holds a tool's flags table"
    rows = []
    for line in lines[lines.index(heading) + 1 :]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break
    first_column = " ".join(re.split(r"(?<!\\)\|", row)[1] for row in rows[2:])  # past the header and --- rows
    return set(re.findall(r"--[a-z0-9][a-z0-9-]*", first_column)) | set(re.findall(r"`([A-Z][A-Z_]+)`", first_column))


@pytest.mark.parametrize("tool", TABLES)
def test_every_flag_of_every_tool_has_a_row_in_its_docs_table(tool, monkeypatch):
    module, page, heading = TABLES[tool]
    flags, documented = parser_flags(tool_parser(module, monkeypatch)), table_flags(page, heading)
    missing, stale = sorted(flags - documented), sorted(documented - flags)
    assert not missing, f"{page}, table under {heading!r}: no row for {tool}'s {', '.join(missing)} (add one)"
    assert not stale, f"{page}, table under {heading!r}: {', '.join(stale)} is documented, but {tool} has no such flag"


def command_argv(line: str) -> list[str]:
    """A command line's words, without Colab's `!` and leading `NAME=value` environment settings."""
    argv = shlex.split(line.lstrip("!"), comments=True)
    while argv and re.fullmatch(r"[A-Z_]+=\S*", argv[0]):
        argv = argv[1:]
    return argv


def training_commands() -> list[tuple[str, list[str]]]:
    """(page, argv after the command) of every train command in a code block of the README and docs/."""
    found = []
    for page in PAGES:
        with open(os.path.join(REPO, page)) as f:
            for _, lines in code_blocks(f.read()):
                for argv in map(command_argv, lines):
                    prefix = next((p for p in TRAIN_COMMANDS if tuple(argv[: len(p)]) == p), None)
                    if prefix:
                        found.append((page, argv[len(prefix) :]))
    return found


def test_no_two_documented_runs_of_different_shapes_share_an_output_dir(monkeypatch):
    parser = tool_parser("pix2pix_tf.train.__main__", monkeypatch)
    commands = training_commands()
    assert len(commands) > 20, commands  # the docs' commands were found
    folders: dict[str, tuple[str, str, dict]] = {}
    for page, argv in commands:
        config = config_from_args(parser.parse_args(argv), TrainConfig)
        folder, shape, line = os.path.normpath(config.output_dir), network_shape(config), shlex.join(argv)
        first = folders.setdefault(folder, (page, line, shape))
        assert first[2] == shape, (
            f"{page}: train.py {line} trains in {folder}, where {first[0]}'s train.py {first[1]} trains networks of "
            "another shape (the second would stop at the resume check): give one of them its own --output-dir"
        )


def test_no_command_needs_the_development_folders():
    """A fresh clone has no ../shared (the development machine's datasets and judges)."""
    for page in PAGES:
        with open(os.path.join(REPO, page)) as f:
            for _, lines in code_blocks(f.read()):
                assert not [line for line in lines if "../shared" in line], f"{page}: a command uses ../shared"
