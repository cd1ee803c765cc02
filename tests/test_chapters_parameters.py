"""A papermill parameter the chapter does not declare (``-p epsilon 0.2`` for ``eps``) is refused in one line that
names it and the known ones, before any compute: by the chapter itself, so plain papermill by hand, ``advlogits
chapter`` and the Makefile all meet it."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

from advlogits.chapters.parameters import ParameterError, assigned_names, check_injected, unknown_parameters

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
PARAMETERS = 'profile: str = "cpu"  # a comment\ndevice: str = "auto"\nseed: int = 0\neps: "Optional[float]" = None\n'
INJECTED = '# Parameters\nprofile = "smoke"\nepsilon = 0.2\n'


def env() -> dict[str, str]:
    paths = [str(ROOT / "lib"), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "JUPYTER_PREFER_ENV_PATH": "1"}


def test_a_misspelled_parameter_is_named_with_the_known_ones():
    history = ["", "import sys", PARAMETERS, INJECTED, "check_injected()"]
    assert unknown_parameters(history) == (["epsilon"], ["profile", "device", "seed", "eps"])
    with pytest.raises(ParameterError) as caught:
        check_injected(history)
    line = str(caught.value)
    assert "\n" not in line
    assert "unknown parameter 'epsilon' (did you mean 'eps'?)" in line
    assert "parameters are profile, device, seed, eps;" in line


def test_declared_parameters_and_runs_without_papermill_pass():
    check_injected(["", PARAMETERS, '# Parameters\nprofile = "smoke"\neps = 0.2\n', "check_injected()"])
    check_injected(["", PARAMETERS, "check_injected()"])  # Jupyter or Colab: no injected cell
    check_injected(["", PARAMETERS, '# Parameters\nseed = 1\nPAPERMILL_INPUT_PATH = "in.ipynb"\n', "check_injected()"])
    check_injected()  # outside an IPython kernel: nothing to check
    # in a session that ran the cells twice, the last injected cell and the cell run before it count
    history = ["", PARAMETERS, INJECTED, "x = 1", PARAMETERS, "# Parameters\nseed = 3\n", "check_injected()"]
    check_injected(history)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_checks_its_parameters_before_anything_else(chapter):
    """Its parameters are read as papermill reads them, and the cell after them calls the check before any
    statement other than an import."""
    cells = [c for c in nbformat.read(chapter, as_version=4).cells if c.cell_type == "code"]
    (first,) = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    assert assigned_names(cells[first].source) == list(papermill.inspect_notebook(str(chapter)))
    statements = [s for s in ast.parse(cells[first + 1].source).body if not isinstance(s, (ast.Import, ast.ImportFrom))]
    assert ast.unparse(statements[0]) == "check_injected()", cells[first + 1].source


def test_a_hand_run_of_a_chapter_with_a_misspelled_parameter_stops_before_any_compute(tmp_path):
    """Plain papermill on chapter 3 at the smoke profile: the chapter stops at its check, the store untouched."""
    out, home = tmp_path / "out.ipynb", tmp_path / "store"
    proc = subprocess.run(
        [sys.executable, "-m", "papermill", str(ROOT / "chapters" / "03_sample_confidence.ipynb"), str(out)]
        + ["-k", "python3", "--cwd", str(ROOT / "chapters"), "--no-progress-bar"]
        + ["-p", "profile", "smoke", "-p", "device", "cpu", "-p", "epsilon", "0.2"],
        capture_output=True,
        text=True,
        env={**env(), "ADVLOGITS_HOME": str(home), "ADVLOGITS_EXECUTED_DIR": str(tmp_path / "executed")},
        timeout=300,
    )
    assert proc.returncode != 0
    refusals = [line for line in proc.stderr.splitlines() if line.startswith("ParameterError: ")]
    assert len(refusals) == 1 and "'epsilon' (did you mean 'eps'?)" in refusals[0], proc.stderr[-3000:]
    assert "profile, device, seed, eps, overrides" in refusals[0]
    assert not home.exists(), "nothing computed, nothing stored"


def test_in_a_papermill_kernel_the_check_sees_both_cells(tmp_path):
    """A tiny notebook of the chapters' shape run by papermill with a declared parameter: the kernel's history
    holds the parameters cell and papermill's cell right after it, and the run goes on."""
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    parameters = "%matplotlib inline\neps: float = 0.1\nn: int = 2"  # a magic too: the check reads it as Python
    check = [
        "import json",
        "from IPython import get_ipython",
        "from advlogits.chapters.parameters import check_injected, unknown_parameters",
        "check_injected()",
        "seen = unknown_parameters(get_ipython().history_manager.input_hist_parsed)",
        f"open({str(tmp_path / 'seen.json')!r}, 'w').write(json.dumps([seen, eps]))",
    ]
    nb.cells = [
        nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("\n".join(check)),
    ]
    nbformat.write(nb, tmp_path / "tiny.ipynb")
    proc = subprocess.run(
        [sys.executable, "-m", "papermill", str(tmp_path / "tiny.ipynb"), str(tmp_path / "out.ipynb")]
        + ["-k", "python3", "--no-progress-bar", "-p", "eps", "0.2"],
        capture_output=True,
        text=True,
        env=env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "seen.json").read_text()) == [[[], ["eps", "n"]], 0.2]
