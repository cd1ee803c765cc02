"""The repository's hygiene: chapter notebooks committed clean, code a reader sees that fits the page, and one ruff
version everywhere it is named.

A chapter is committed as source: no outputs, no execution counts, no widget state and none of the run metadata
that Jupyter, JupyterLab or papermill write (the book is built from executed copies in ``_build/``). The check
reads the notebooks' JSON with the standard library alone, so that `make lint` and the pre-commit hook of
``.pre-commit-config.yaml`` can run this file as a script (every check below, on the notebooks it is given):

    python tests/test_hygiene.py chapters/*.ipynb

Ruff lints the chapters' code at the project's 120 characters (chapters/ruff.toml); the code a reader sees on a
page is held here to the book's code column, 88 characters, since only the cells' tags tell which code is shown.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
# Metadata that records a run rather than the chapter: the widgets' state, papermill's parameters and timings,
# the execution timings of JupyterLab and of the ExecuteTime extension.
RUN_METADATA = {"widgets", "papermill", "execution", "ExecuteTime"}
# Code of a cell with one of these tags is not on the page (a hide-input cell's code is, one click away).
NOT_SHOWN = {"remove-cell", "remove-input"}
PAGE_WIDTH = 88  # characters of code that the book's code column shows without scrolling sideways
CLEAR = "clear the chapters' outputs before committing (Jupyter: Edit > Clear Outputs of All Cells)"


def notebook_problems(path: str | Path) -> list[str]:
    """What keeps the notebook at ``path`` from being committed as a chapter's source (empty: nothing)."""
    path = Path(path)
    try:
        nb = json.loads(path.read_text(encoding="utf8"))
    except (OSError, ValueError) as err:
        return [f"{path}: not readable as a notebook ({err})"]
    problems = [f"{path}: notebook metadata {key!r}" for key in sorted(RUN_METADATA & set(nb.get("metadata", {})))]
    for number, cell in enumerate(nb.get("cells", []), start=1):
        where = f"{path}: cell {number} ({cell.get('cell_type')})"
        if cell.get("outputs"):
            problems.append(f"{where} has {len(cell['outputs'])} output(s)")
        if cell.get("execution_count") is not None:
            problems.append(f"{where} has execution count {cell['execution_count']}")
        problems += [f"{where} has metadata {key!r}" for key in sorted(RUN_METADATA & set(cell.get("metadata", {})))]
    return problems


def test_the_check_finds_what_a_run_leaves_in_a_notebook(tmp_path):
    run = {
        "cells": [
            {"cell_type": "code", "execution_count": 3, "metadata": {"execution": {}}, "outputs": [{}], "source": ""},
            {"cell_type": "markdown", "metadata": {}, "source": "text"},
        ],
        "metadata": {"widgets": {}, "kernelspec": {}},
    }
    clean = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "metadata": {"tags": []}, "outputs": [], "source": ""}
        ],
        "metadata": {"kernelspec": {}},
    }
    (tmp_path / "run.ipynb").write_text(json.dumps(run))
    (tmp_path / "clean.ipynb").write_text(json.dumps(clean))
    problems = notebook_problems(tmp_path / "run.ipynb")
    assert len(problems) == 4, problems
    assert any("'widgets'" in p for p in problems) and any("'execution'" in p for p in problems)
    assert any("output" in p for p in problems) and any("execution count 3" in p for p in problems)
    assert notebook_problems(tmp_path / "clean.ipynb") == []
    assert "not readable" in notebook_problems(tmp_path / "missing.ipynb")[0]


def test_every_chapter_is_committed_without_outputs_counts_or_run_metadata():
    assert CHAPTERS, "no chapters/*.ipynb found"
    problems = [p for path in CHAPTERS for p in notebook_problems(path)]
    assert not problems, CLEAR + ":\n" + "\n".join(problems)


def long_shown_lines(path: str | Path) -> list[str]:
    """The lines of code that the page of the chapter at ``path`` shows and that are wider than its code column."""
    nb = json.loads(Path(path).read_text(encoding="utf8"))
    long = []
    for number, cell in enumerate(nb["cells"], start=1):
        if cell["cell_type"] != "code" or NOT_SHOWN & set(cell["metadata"].get("tags", [])):
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        long += [
            f"{Path(path).name}: cell {number}, line {i}: {len(line)} characters"
            for i, line in enumerate(source.splitlines(), start=1)
            if len(line) > PAGE_WIDTH
        ]
    return long


def test_the_code_a_chapter_shows_fits_the_page(tmp_path):
    cells = [
        {"cell_type": "code", "metadata": {"tags": tags}, "source": source}
        for tags, source in [([], "x = 1\n" + "y" * 89), (["remove-cell"], "z" * 100), (["hide-input"], ["w" * 90])]
    ]
    (tmp_path / "page.ipynb").write_text(json.dumps({"cells": cells, "metadata": {}}))
    assert long_shown_lines(tmp_path / "page.ipynb") == [
        "page.ipynb: cell 1, line 2: 89 characters",
        "page.ipynb: cell 3, line 1: 90 characters",
    ]
    long = [line for path in CHAPTERS for line in long_shown_lines(path)]
    assert not long, f"code wider than the page's {PAGE_WIDTH} characters:\n" + "\n".join(long)


def ruff_pin_problem() -> str | None:
    """Why pre-commit's ruff is not the one the lock pins (which `make lint` runs), or None."""
    lock = re.search(r"^ruff==([\w.]+)$", (ROOT / "requirements" / "lock.txt").read_text(), re.M)
    if not lock:
        return "requirements/lock.txt pins no ruff: run `make lock`"
    config = (ROOT / ".pre-commit-config.yaml").read_text()
    rev = re.search(r"repo: https://github\.com/astral-sh/ruff-pre-commit\s+rev: v([\w.]+)", config)
    if not rev or rev.group(1) != lock.group(1):
        return f".pre-commit-config.yaml runs ruff {rev and rev.group(1)}, the lock pins {lock.group(1)}"
    return None


def test_pre_commit_runs_the_ruff_that_the_lock_pins():
    assert ruff_pin_problem() is None, ruff_pin_problem()


def main(paths: list[str]) -> int:
    """The checks of this file on the notebooks at ``paths``, as `make lint` and the pre-commit hook run them:
    each problem on a line of stderr; 1 if there is any."""
    unclean = [p for path in paths for p in notebook_problems(path)]
    wide = [
        f"code wider than the page's {PAGE_WIDTH} characters: {line}"
        for path in paths
        for line in long_shown_lines(path)
    ]
    pin = ruff_pin_problem()
    problems = unclean + wide + ([pin] if pin else [])
    for problem in problems:
        print(problem, file=sys.stderr)
    if unclean:
        print(CLEAR, file=sys.stderr)
    return 1 if problems else 0


def test_the_script_reports_every_problem_and_fails(tmp_path, capsys):
    source = "x" * (PAGE_WIDTH + 1)
    cell = {"cell_type": "code", "execution_count": 1, "metadata": {}, "outputs": [], "source": source}
    (tmp_path / "dirty.ipynb").write_text(json.dumps({"cells": [cell], "metadata": {}}))
    assert main([str(tmp_path / "dirty.ipynb")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].endswith("cell 1 (code) has execution count 1")
    assert err[1] == f"code wider than the page's {PAGE_WIDTH} characters: dirty.ipynb: cell 1, line 1: 89 characters"
    assert err[2] == CLEAR


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or [str(p) for p in CHAPTERS]))
