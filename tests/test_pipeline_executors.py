"""advlogits.pipeline.executors: the smoke plan run serially, by local worker processes (one per core: those of the
smoke book that `make test` builds before its tests, as `make book` builds it) and by two Ray workers, every setting
left at its default, leaves the same store, byte for byte, and the same scorecard; once it has run, the chapters
compute nothing more; a Ray worker killed mid-unit is retried, changes no byte of it and leaves no folder behind."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch

from advlogits import profiles
from advlogits.cli.plan import run_summary
from advlogits.pipeline import executors
from advlogits.pipeline.executors import UNIT_THREADS, PlanSpec, RunReport, run_plan
from advlogits.store import Store

from helpers import CHAPTERS, SMOKE, execute_chapter, folders_of_a_dead_process, store_differences

# A small but complete plan: one student seed, one sweep radius, tiny sets (for the tests that compute little of it).
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


def smoke_spec() -> PlanSpec:
    return PlanSpec(profiles.resolve(SMOKE, device="cpu"))


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


def files_of(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())


# `make test` builds the smoke book before its tests as `make book` does, in a store of its own emptied first, and
# names that store and the executed chapters here.
BOOK_HOME, BOOK_EXECUTED = "ADVLOGITS_BOOK_HOME", "ADVLOGITS_BOOK_EXECUTED"
PLAN_RUN = "plan-run.txt"  # the line `advlogits run` ended with, which the Makefile keeps beside the chapters
RUN_LINE = re.compile(
    r"^computed (?P<units>\d+) units .* on (?P<workers>\d+) workers, busy (?P<busy>\d+)% of it; 0 already stored"
)


@dataclasses.dataclass(frozen=True)
class Book:
    """A smoke book whose plan ran on local workers before its chapters: its store, the folder of its executed
    chapters' records and the line its plan run ended with."""

    home: Path
    executed: Path
    run_line: str


def _workers(book: Book) -> int:
    match = RUN_LINE.match(book.run_line)
    return int(match["workers"]) if match else 0


@pytest.fixture()
def local_workers_book(tmp_path: Path) -> Book:
    """The smoke book `make test` built (`BOOK_HOME`, `BOOK_EXECUTED`), if its plan ran on two workers or more
    (one per core); otherwise, as when pytest runs alone, one built here the same way: the plan on two local
    workers, then every chapter, one after the other."""
    if os.environ.get(BOOK_HOME):
        executed = Path(os.environ[BOOK_EXECUTED])
        book = Book(Path(os.environ[BOOK_HOME]), executed, (executed / PLAN_RUN).read_text().strip())
        if _workers(book) >= 2:
            return book
    home, executed = tmp_path / "store", tmp_path / "executed"
    report = run_plan(smoke_spec(), store=Store(home), executor="local", workers=2, progress=False)
    env = {**os.environ, "ADVLOGITS_HOME": str(home), "ADVLOGITS_EXECUTED_DIR": str(executed)}
    for chapter in CHAPTERS:
        proc = execute_chapter(chapter, tmp_path / chapter.name, env=env, profile=SMOKE)
        assert proc.returncode == 0, f"{chapter.name}:\n{proc.stderr[-3000:]}"
    return Book(home, executed, run_summary(report))


@pytest.mark.whole_book
def test_local_workers_leave_the_serial_store_and_scorecard_and_the_chapters_compute_nothing(
    smoke_serial_store, smoke_serial_claims, local_workers_book
):
    """The default settings (one torch thread per unit whatever the executor) give one store; once the plan has run,
    executing every chapter adds no file to it, and the claims they decide are the serial store's."""
    book, units = local_workers_book, smoke_spec().units()
    match = RUN_LINE.match(book.run_line)
    assert match and int(match["units"]) == len(units), f"every unit computed by this run: {book.run_line}"
    assert int(match["workers"]) >= 2 and 0 < int(match["busy"]) <= 100, "workers cannot compute more than their time"
    assert store_differences(book.home, smoke_serial_store) == [], "the same seeds and threads: the same bytes"
    planned = {str(p.relative_to(book.home)) for unit in units for p in unit.files(Store(book.home))}
    added = [f for f in files_of(book.home / "entries") if f"entries/{f}" not in planned and not f.endswith(".log")]
    assert added == [], "the chapters added files to the store: every file is one a unit of the plan leaves"
    assert json.loads((book.executed / "scorecard.json").read_text()) == smoke_serial_claims, "the serial verdicts"
    assert not run_plan(smoke_spec(), store=Store(book.home), progress=False).computed, "nothing left to compute"


def test_a_serial_run_computes_with_one_torch_thread_per_unit_whatever_this_process_has(tmp_path, monkeypatch):
    """The thread count a unit computes with is the executor's (`UNIT_THREADS`, as in a local or Ray worker), not
    the count this process happens to have; the process gets its own back afterwards."""
    seen: list[int] = []

    def compute(unit, profile, store):
        seen.append(torch.get_num_threads())
        return 0.0, True

    monkeypatch.setattr(executors, "_compute", compute)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_plan(spec(), store=Store(tmp_path), progress=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
    assert len(seen) == len(spec().units()) and set(seen) == {UNIT_THREADS} == {1}


def test_a_worker_builds_the_plan_once_and_finds_every_unit_in_it(tmp_path, monkeypatch):
    """A local worker is handed unit ids: it builds the plan (and checks its code) once, not once per unit."""
    built: list[int] = []
    real = executors.book_plan
    monkeypatch.setattr(executors, "book_plan", lambda *a, **k: built.append(1) or real(*a, **k))
    monkeypatch.setattr(executors, "_compute", lambda unit, profile, store: (0.0, unit.id))
    executors._units_by_id.cache_clear()
    units = spec().units()
    seen = [executors._compute_in_worker(spec(), unit.id, str(tmp_path))[1] for unit in units]
    assert seen == [unit.id for unit in units] and len(built) == 2, "once for this list, once for the worker"
    other = dataclasses.replace(spec(), profile=dataclasses.replace(spec().profile, n_eval=16))
    executors._compute_in_worker(other, other.units()[0].id, str(tmp_path))
    assert len(built) == 4, "another plan is built for itself"


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


@pytest.mark.whole_book
def test_two_ray_workers_leave_the_serial_store_even_when_one_is_killed_mid_unit(
    smoke_serial_store, tmp_path, monkeypatch
):
    """Two Ray workers at their defaults compute the smoke plan; the first worker seen computing a unit is killed, Ray
    retries its unit, and the store is the serial store byte for byte, the entries' logs too (so its scorecard is the
    serial store's: the chapters only read the store, as the local workers' test shows on a byte-identical one). The
    killed worker's temporary folder, which it could not remove, is gone too."""
    pytest.importorskip("ray", reason="the Ray executor needs the cluster extra (pip install 'advlogits[cluster]')")
    pids = tmp_path / "pids"
    pids.mkdir()
    # The workers' temporary folder (and Ray's, whose sockets need a short path), so that what they leave can be seen.
    workers_tmp = Path(tempfile.mkdtemp(prefix="advlogits-test-", dir="/tmp"))
    monkeypatch.setenv("TMPDIR", str(workers_tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # this process reads TMPDIR again
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
    try:
        report = run_plan(smoke_spec(), store=Store(home), executor="ray", workers=2, progress=False)
        left = sorted(p.name for p in workers_tmp.glob("advlogits-unit-*"))
    finally:
        shutil.rmtree(workers_tmp, ignore_errors=True)
    watcher.join(timeout=5)
    assert killed, "a worker was killed while it computed a unit"
    assert left == [], "the killed worker's unit folder was removed"
    assert report.computed and not report.from_store
    assert store_differences(home, smoke_serial_store) == [], (
        "the retried unit gave the same bytes, and so did the rest"
    )
    assert not list((home / "entries").rglob("*.tmp"))
    assert not run_plan(smoke_spec(), store=Store(home), progress=False).computed, "nothing left to compute"


def test_a_ray_task_first_removes_the_folders_that_dead_workers_of_its_run_left(tmp_path, monkeypatch):
    """What a Ray task does, called here without Ray: it removes the unit folders that killed workers of its run left
    in this machine's temporary folder (another run's stay), then computes its unit in a folder of its own, which
    goes when the unit is done."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    prefixes = executors.unit_folder_prefix("run1"), executors.unit_folder_prefix("run2")
    dead, other = folders_of_a_dead_process(tmp_path, *prefixes)
    first = spec().units()[0]
    assert not first.deps
    threads = torch.get_num_threads()
    try:
        out = executors._ray_unit(spec(), first.id, UNIT_THREADS, "cpu", "run1", {})
    finally:
        torch.set_num_threads(threads)
    assert any(name.endswith("model.pt") for name in out), sorted(out)
    assert list(tmp_path.glob("advlogits-unit-*")) == [other] and not dead.exists()


def test_a_plan_made_with_other_code_is_refused_by_the_workers(tmp_path):
    """A worker that imported an edited library would compute under keys the plan does not know: it stops."""
    stale = dataclasses.replace(spec(), code="000000000000")
    with pytest.raises(RuntimeError, match=r"the advlogits source changed while the plan ran .* run the plan again"):
        stale.units()
    with pytest.raises(RuntimeError, match="source changed"):
        run_plan(stale, store=Store(tmp_path), executor="serial", progress=False)
    assert not (tmp_path / "entries").exists()
