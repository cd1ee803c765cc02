"""Fault injection: two runs at once on one store.

Two processes asking for one model train it once and get the same weights; a process waiting on the lock
resumes from the checkpoint of a trainer that was killed; two papermill runs of a chapter on one store both
succeed and show the same stored evaluation.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import nbformat
import pytest

from advlogits.store import Store

from fault_workers import (
    ST,
    WORKER_TIMEOUT_S,
    assert_same_run,
    entry_of,
    load_stored,
    papermill,
    reference_runs,
    training_log,
    wait_for,
    worker_command,
)

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """Uninterrupted runs of ST and AT through the store: name -> (state dict, history)."""
    return reference_runs(tmp_path_factory.mktemp("reference"))


def _start_train_worker(root: Path, config: str, **args) -> subprocess.Popen:
    return subprocess.Popen(
        worker_command("train", {"root": str(root), "config": config, **args}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> tuple[int, dict | None, str]:
    out, err = proc.communicate(timeout=WORKER_TIMEOUT_S)
    result = json.loads(out.splitlines()[-1]) if proc.returncode == 0 else None
    return proc.returncode, result, err


@pytest.mark.slow
def test_two_processes_asking_for_one_model_train_it_once(tmp_path, reference):
    root = tmp_path / "store"
    ready, go = [tmp_path / "ready-a", tmp_path / "ready-b"], tmp_path / "go"
    procs = [_start_train_worker(root, "ST", before=[["touch", str(r)], ["wait", str(go)]]) for r in ready]
    for r in ready:
        wait_for(r)
    go.touch()  # both call get_model now
    (code_a, a, err_a), (code_b, b, err_b) = [_finish(p) for p in procs]
    assert code_a == 0 and code_b == 0, err_a[-2000:] + err_b[-2000:]

    entry = entry_of(Store(root), ST)
    assert len(training_log(entry)) == 1, "one process trained, the other waited on the lock and loaded"
    assert a["digest"] == b["digest"]
    assert a["history"] == b["history"], "the same history, timings included: one run, stored once"
    assert_same_run(load_stored(Store(root), ST)[0], a["history"], reference["ST"])


@pytest.mark.slow
def test_a_process_waiting_on_the_lock_resumes_when_the_trainer_is_killed(tmp_path, reference):
    """A trains and holds the lock; B asks for the same model and blocks; A is SIGKILLed in epoch 2; the kernel
    releases A's lock, and B resumes from A's epoch-1 checkpoint instead of starting again."""
    root = tmp_path / "store"
    holding, waiting = tmp_path / "a-holds-the-lock", tmp_path / "b-is-waiting"
    a = _start_train_worker(
        root,
        "ST",
        kill={"after_step": 6, "before_dying": [["touch", str(holding)], ["wait", str(waiting)], ["sleep", 1.0]]},
    )
    b = _start_train_worker(root, "ST", before=[["wait", str(holding)], ["touch", str(waiting)]])
    code_a, _, err_a = _finish(a)
    code_b, result, err_b = _finish(b)
    assert code_a == -signal.SIGKILL, err_a[-2000:]
    assert code_b == 0, err_b[-2000:]
    assert [line["resumed"] for line in training_log(entry_of(Store(root), ST))] == [True]
    assert_same_run(load_stored(Store(root), ST)[0], result["history"], reference["ST"])


@pytest.mark.slow
def test_two_papermill_runs_of_a_chapter_on_one_store_both_succeed(tmp_path):
    home = tmp_path / "store"
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    # smoke, with AutoAttack on 8 images instead of 32: the property is about sharing the store, not the attack
    runs = [
        papermill(
            tmp_path / name / "chapter.ipynb",
            "-p",
            "profile",
            "smoke",
            "-y",
            "overrides: {n_autoattack: 8}",
            env={"ADVLOGITS_HOME": str(home)},
        )
        for name in ("a", "b")
    ]
    outcomes = [p.communicate(timeout=900) for p in runs]
    for proc, (_, err) in zip(runs, outcomes):
        assert proc.returncode == 0, err[-3000:]

    tables = []
    for name in ("a", "b"):
        nb = nbformat.read(tmp_path / name / "chapter.ipynb", as_version=4)
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert not [o for o in outputs if o.output_type == "error"]
        tables.append(
            [
                o["data"]["text/plain"]
                for o in outputs
                if "text/plain" in o.get("data", {}) and "AutoAttack" in o["data"]["text/plain"]
            ]
        )
    assert tables[0] == tables[1] and tables[0], "both chapters show the same stored evaluation"
    entries = sorted((home / "entries").iterdir())
    assert len(entries) == 2, "one entry for ST, one for AT"
    for entry in entries:
        assert len(training_log(entry)) == 1, f"{entry.name} was trained once"
        assert len(list((entry / "results").glob("evaluation-*.json"))) == 1, "every attack's outcomes, stored once"
