"""The chapters' hidden Colab cell: inside Google Colab it installs the library from the book's repository,
elsewhere it does nothing. Its one setting, the repository's address, is written into every chapter by
``make repository REPO_URL=...`` (``python -m advlogits.release.launch URL chapters/*.ipynb``)."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from pathlib import Path

from ..checks import fail
from ..fileio import atomic_write_bytes

LINE = re.compile(r'^REPOSITORY = "[^"]*"', re.MULTILINE)  # the Colab cell's setting
MARK = "# Inside Google Colab only"  # the first line of the Colab cell


def colab_cell(notebook: dict) -> dict:
    """The notebook's Colab cell (a code cell starting with `MARK`); a clear error if it has none."""
    cells = [c for c in notebook["cells"] if c["cell_type"] == "code" and "".join(c["source"]).startswith(MARK)]
    if len(cells) != 1:
        fail(
            "notebook",
            f"a chapter with one Colab cell (a code cell starting {MARK!r})",
            len(cells),
            shown=f"{len(cells)} such cells",
        )
    return cells[0]


def set_repository(path: str | Path, url: str) -> bool:
    """Write ``url`` into the Colab cell of the notebook at ``path`` (atomically); True if it changed."""
    if not re.fullmatch(r"https://[^\s\"']+", url):
        fail("url", "the repository's https address, e.g. https://github.com/OWNER/REPO", url)
    path = Path(path)
    notebook = json.loads(path.read_text())
    cell = colab_cell(notebook)
    source = "".join(cell["source"])
    new = LINE.sub(f'REPOSITORY = "{url}"', source, count=1)
    if new == source:
        return False
    cell["source"] = new.splitlines(keepends=True)
    atomic_write_bytes((json.dumps(notebook, indent=1, ensure_ascii=False) + "\n").encode(), path)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m advlogits.release.launch", description=__doc__)
    parser.add_argument("url", help="the repository's address, e.g. https://github.com/OWNER/REPO")
    parser.add_argument("notebooks", nargs="+", help="the chapters to update")
    args = parser.parse_args(argv)
    try:
        changed = [p for p in args.notebooks if set_repository(p, args.url)]
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    print(f"{len(changed)} of {len(args.notebooks)} chapters now install from {args.url} in Colab")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
