"""The README's generated blocks: each lies between two marker lines and is rewritten there only, so that
everything outside the markers stays as a person wrote it.

Examples::

    from advlogits.release.readme import Markers, rewrite_block
    rewrite_block("README.md", block, Markers("<!-- cite:start -->", "<!-- cite:end -->", "make cite"))
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from ..fileio import atomic_write_bytes


class ResultsError(RuntimeError):
    """A build's results cannot be recorded or shown (missing, old or out-of-date build, a README without its
    markers); the message says what to run."""


class Markers(NamedTuple):
    """The lines around a generated block, and the command that writes between them."""

    start: str  # e.g. "<!-- results:start -->"
    end: str  # e.g. "<!-- results:end -->"
    command: str  # e.g. "make results"


def readme_block(text: str, markers: Markers) -> str:
    """The block between ``markers`` in ``text``, markers included; ResultsError unless there is one of each."""
    start, end = text.find(markers.start), text.find(markers.end)
    if start < 0 or end < start or text.count(markers.start) != 1 or text.count(markers.end) != 1:
        raise ResultsError(
            f"README.md must hold one {markers.start} line and, after it, one {markers.end} line: "
            f"`{markers.command}` writes between them"
        )
    return text[start : end + len(markers.end)]


def replace_block(text: str, block: str, markers: Markers) -> str:
    """``text`` with its block between ``markers`` replaced by ``block``; everything outside them is kept as it is."""
    return text.replace(readme_block(text, markers), block, 1)


def rewrite_block(path: str | Path, block: str, markers: Markers) -> Path:
    """Replace the block between ``markers`` in the file at ``path`` by ``block`` (atomically, and only when it
    changes); returns the path."""
    path = Path(path)
    text = path.read_text(encoding="utf8")
    new = replace_block(text, block, markers)
    if new != text:
        atomic_write_bytes(new.encode("utf8"), path)
    return path


def rewrite_main(prog: str, doc: str, rewrite: Callable[[str], Path], argv: Sequence[str] | None = None) -> int:
    """The command line of a README block's writer: ``--root``, then ``rewrite(root)``; 1 with one line when it
    cannot (a `ResultsError`), else 0 and the path written."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0])
    parser.add_argument("--root", default=".", help="the repository (default: the current folder)")
    args = parser.parse_args(argv)
    try:
        path = rewrite(args.root)
    except ResultsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"==> wrote {path}")
    return 0
