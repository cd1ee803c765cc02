"""advlogits.pipeline.executors: the plan run serially, in local worker processes and as Ray tasks, leaving the same
store, byte for byte, with the same torch threads per unit; a Ray worker killed mid-unit is retried."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from advlogits import profiles
from advlogits.cli.plan import run_summary
from advlogits.pipeline.executors import PlanSpec, RunReport, run_plan
from advlogits.store import Store

# A small but complete plan: one student seed, one sweep radius, tiny sets.
TINY = dict(
    student_seeds=(100,),
    eps_sweep=(0.1,),
    n_eval=32,
    n_autoattack=8,
    n_train=256,
    n_val=32,
    sweep_n_train=256,
    student_n_train=256,
    eval_steps=2,
)


def spec() -> PlanSpec:
    return PlanSpec(profiles.resolve("smoke", device="cpu", **TINY))


def weights(home: Path) -> dict[str, bytes]:
    """Every stored model.pt of a store, by entry key."""
    return {p.parent.name: p.read_bytes() for p in (home / "entries").glob("*/model.pt")}


def checked_files(home: Path) -> dict[str, bytes]:
    """Every checksum record of a store but those of training histories, which hold wall-clock seconds."""
    return {
        str(p.relative_to(home)): p.read_bytes()
        for p in (home / "entries").rglob("*.sha256")
        if p.name != "history.json.sha256"
    }


@pytest.fixture(scope="module")
def serial_store(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("serial")
    report = run_plan(spec(), store=Store(home), executor="serial", threads=1, progress=False)
    assert report.computed
    return home


def test_bad_arguments_are_refused_before_anything_runs(tmp_path):
    store = Store(tmp_path)
    for kwargs, message in (
        (dict(executor="threads"), r"^executor must be one of 'serial', 'local', 'ray'"),
        (dict(workers=0), r"^workers must be an integer >= 1 \(got 0\)"),
        (dict(threads=0), r"^threads must be an integer >= 1 \(got 0\)"),
        (
            dict(executor="local", address="auto"),
            r"^address must be given only with "
            r"executor='ray' \(got 'auto'\)",
        ),
    ):
        with pytest.raises(ValueError, match=message):
            run_plan(spec(), store=store, progress=False, **kwargs)
    assert not (tmp_path / "entries").exists()


@pytest.mark.slow
def test_local_workers_leave_the_serial_runs_bytes(serial_store, tmp_path):
    report = run_plan(spec(), store=Store(tmp_path), executor="local", workers=2, threads=1, progress=False)
    assert len(report.computed) == len(run_plan(spec(), store=Store(serial_store), progress=False).from_store)
    assert weights(tmp_path) == weights(serial_store) and weights(tmp_path)
    assert checked_files(tmp_path).keys() == checked_files(serial_store).keys()
    assert report.workers == 2 and 0 < report.busy() <= 1, "two workers cannot compute more than their wall time"


def test_busy_is_the_unit_time_over_the_workers_wall_time():
    report = RunReport(computed={"a": 30.0, "b": 50.0}, wall_s=50.0, workers=2)
    assert report.busy() == pytest.approx(0.8)
    assert run_summary(report) == (
        "computed 2 units in 1.3 min of unit time, 0.8 min of wall time on 2 workers, busy 80% of it; "
        "0 already stored before this run"
    )
    assert RunReport(from_store=["a"], wall_s=0.1).busy() is None
    assert run_summary(RunReport(from_store=["a"])) == (
        "computed 0 units in 0.0 min of unit time; 1 already stored before this run"
    )


@pytest.mark.slow
def test_ray_with_two_workers_leaves_the_serial_runs_model_weights(serial_store, tmp_path):
    pytest.importorskip("ray", reason="the Ray executor needs the cluster extra (pip install 'advlogits[cluster]')")
    report = run_plan(spec(), store=Store(tmp_path), executor="ray", workers=2, threads=1, progress=False)
    assert report.computed and not report.from_store
    assert weights(tmp_path) == weights(serial_store), "the same seeds and threads: the same bytes"
    assert checked_files(tmp_path) == checked_files(serial_store), "every result too"
    assert not list((tmp_path / "entries").rglob("*.tmp"))


@pytest.mark.slow
def test_a_ray_worker_killed_mid_unit_is_retried_and_the_run_completes(serial_store, tmp_path, monkeypatch):
    pytest.importorskip("ray", reason="the Ray executor needs the cluster extra (pip install 'advlogits[cluster]')")
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("ADVLOGITS_RAY_WORKER_PIDS", str(pids))  # each task writes <pid>.unit when it starts
    killed: list[int] = []

    def kill_the_first_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for marker in pids.glob("*.unit"):
                pid = int(marker.stem)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                killed.append(pid)
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_the_first_worker, daemon=True)
    watcher.start()
    home = tmp_path / "store"
    report = run_plan(spec(), store=Store(home), executor="ray", workers=2, threads=1, progress=False)
    watcher.join(timeout=5)
    assert killed, "a worker was killed while it computed a unit"
    assert report.computed and weights(home) == weights(serial_store), "the retried unit gave the same bytes"
    assert not run_plan(spec(), store=Store(home), progress=False).computed, "nothing left to compute"


def test_a_plan_made_with_other_code_is_refused_by_the_workers(tmp_path):
    """A worker that imported an edited library would compute under keys the plan does not know: it stops."""
    stale = dataclasses.replace(spec(), code="000000000000")
    with pytest.raises(RuntimeError, match=r"the advlogits source changed while the plan ran .* run the plan again"):
        stale.units()
    with pytest.raises(RuntimeError, match="source changed"):
        run_plan(stale, store=Store(tmp_path), executor="serial", progress=False)
    assert not (tmp_path / "entries").exists()
