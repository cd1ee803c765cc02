"""How the command line fails: one line on stderr and an exit status, 2 for bad input (before any compute), 1 for a
failed run (`advlogits.cli.main` adds 130 for Ctrl-C)."""

from __future__ import annotations

import sys
from typing import NoReturn

from ..paths import SettingError

LIBRARY = __package__.rpartition(".")[0]  # "advlogits": the package whose modules `bad_input` looks up


def fail(message: str) -> NoReturn:
    """Refuse bad input: ``advlogits: error: <message>`` on stderr, exit status 2."""
    print(f"advlogits: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def one_line(err: BaseException) -> str:
    """An exception as one line: its message's first line (a worker's error arrives with its traceback)."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def bad_input(err: Exception) -> bool:
    """Whether ``err`` is the user's to fix (a path setting, a store that cannot be used): exit status 2. A
    `StoreError` can come only from a verb that imported `advlogits.fileio`, so this asks it only then."""
    fileio = sys.modules.get(f"{LIBRARY}.fileio")
    return isinstance(err, SettingError) or (fileio is not None and isinstance(err, fileio.StoreError))
