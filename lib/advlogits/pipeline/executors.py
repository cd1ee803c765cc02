"""Run the book's plan: in this process, in local worker processes, or as Ray tasks on a machine or a cluster.

Every executor computes only the units the store lacks, each after its dependencies, and leaves the same store:

* ``serial``: one unit after another in this process;
* ``local``: ``workers`` processes on this machine, each with ``threads`` torch threads, sharing the store (its
  locks keep two processes from computing one unit);
* ``ray``: each unit a Ray task (one CPU and ``threads`` torch threads, or one GPU on a CUDA profile), its
  dependencies' outputs passed as object references. No shared filesystem is assumed: a task computes in a store
  of its own, seeded with the files its dependencies left, and returns the files it added with the lines of its
  entry's logs; only this process writes the real store. Ray retries a task whose worker dies. A task's store is a
  temporary folder named after the run and the worker's process (`unit_folder_prefix`): a dying worker cannot remove
  it, so the run's next task on that machine removes the folders of its dead workers, and a run on a Ray it started
  here removes every folder of the run when it ends.

Every unit computes with ``threads`` torch threads, `UNIT_THREADS` unless told otherwise, whatever the executor
and the machine's cores: torch's thread count changes trained weights in their last bits, so a fixed count is what
makes a serial run, any number of local workers and Ray leave the same store, byte for byte.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
import uuid
import warnings
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..checks import check_choice, check_int, fail
from ..fileio import atomic_write_bytes, process_folder, record_path, remove_process_folders
from ..names import EXECUTORS
from ..profiles import Profile
from ..store import LOG_FILES, Store
from .plan import Unit, book_plan, move_aside, ordered, state, with_device
from .stored import result_code

RAY_RETRIES = 3  # attempts of a Ray task whose worker died, beyond the first
UNIT_THREADS = 1  # torch threads per unit by default: one, so that a worker per core uses every core
SECONDS = "seconds"  # the key of a Ray task's own duration among the files it returns
log = logging.getLogger("advlogits")


@dataclass(frozen=True)
class PlanSpec:
    """What a worker needs to rebuild the plan and find its unit (units hold functions, which do not travel)."""

    profile: Profile
    robustbench_models: tuple[str, ...] = ()
    model_dir: str | None = None
    code: str = field(default_factory=result_code)  # the source digest the plan's keys were made with

    def units(self) -> list[Unit]:
        """The plan, after checking this process runs the code the plan was made with (a worker started after
        the library's source was edited would compute under other keys)."""
        if result_code() != self.code:
            raise RuntimeError(
                "the advlogits source changed while the plan ran (its digest is now "
                f"{result_code()}, the plan's {self.code}): run the plan again"
            )
        return book_plan(self.profile, robustbench_models=self.robustbench_models, model_dir=self.model_dir)


@dataclass
class RunReport:
    """What a run did: the units it computed (with seconds) and those it found stored."""

    computed: dict[str, float] = field(default_factory=dict)  # unit name -> seconds
    from_store: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)  # units found corrupt, moved aside and computed again
    by_others: list[str] = field(default_factory=list)  # units another process stored while this run waited
    wall_s: float = 0.0  # from the first unit's start to the last one's end
    workers: int = 1

    def busy(self) -> float | None:
        """The fraction of the workers' wall time spent computing units (None when nothing was computed): below 1,
        workers waited for dependencies or for the last units."""
        if not self.computed or self.wall_s <= 0:
            return None
        return sum(self.computed.values()) / (self.workers * self.wall_s)


def missing_units(spec: PlanSpec, store: Store) -> tuple[list[Unit], list[Unit]]:
    """(units to compute, units already stored), in dependency order."""
    todo, stored, _ = survey(spec, store, repair=False)
    return todo, stored


def survey(spec: PlanSpec, store: Store, *, repair: bool) -> tuple[list[Unit], list[Unit], list[Unit]]:
    """(units to compute, units stored, units corrupt), in dependency order. A unit counts as stored only when its
    files agree with their checksum records; with ``repair``, a corrupt unit's files are moved aside (before its
    dependants are looked at) and it is computed again."""
    todo, stored, corrupt = [], [], []
    for unit in ordered(spec.units()):
        found = state(unit, store)
        if found == "corrupt":
            corrupt.append(unit)
            if repair:
                moved = move_aside(unit, store)
                log.warning("corrupt: %s; moved aside to %s", unit.name, moved[0].parent if moved else "-")
        (stored if found == "stored" else todo).append(unit)
    return todo, stored, corrupt


def run_plan(
    spec: PlanSpec,
    *,
    store: Store | None = None,
    executor: str = "serial",
    workers: int = 1,
    threads: int | None = None,
    address: str | None = None,
    progress: bool = True,
) -> RunReport:
    """Compute every unit of ``spec``'s plan the store lacks, with the ``executor`` chosen (see the module), each
    unit with ``threads`` torch threads (None: `UNIT_THREADS`, the same for every executor)."""
    check_choice("executor", executor, EXECUTORS)
    check_int("workers", workers, at_least=1)
    threads = UNIT_THREADS if threads is None else threads
    check_int("threads", threads, at_least=1)
    if address is not None and executor != "ray":
        fail("address", "given only with executor='ray'", address)
    store = store or Store()
    todo, stored, corrupt = survey(spec, store, repair=True)
    report = RunReport(
        from_store=[u.name for u in stored],
        corrupt=[u.name for u in corrupt],
        workers=1 if executor == "serial" else workers,
    )
    for unit in stored:
        log.info("from store: %s", unit.name)
    bar = tqdm(total=len(todo), desc="units", disable=not progress, unit="unit")
    began = time.perf_counter()
    try:
        if executor == "serial":
            _run_serial(spec, todo, store, report, bar, threads)
        elif executor == "local":
            _run_local(spec, todo, store, report, bar, workers, threads)
        else:
            _run_ray(spec, todo, store, report, bar, workers, threads, address)
    finally:
        bar.close()
    report.wall_s = time.perf_counter() - began
    return report


def _finished(report: RunReport, bar: tqdm, unit_name: str, seconds: float, here: bool = True) -> None:
    if here:
        report.computed[unit_name] = seconds
        log.info("computed: %s (%.1f s)", unit_name, seconds)
    else:
        report.by_others.append(unit_name)
        log.info("stored by another process meanwhile: %s", unit_name)
    bar.update(1)


def _own_log_lines(unit: Unit, store: Store) -> int:
    """How many lines this process wrote into the log of the unit's entry (``training.log`` for a model,
    ``compute.log`` for a result): a unit another process stored while this one waited on its lock adds none."""
    path = store.entry(unit.key) / ("training.log" if unit.kind == "model" else "compute.log")
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return 0
    return sum(1 for line in lines if line.strip() and json.loads(line).get("pid") == os.getpid())


def _compute(unit: Unit, profile: Profile, store: Store) -> tuple[float, bool]:
    """Compute ``unit`` into ``store``: (seconds, whether this process computed it rather than finding it stored
    by another process, e.g. a concurrent run)."""
    before, began = _own_log_lines(unit, store), time.perf_counter()
    unit.compute(profile, store)
    return time.perf_counter() - began, _own_log_lines(unit, store) > before


# ------------------------------------------------------------------------------------------------------------
# serial


def _run_serial(spec: PlanSpec, todo: Sequence[Unit], store: Store, report: RunReport, bar: tqdm, threads: int) -> None:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for unit in todo:
            _finished(report, bar, unit.name, *_compute(unit, spec.profile, store))
    finally:
        torch.set_num_threads(previous)


# ------------------------------------------------------------------------------------------------------------
# local processes


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


@functools.lru_cache(maxsize=4)
def _units_by_id(spec: PlanSpec) -> dict[str, Unit]:
    """The plan's units by id, built (and the code checked) once per worker process and plan, not once per unit: a
    plan of the cpu profile takes a tenth of a second to build, and a worker computes hundreds of its units."""
    return {u.id: u for u in spec.units()}


def _compute_in_worker(spec: PlanSpec, unit_id: str, store_root: str) -> tuple[float, bool]:
    return _compute(_units_by_id(spec)[unit_id], spec.profile, Store(store_root))


def _run_local(
    spec: PlanSpec, todo: Sequence[Unit], store: Store, report: RunReport, bar: tqdm, workers: int, threads: int
) -> None:
    pending = {u.id: u for u in todo}
    waiting_on = {u.id: {d for d in u.deps if d in pending} for u in todo}
    running: dict[Future, Unit] = {}
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(threads,)
    ) as pool:
        while pending or running:
            for unit_id in [i for i in pending if not waiting_on[i]][: workers - len(running)]:
                unit = pending.pop(unit_id)
                running[pool.submit(_compute_in_worker, spec, unit.id, str(store.root))] = unit
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                unit = running.pop(future)
                _finished(report, bar, unit.name, *future.result())  # re-raises a worker's error here
                for deps in waiting_on.values():
                    deps.discard(unit.id)


# ------------------------------------------------------------------------------------------------------------
# Ray


def _files(store: Store, paths: Sequence[Path]) -> dict[str, bytes]:
    return {str(p.relative_to(store.root)): p.read_bytes() for p in paths if p.exists()}


def _checked_files(root: Path) -> set[str]:
    entries = root / "entries"
    return {str(p.relative_to(root)) for p in entries.rglob("*") if p.is_file()} if entries.is_dir() else set()


def _checked(name: str) -> bool:
    """Whether ``name``, among what a Ray task returns, is a checked file (not `SECONDS`, not a log's lines)."""
    return name != SECONDS and Path(name).name not in LOG_FILES


def _write_files(store: Store, files: dict[str, bytes]) -> None:
    """Write files computed elsewhere into ``store``: each data file before its checksum record, atomically."""
    for relative in sorted(files, key=lambda name: name.endswith(".sha256")):
        atomic_write_bytes(files[relative], store.root / relative)


def unit_folder_prefix(run: str) -> str:
    """The name's start of every temporary folder in which a Ray task of the run ``run`` computes its unit
    (`advlogits.fileio.process_folder`: the worker's process id follows it)."""
    return f"advlogits-unit-{run}-"


def _ray_unit(
    spec: PlanSpec,
    unit_id: str,
    threads: int,
    device: str,
    run: str,
    stored: dict[str, bytes],
    *dep_outputs: dict[str, bytes],
) -> dict[str, bytes]:
    """A Ray task: compute one unit in a store of its own, seeded with its dependencies' files; return what it
    added (data files, their checksum records and its lines of the entry's logs) and, under `SECONDS`, how long the
    unit took. It first removes the folders that the run's dead workers left on this machine."""
    began = time.perf_counter()
    torch.set_num_threads(threads)
    remove_process_folders(unit_folder_prefix(run), only_dead=True)
    pid_dir = os.environ.get("ADVLOGITS_RAY_WORKER_PIDS")  # where each unit runs, for whoever watches the workers
    marker = Path(pid_dir, f"{os.getpid()}.unit") if pid_dir else None
    if marker is not None:
        marker.write_text(unit_id)
    try:
        return _compute_in_own_store(spec, unit_id, device, run, stored, dep_outputs, began)
    finally:
        if marker is not None:
            marker.unlink(missing_ok=True)


def _compute_in_own_store(
    spec: PlanSpec,
    unit_id: str,
    device: str,
    run: str,
    stored: dict[str, bytes],
    dep_outputs: tuple[dict[str, bytes], ...],
    began: float,
) -> dict[str, bytes]:
    with process_folder(unit_folder_prefix(run)) as tmp:
        local = Store(tmp)
        seeded = {**stored, **{k: v for out in dep_outputs for k, v in out.items() if _checked(k)}}
        _write_files(local, seeded)
        unit = _units_by_id(spec)[unit_id]
        unit.compute(with_device(spec.profile, device), local)
        added = _checked_files(local.root) - set(seeded)
        out = {
            name: (local.root / name).read_bytes()
            for name in added
            if name.endswith(".sha256") or record_path(local.root / name).exists() or Path(name).name in LOG_FILES
        }
    return {**out, SECONDS: str(time.perf_counter() - began).encode()}


def _start_ray(ray: Any, workers: int, address: str | None) -> None:
    """Start Ray here, or join the cluster at ``address``; a RuntimeError in one line saying what to do when
    there is no cluster there or the Ray client (``ray[client]``, the cluster extra) is missing."""
    if address is None:
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
        return
    try:
        with warnings.catch_warnings():  # the refusal below says it in one line
            warnings.filterwarnings("ignore", message="Ray Client connection timed out")
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ImportError, ModuleNotFoundError) as err:
        raise RuntimeError(
            f"address={address!r} needs the Ray client, which is not installed ({err}): pip install -e "
            f"'.[cluster]' installs it, or pip install 'ray[client]=={ray.__version__}'"
        ) from None
    except (ConnectionError, TimeoutError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RuntimeError(
            f"no Ray cluster found at address={address!r} ({first}); start one with `ray start --head` or "
            "leave out --address to run Ray on this machine"
        ) from None


def _run_ray(
    spec: PlanSpec,
    todo: Sequence[Unit],
    store: Store,
    report: RunReport,
    bar: tqdm,
    workers: int,
    threads: int,
    address: str | None,
) -> None:
    try:
        import ray
    except ImportError as err:
        raise RuntimeError("executor='ray' needs Ray: pip install 'advlogits[cluster]'") from err
    started = not ray.is_initialized()
    if started:
        _start_ray(ray, workers, address)
    run = uuid.uuid4().hex[:12]
    try:
        gpu = spec.profile.device.startswith("cuda")
        resources = dict(num_gpus=1, num_cpus=0) if gpu else dict(num_cpus=1)
        task = ray.remote(max_retries=RAY_RETRIES, **resources)(_ray_unit)
        pending = {u.id for u in todo}
        units = {u.id: u for u in spec.units()}
        refs: dict[str, Any] = {}
        for unit in todo:  # in dependency order: every dependency computed in this run already has a reference
            stored_deps = [units[d] for d in unit.deps if d not in pending]
            stored_files = _files(store, [p for d in stored_deps for p in d.files(store)])
            dep_refs = [refs[d] for d in unit.deps if d in pending]
            args = (spec, unit.id, threads, "cuda" if gpu else "cpu", run, stored_files)
            refs[unit.id] = task.remote(*args, *dep_refs)
        by_ref = {ref: unit_id for unit_id, ref in refs.items()}
        remaining = list(refs.values())
        while remaining:
            ready, remaining = ray.wait(remaining, num_returns=1)
            unit_id = by_ref[ready[0]]
            files = dict(ray.get(ready[0]))  # re-raises a task's error here
            seconds = float(files.pop(SECONDS))
            logs = {name: files.pop(name) for name in sorted(files) if Path(name).name in LOG_FILES}
            _write_files(store, files)
            for name, lines in logs.items():  # after the files they log, as a unit computed here
                store.append_log(store.root / name, lines)
            _finished(report, bar, units[unit_id].name, seconds)
    finally:
        if started:
            ray.shutdown()
            if address is None:  # every worker ran on this machine, and none is left
                remove_process_folders(unit_folder_prefix(run), only_dead=False)
