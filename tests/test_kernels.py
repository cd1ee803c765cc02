"""papermill's engine ``advlogits`` (`advlogits.kernels`): kernels on IPC sockets, so that chapters started side by
side cannot take each other's TCP ports; the build, `advlogits chapter` and the tests' chapter runs use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from papermill.engines import papermill_engines

from advlogits import buildfiles, kernels

from helpers import CHAPTERS, execute_chapter

# A cell that writes its own kernel's transport and the names of the sockets it bound.
PROBE = """
import json
from ipykernel.kernelapp import IPKernelApp
app = IPKernelApp.instance()
open(OUT, "w").write(json.dumps({"transport": app.transport, "ip": app.ip}))
"""


def _run_probe(tmp_path: Path, *engine: str) -> dict[str, str]:
    """Execute a one-cell notebook that reports its kernel's transport, with papermill and ``engine`` flags."""
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    out = tmp_path / "transport.json"
    nb.cells = [nbformat.v4.new_code_cell(f"OUT = {str(out)!r}\n{PROBE}")]
    nbformat.write(nb, tmp_path / "probe.ipynb")
    proc = subprocess.run(
        [sys.executable, "-m", "papermill", str(tmp_path / "probe.ipynb"), str(tmp_path / "done.ipynb")]
        + ["-k", "python3", "--no-progress-bar", *engine],
        capture_output=True,
        text=True,
        env={**os.environ, "JUPYTER_PREFER_ENV_PATH": "1"},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_papermill_finds_the_engine_by_its_name():
    assert papermill_engines.get_engine(buildfiles.PAPERMILL_ENGINE) is kernels.ChapterEngine


@pytest.mark.skipif(os.name == "nt", reason="IPC sockets do not exist on Windows; the engine keeps TCP there")
def test_the_engine_starts_its_kernel_on_ipc_sockets_where_papermill_alone_uses_tcp(tmp_path):
    assert _run_probe(tmp_path)["transport"] == "tcp", "papermill's own engine: TCP ports"
    ours = _run_probe(tmp_path, "--engine", buildfiles.PAPERMILL_ENGINE)
    assert ours["transport"] == "ipc"
    name = Path(ours["ip"]).name
    assert name.startswith("kernel-") and name.endswith("-ipc"), "named after its kernel's connection file"
    assert not list(Path(ours["ip"]).parent.glob(Path(ours["ip"]).name + "-*")), "its socket files removed at the end"


def test_every_chapter_command_names_the_engine(tmp_path):
    """The build's recipe, `advlogits chapter` (through `papermill_command`) and the tests' chapter runs."""
    root = Path(__file__).resolve().parents[1]
    recipe = (root / "Makefile").read_text()
    assert f"-m papermill $< $(EXEC_DIR)/.partial/$*.ipynb -k python3 --engine {buildfiles.PAPERMILL_ENGINE}" in recipe
    cmd = buildfiles.papermill_command(root, "03_sample_confidence", tmp_path, {"profile": "smoke"})
    assert cmd[cmd.index("--engine") + 1] == buildfiles.PAPERMILL_ENGINE
    calls: list[list[str]] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
        execute_chapter(CHAPTERS[0], tmp_path / "out.ipynb", env={}, profile="smoke")
    assert calls[0][calls[0].index("--engine") + 1] == buildfiles.PAPERMILL_ENGINE
