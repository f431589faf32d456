"""Atomic file writes (a reader or a resumed run never sees a half-written output), and the user's paths."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yields a temporary path next to `path`; renames it into place only if the block succeeds."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    suffix = os.path.splitext(path)[1]  # keeps the extension, so writers that infer the format still work
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    # mkstemp makes the file owner-only; outputs get the permissions a plain open() would give.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: str, data: Any) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(data, f, indent=2)


def user_path(path: str) -> str:
    """A path flag's value with `~` expanded; every tool reads its path flags through this (or `expand_path`).

    A shell expands `~` only at the start of a word, so `--export-dir=~/x`, a quoted glob and a default
    reach the program as typed, and Python's file functions would make a literal `./~/x` of them. The
    path is otherwise kept as given (spaces included; a relative one stays relative).
    """
    return os.path.expanduser(path) if path else path


def expand_path(path: str) -> str:
    """`user_path`, made absolute; "" (an unset option) stays "".

    For paths stored in a run's config.json, which the other tools read from other working directories.
    """
    return os.path.abspath(user_path(path)) if path else path


def sha256(path: str) -> str:
    """The file's SHA-256, hex, read in 1 MiB blocks (archives and model files are large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
