"""advlogits.release.editions: the student edition drops every gated solution and keeps everything else."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from advlogits.release.editions import strip_solutions

ROOT = Path(__file__).resolve().parents[1]


def _md(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def _code(text: str) -> dict:
    return {"cell_type": "code", "metadata": {}, "source": text, "outputs": [], "execution_count": None}


def test_every_cell_from_a_solution_start_to_its_end_goes_and_the_rest_stays():
    nb = {
        "cells": [
            _md("## Exercises"),
            _md("````{exercise} A (basic)\n:label: a\n````"),
            _md("````{solution-start} a\n:class: dropdown\n````"),
            _code("assert 1"),
            _md("Because.\n\n````{solution-end}\n````"),
            _md("````{exercise} B (advanced)\n````"),
            _md("````{solution-start} b\n````"),
            _code("x = 1"),
            _code("assert x"),
            _md("````{solution-end}\n````"),
            _md("after"),
        ]
    }
    assert strip_solutions(nb) == 2
    assert [c["source"] for c in nb["cells"]] == [
        "## Exercises",
        "````{exercise} A (basic)\n:label: a\n````",
        "````{exercise} B (advanced)\n````",
        "after",
    ]


@pytest.mark.parametrize(
    "cells, message",
    [
        (
            [_md("{solution-start} a"), _md("{solution-start} b"), _md("{solution-end}")],
            "a solution-start inside a solution",
        ),
        ([_md("{solution-end}")], "solution-end outside any solution"),
        ([_md("{solution-start} a"), _code("x")], "unclosed solution"),
    ],
)
def test_broken_gates_are_refused(cells, message):
    with pytest.raises(ValueError, match=message):
        strip_solutions({"cells": cells})


def test_every_chapter_loses_exactly_its_solutions(tmp_path):
    copies = []
    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        copy = tmp_path / path.name
        copy.write_text(path.read_text())
        copies.append(copy)
    proc = subprocess.run(
        [sys.executable, "-m", "advlogits.release.editions", *map(str, copies)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    for original, copy in zip(sorted((ROOT / "chapters").glob("*.ipynb")), copies):
        before, after = json.loads(original.read_text()), json.loads(copy.read_text())
        text = "".join("".join(c["source"]) for c in after["cells"])
        assert "{solution-start}" not in text and "{exercise}" in text
        assert not any("solution" in c["metadata"].get("tags", []) for c in after["cells"])
        assert len(after["cells"]) < len(before["cells"])
    assert proc.stdout.startswith("student edition: ") and "solutions removed from 5 chapters" in proc.stdout
