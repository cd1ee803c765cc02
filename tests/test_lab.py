"""JupyterLab as a way to use the book: `make lab` serves the chapters with the project's kernel.

A JupyterLab server, started headless on 127.0.0.1 as `make lab` starts it, serves a copy of the repository's
layout (``_toc.yml`` and ``chapters/``, so a chapter's hand-run claims land in the copy), with a store of the
test's own. Through the server's REST API the test opens chapter 1 (contents API) and starts the project's kernel
(sessions API), runs every code cell over the kernel's websocket, the parameters cell set to the smoke profile on
the CPU, checks the outputs (no error; glued numbers and figures are there), then shuts the kernel and the server
down and checks that no process they started is left. `tests/test_site.py` opens the Lab page in a browser with the
same server.

Skipped where JupyterLab is not installed: `make test` and `make lab` install the lab extra.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "01_standard_vs_adversarial.ipynb"
KERNEL_DISPLAY_NAME = "Python 3 (advlogits)"  # the kernelspec `make setup` installs into the venv
START_TIMEOUT_S = 90.0  # until the server's /api answers
CELL_TIMEOUT_S = 600.0  # one code cell (chapter 1 trains its two smoke models in one)
STOP_TIMEOUT_S = 20.0  # for the server and its kernels to exit once asked
SKIP_REASON = (
    "JupyterLab is not installed: install the lab extra (`pip install -e '.[lab]'`; `make lab` and `make test` do it)"
)


def require_jupyterlab() -> None:
    """Skip the calling test where JupyterLab (the lab extra) is not installed."""
    pytest.importorskip("jupyterlab", reason=SKIP_REASON)


def lab_layout(folder: Path) -> Path:
    """A copy of the repository's layout in ``folder`` (``_toc.yml``, ``chapters/*.ipynb``); returns its chapters/."""
    (folder / "chapters").mkdir(parents=True)
    shutil.copy2(ROOT / "_toc.yml", folder / "_toc.yml")
    for notebook in sorted((ROOT / "chapters").glob("*.ipynb")):
        shutil.copy2(notebook, folder / "chapters" / notebook.name)
    return folder / "chapters"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command_line(process: psutil.Process) -> list[str]:
    """A child's command line, empty for one that has exited (a short-lived helper of the server may be a zombie, or
    gone, by the time it is read)."""
    try:
        return process.cmdline()
    except (psutil.ZombieProcess, psutil.NoSuchProcess):
        return []


@dataclass
class LabServer:
    """A running JupyterLab server: its address, token, process and log, and every process it was seen to start."""

    url: str  # http://127.0.0.1:PORT/
    token: str
    process: subprocess.Popen
    log: Path
    started: list[Any] = field(default_factory=list)  # psutil.Process of the server's children (kernels)

    def api(self, method: str, path: str, body: dict | None = None) -> Any:
        """One REST call, authenticated with the token; the decoded JSON answer (None when empty)."""
        request = urllib.request.Request(
            self.url + path.lstrip("/"),
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            data = response.read()
        return json.loads(data) if data else None

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"

    def note_children(self) -> None:
        """Remember the server's processes (kernels) now, so they can be checked and stopped after it exits."""
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(self.process.pid).children(recursive=True):
                if all(child.pid != p.pid for p in self.started):
                    self.started.append(child)


def _stop(server: LabServer) -> None:
    """Shut the server down through its API, then terminate, then kill it and every process it started."""
    server.note_children()
    if server.process.poll() is None:
        with contextlib.suppress(OSError, urllib.error.URLError):
            server.api("POST", "api/shutdown")
        try:
            server.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            server.process.terminate()
            try:
                server.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(STOP_TIMEOUT_S)
    _, alive = psutil.wait_procs(server.started, timeout=STOP_TIMEOUT_S)
    for process in alive:  # left behind by a server that did not stop them: end them, by their own pid
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=STOP_TIMEOUT_S)


@contextlib.contextmanager
def lab_server(chapters: Path, *, env: dict[str, str] | None = None) -> Iterator[LabServer]:
    """JupyterLab's server on 127.0.0.1 at a free port, serving ``chapters`` with the venv's kernel, as `make lab`
    starts it (the token in the environment, no browser); yields once its REST API answers. On leaving, also after a
    failure, it is shut down with every process it started. ``env``: extra variables for it and its kernels."""
    work = chapters.parent / ".lab"
    dirs = {name: work / name for name in ("config", "data", "runtime", "settings", "workspaces", "ipython")}
    for folder in dirs.values():
        folder.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(24)
    bin_dir = str(Path(sys.executable).parent)
    server_env = {k: v for k, v in os.environ.items() if k != "ADVLOGITS_EXECUTED_DIR"}  # a hand run, not the build
    server_env |= {
        "JUPYTER_TOKEN": token,
        "JUPYTER_PREFER_ENV_PATH": "1",  # the venv's python3 kernelspec first
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "lib"), *filter(None, [os.environ.get("PYTHONPATH")])]),
        # nothing of the user's Jupyter set-up is read or written
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
        "IPYTHONDIR": str(dirs["ipython"]),
        **(env or {}),
    }
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={chapters}",
        "--MappingKernelManager.default_kernel_name=python3",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = work / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            cwd=chapters,
            env=server_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = LabServer(f"http://127.0.0.1:{port}/", token, process, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"JupyterLab exited with status {process.returncode} before answering:\n{server.log_tail()}"
                )
            try:
                server.api("GET", "api/status")
                break
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer /api within {START_TIMEOUT_S:.0f} s:\n{server.log_tail()}")
                time.sleep(0.25)
        yield server
    finally:
        _stop(server)


# ---- the kernel's websocket ------------------------------------------------------------------------


def _message(msg_type: str, content: dict, session: str) -> tuple[str, str]:
    msg_id = uuid.uuid4().hex
    header = {
        "msg_id": msg_id,
        "msg_type": msg_type,
        "session": session,
        "username": "test",
        "version": "5.3",
        "date": datetime.now(timezone.utc).isoformat(),
    }
    return msg_id, json.dumps(
        {"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell", "buffers": []}
    )


def execute(ws: Any, code: str, session: str, *, timeout_s: float = CELL_TIMEOUT_S) -> tuple[dict, list[dict]]:
    """Run ``code`` on the kernel behind the websocket ``ws``; its execute_reply content and its output messages
    (stream, display_data, execute_result, error), in order, once the kernel is idle again."""
    msg_id, request = _message(
        "execute_request",
        {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        session,
    )
    ws.send(request)
    reply, outputs, idle = None, [], False
    deadline = time.monotonic() + timeout_s
    while reply is None or not idle:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the kernel did not finish within {timeout_s:.0f} s: {code[:200]!r}")
        ws.settimeout(left)
        frame = ws.recv()
        if isinstance(frame, bytes):
            continue  # a message with binary buffers (a widget's comm message): no output of ours
        message = json.loads(frame)
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = message["msg_type"]
        if message.get("channel") == "shell" and kind == "execute_reply":
            reply = message["content"]
        elif kind == "status" and message["content"]["execution_state"] == "idle":
            idle = True
        elif kind in ("stream", "display_data", "execute_result", "error"):
            outputs.append(message)
    return reply, outputs


# ---- the test --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_chapter_runs_in_jupyterlab_on_the_project_kernel_and_everything_stops(tmp_path):
    require_jupyterlab()
    websocket = pytest.importorskip("websocket", reason=SKIP_REASON)  # websocket-client comes with jupyter_server

    chapters = lab_layout(tmp_path / "repo")
    with lab_server(chapters, env={"ADVLOGITS_HOME": str(tmp_path / "store")}) as server:
        specs = server.api("GET", "api/kernelspecs")
        assert specs["default"] == "python3"
        assert specs["kernelspecs"]["python3"]["spec"]["display_name"] == KERNEL_DISPLAY_NAME

        model = server.api("GET", f"api/contents/{CHAPTER}?type=notebook&content=1")
        assert model["type"] == "notebook" and model["path"] == CHAPTER
        cells = [c for c in model["content"]["cells"] if c["cell_type"] == "code"]
        sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells]
        parameters = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(parameters) == 1, "the chapter has one parameters cell"
        sources[parameters[0]] += '\nprofile = "smoke"\ndevice = "cpu"\n'  # as papermill's -p would set them

        session = server.api(
            "POST",
            "api/sessions",
            {"path": CHAPTER, "type": "notebook", "name": CHAPTER, "kernel": {"name": "python3"}},
        )
        kernel = session["kernel"]["id"]
        server.note_children()
        kernels = [p for p in server.started if any("ipykernel" in part for part in command_line(p))]
        assert len(kernels) == 1, [command_line(p) for p in server.started]

        ws_url = server.url.replace("http://", "ws://") + f"api/kernels/{kernel}/channels?session_id={uuid.uuid4()}"
        ws = websocket.create_connection(ws_url, header=[f"Authorization: token {server.token}"], timeout=60)
        try:
            client = uuid.uuid4().hex
            reply, outputs = execute(ws, "import os, sys; print(sys.prefix); print(os.getcwd())", client)
            assert reply["status"] == "ok"
            assert "".join(o["content"]["text"] for o in outputs).split() == [sys.prefix, str(chapters)], (
                "the kernel is not the venv's, or it does not run in chapters/"
            )
            glued, figures, failures = {}, 0, []
            for number, source in enumerate(sources, 1):
                reply, outputs = execute(ws, source, client)
                errors = [
                    f"cell {number}: {o['content']['ename']}: {o['content']['evalue']}"
                    for o in outputs
                    if o["msg_type"] == "error"
                ]
                if reply["status"] != "ok" and not errors:
                    errors.append(f"cell {number}: {reply['status']} {reply.get('ename')}: {reply.get('evalue')}")
                failures += errors
                if reply["status"] != "ok":
                    break
                for o in outputs:
                    data = o["content"].get("data", {})
                    name = o["content"].get("metadata", {}).get("scrapbook", {}).get("name")
                    if o["msg_type"] == "display_data" and name:
                        glued[name] = data
                    figures += any(kind.endswith("image/png") for kind in data)  # shown or glued
        finally:
            ws.close()
        assert not failures, "\n".join(failures)
        assert glued["profile_name"]["application/papermill.record/text/plain"] == "'smoke'"
        assert len(glued) > 5, f"the chapter glued only {sorted(glued)}"
        assert figures > 0, "the chapter showed no figure"

        server.api("DELETE", f"api/sessions/{session['id']}")
        assert server.api("GET", "api/kernels") == []
        _, alive = psutil.wait_procs(kernels, timeout=STOP_TIMEOUT_S)
        assert not alive, "the kernel outlived its shutdown through the API"
    assert server.process.returncode is not None, "the server is still running"
    assert not [p for p in server.started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], (
        "a process the server started is still running"
    )
