"""papermill's engine ``advlogits`` (`advlogits.kernels`): kernels on IPC sockets, so that chapters started side by
side cannot take each other's TCP ports; the build, `advlogits chapter` and the tests' chapter runs use it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
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


def _probe(folder: Path) -> Path:
    """A one-cell notebook in ``folder`` that writes its kernel's transport and socket path to transport.json."""
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    nb.cells = [nbformat.v4.new_code_cell(f"OUT = {str(folder / 'transport.json')!r}\n{PROBE}")]
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / "probe.ipynb")
    return folder / "probe.ipynb"


def _papermill(notebook: Path, *engine: str) -> subprocess.Popen:
    """papermill executing ``notebook`` from the folder the chapters run in (``--cwd``), with ``engine`` flags."""
    return subprocess.Popen(
        [sys.executable, "-m", "papermill", str(notebook), str(notebook.with_name("done.ipynb"))]
        + ["-k", "python3", "--no-progress-bar", "--cwd", str(notebook.parents[1]), *engine],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "JUPYTER_PREFER_ENV_PATH": "1"},
    )


def _run_probes(tmp_path: Path, n: int, *engine: str) -> list[dict[str, str]]:
    """``n`` probes started at once, every one from one working folder (as the build's chapters are): their reports."""
    runs = [_papermill(_probe(tmp_path / f"probe{i}"), *engine) for i in range(n)]
    for run in runs:
        _, stderr = run.communicate(timeout=180)
        assert run.returncode == 0, stderr[-3000:]
    return [json.loads((tmp_path / f"probe{i}" / "transport.json").read_text()) for i in range(n)]


def test_papermill_finds_the_engine_by_its_name():
    assert papermill_engines.get_engine(buildfiles.PAPERMILL_ENGINE) is kernels.ChapterEngine


@pytest.mark.skipif(os.name == "nt", reason="IPC sockets do not exist on Windows; the engine keeps TCP there")
def test_kernels_started_together_get_socket_files_of_their_own(tmp_path):
    """Three probes at once from one working folder: each kernel on IPC sockets at a path of its own (jupyter_client's
    default, "kernel-ipc" in the working folder, would be shared: "Invalid Signature" and a dead kernel), absolute,
    short enough for a socket, and removed when the kernel stops. papermill's own engine uses TCP."""
    assert _run_probes(tmp_path / "plain", 1)[0]["transport"] == "tcp", "papermill's own engine: TCP ports"
    reports = _run_probes(tmp_path / "ours", 3, "--engine", buildfiles.PAPERMILL_ENGINE)
    assert [r["transport"] for r in reports] == ["ipc"] * 3
    stems = [Path(r["ip"]) for r in reports]
    assert len(set(stems)) == 3 and all(s.is_absolute() and len(str(s)) <= kernels.SOCKET_PATH_MAX for s in stems)
    assert not [p for s in stems for p in s.parent.glob(s.name + "-*")], "each kernel's socket files removed"


def test_a_socket_path_too_long_for_a_socket_moves_to_the_temporary_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / ("deep" * 30)))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    stems = {kernels.socket_stem() for _ in range(2)}
    assert len(stems) == 2 and all(Path(s).parent == tmp_path / "tmp" for s in stems)
    short = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp")) / "runtime"  # tmp_path itself may be too long
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(short))
    try:
        assert Path(kernels.socket_stem()).parent == short, "a short runtime folder is used, made if missing"
        assert short.is_dir()
    finally:
        shutil.rmtree(short.parent)


def test_every_chapter_command_names_the_engine(tmp_path):
    """The build's recipe, `advlogits chapter` (through `papermill_command`) and the tests' chapter runs."""
    root = Path(__file__).resolve().parents[1]
    recipe = (root / "Makefile").read_text()
    run = recipe[recipe.index("CHAPTER_RUN =") : recipe.index("$(EXEC_DIR)/%.ipynb:")]
    assert "-m papermill $<" in run and f"-k python3 --engine {buildfiles.PAPERMILL_ENGINE} " in run
    cmd = buildfiles.papermill_command(root, "03_sample_confidence", tmp_path, {"profile": "smoke"})
    assert cmd[cmd.index("--engine") + 1] == buildfiles.PAPERMILL_ENGINE
    calls: list[list[str]] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
        execute_chapter(CHAPTERS[0], tmp_path / "out.ipynb", env={}, profile="smoke")
    assert calls[0][calls[0].index("--engine") + 1] == buildfiles.PAPERMILL_ENGINE
