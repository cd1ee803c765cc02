"""The student edition of the book: the same chapters without the exercises' solutions.

Each solution is gated (sphinx-exercise's ``{solution-start}`` ... ``{solution-end}``, code cells between them), so
the edition drops every cell from a solution's start to its end, code and explanation alike, from the staged copies
of the executed chapters (``make book STUDENT=1``). The exercises stay; nothing else changes.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from ..checks import fail
from ..fileio import atomic_write_bytes

START, END = "{solution-start}", "{solution-end}"


def strip_solutions(notebook: dict) -> int:
    """Remove every gated solution from ``notebook`` (in place); returns how many were removed."""
    kept, removed, inside = [], 0, False
    for cell in notebook["cells"]:
        text = "".join(cell["source"]) if cell["cell_type"] == "markdown" else ""
        if START in text:
            if inside:
                fail(
                    "notebook",
                    f"solutions that each end ({END}) before the next starts",
                    "a nested solution",
                    shown="a solution-start inside a solution",
                )
            inside, removed = True, removed + 1
        if not inside:
            kept.append(cell)
        if END in text:
            if not inside:
                fail(
                    "notebook",
                    f"a {END} only after a {START}",
                    "an unmatched solution-end",
                    shown="a solution-end outside any solution",
                )
            inside = False
    if inside:
        fail("notebook", f"every {START} closed by a {END}", "an unclosed solution", shown="an unclosed solution")
    notebook["cells"] = kept
    return removed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m advlogits.release.editions", description=__doc__)
    parser.add_argument("notebooks", nargs="+", help="staged chapter copies, rewritten in place")
    args = parser.parse_args(argv)
    total = 0
    for path in map(Path, args.notebooks):
        notebook = json.loads(path.read_text())
        try:
            total += strip_solutions(notebook)
        except ValueError as err:
            parser.exit(2, f"error: {path}: {err}\n")
        atomic_write_bytes((json.dumps(notebook, indent=1, ensure_ascii=False) + "\n").encode(), path)
    print(f"student edition: {total} solutions removed from {len(args.notebooks)} chapters")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
