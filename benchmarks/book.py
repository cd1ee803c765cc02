"""Wall time of building the book, from an empty store (cold) and again from the store it filled (warm).

What is measured: the Makefile's own build, ``make site PROFILE=<profile> DEVICE=<device>`` (every chapter
executed by papermill, then the Jupyter Book build with ``-W``), run twice as a subprocess:

* cold: ``ADVLOGITS_HOME`` is a new, empty temporary folder, so every model is trained and every result
  computed;
* warm: the same ``ADVLOGITS_HOME`` again, so chapters read models and results from the store.

Both runs execute into fresh temporary folders (the Makefile's ``EXEC_DIR``, ``SRC_DIR`` and ``JB_OUT`` are
overridden on make's command line), so make re-executes every chapter, and the repository's own ``_build/``
is never touched. ``make book`` is ``make site`` plus a copy of the finished site into ``_build/html`` (a few
milliseconds), which is left out so that a benchmark never replaces the book you built.

Per chapter, the time runs from make's ``==> executing chapters/<name>.ipynb`` line to its
``mv .../.partial/<name>.ipynb`` line (papermill start-up, kernel start-up and every cell); each line of make's
output is time-stamped as it arrives. ``setup_s`` is the time before the first chapter (venv and data
checks), ``site_s`` the time after the last one (staging and the Jupyter Book build). Make's complete output,
time-stamped, goes to ``<out>.cold.log`` and ``<out>.warm.log``. The store's file count after each run shows
whether the warm run really was warm (it should add no files).

The compute floor: every cold run counts the model passes it makes (``$ADVLOGITS_COUNT_PASSES``, see
`advlogits.passes`: images through each architecture in attack steps, in training steps and in inference), and the
benchmark times a bare loop of each kind before the builds and again after them, on the quiet machine
(`per_image_seconds`: one thread, each kind at the batch size the book runs it at; one such loop on every core at
once, as the build's workers run, `bare_costs`), keeping the faster of the two timings of each kind (the machine's
speed moves by several per cent from one hour to the next). The passes times those per-image costs, shared over the
machine's cores, is the floor (``floor.floor_s``), and ``floor.ratio_cold`` the cold build's multiple of it.

Both runs build as ``make book`` does by default: they first compute the book's plan (``advlogits run`` with one
one-thread worker per core, or ``--plan-workers N``; ``--plan-executor ray`` on a cluster), then the chapters, which
find everything stored; the plan's time is ``plan_s``. ``targets`` gives each of `TARGETS` with its measured value
and whether it is met.

Run: ``python -m benchmarks.book --profile smoke`` (the default, ``cpu``, takes many minutes); writes
``_build/bench/book.json`` as ``{"cold_s": ..., "warm_s": ..., "chapters": {name: {"cold_s", "warm_s"}}, ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from advlogits import models, passes, profiles
from advlogits.data import input_shape, num_classes
from advlogits.pipeline.plan import book_plan
from benchmarks._common import (
    REPO_ROOT,
    bare_passes,
    base_parser,
    environment,
    environment_outside_make,
    load_average,
    median_per_image,
    run_children,
    run_time_stamped,
    verdict,
    write_result,
)
from benchmarks.allocator import KEPT

NAME = "book"
# The targets, each an upper bound on one field of the result (a dotted path for a nested one), set for the cpu
# profile on two cores: the cold build within the laptop budget of 35 minutes and within 1.1x its compute floor;
# the warm build at most 40 s.
TARGETS = {
    "cold_s": 2100.0,
    "floor.ratio_cold": 1.1,
    "warm_s": 40.0,
}
# The batch sizes of the book's passes, for the floor: attacks (PGD's evaluation batches,
# `advlogits.pipeline.measures.pgd_correct`) and inference (`advlogits.predict.predict_logits`); training runs at
# the profile's batch size.
FLOOR_BATCHES = {"input_gradient": 500, "forward": 1000}
BARRIER_TIMEOUT_S = 300  # how long a child of `bare_costs` waits for its siblings to start
_START = re.compile(r"^==> executing chapters/(?P<name>[^\s/]+)\.ipynb\b")
_END = re.compile(r"^mv \S*/\.partial/(?P<name>[^\s/]+)\.ipynb\s")
_PLAN = re.compile(r"^==> computing the plan of PROFILE=")
_PLAN_DONE = re.compile(r"^computed \d+ units in (?P<unit_min>[\d.]+) min of unit time, .*busy (?P<busy>\d+)% of it;")


@dataclass(frozen=True)
class BuildTime:
    """Seconds of one ``make site`` run, split into set-up, chapters and the site build."""

    total_s: float
    setup_s: float
    chapters: dict[str, float]
    chapters_wall_s: float  # from the first chapter's start to the last one's end (chapters may run side by side)
    site_s: float
    store_files: int  # files in ADVLOGITS_HOME after the run
    plan_s: float = 0.0  # `advlogits run` before the chapters, part of setup_s
    plan_unit_s: float | None = None  # the sum of its units' times, as `advlogits run` reports it
    plan_busy: float | None = None  # the fraction of its workers' wall time they computed units


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = base_parser(__doc__, name=NAME)  # --threads is passed to the build as OMP_NUM_THREADS
    parser.add_argument("--keep", action="store_true", help="keep the temporary store and build folders")
    parser.add_argument("--bare-costs", help=argparse.SUPPRESS)  # a child timing `per_image_seconds` of these archs
    parser.add_argument("--bare-barrier", type=Path, help=argparse.SUPPRESS)  # the folder where its siblings check in
    parser.add_argument("--bare-children", type=int, default=1, help=argparse.SUPPRESS)  # how many time at once
    parser.add_argument(
        "--plan-workers",
        type=int,
        default=None,
        help="compute the plan with this many one-thread workers (default: the Makefile's, one per core)",
    )
    parser.add_argument("--plan-executor", choices=("local", "ray"), default="local", help="the plan's executor")
    args = parser.parse_args(argv)
    if args.plan_workers is not None and args.plan_workers < 1:
        parser.error(f"argument --plan-workers: must be an integer >= 1 (got {args.plan_workers})")
    return args


def count_files(folder: Path) -> int:
    return sum(1 for path in folder.rglob("*") if path.is_file())


def timed_make(
    *,
    profile: str,
    device: str,
    home: Path,
    work: Path,
    log: Path,
    threads: int | None,
    plan_workers: int | None = None,
    plan_executor: str = "local",
    count_passes: Path | None = None,
) -> BuildTime:
    """Run ``make site`` into ``work`` with store ``home``; time it per chapter from its output lines."""
    command = [
        "make",
        "--no-print-directory",
        "-C",
        str(REPO_ROOT),
        "site",
        f"PROFILE={profile}",
        f"DEVICE={device}",
        f"EXEC_DIR={work / 'executed'}",
        f"SRC_DIR={work / 'src'}",
        f"JB_OUT={work / 'jb'}",
        f"PLAN_EXECUTOR={plan_executor}",
        *([] if plan_workers is None else [f"PLAN_WORKERS={plan_workers}"]),
    ]
    env = environment_outside_make()
    env["ADVLOGITS_HOME"] = str(home)
    if count_passes is not None:
        env[passes.ENV] = str(count_passes)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)

    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    plan_start: float | None = None
    plan_done: re.Match | None = None

    def on_line(now: float, line: str) -> None:
        nonlocal plan_start, plan_done
        if _PLAN.match(line):
            plan_start = now
            print(f"  {now:7.1f} s  computing the plan", file=sys.stderr, flush=True)
        elif match := _START.match(line):
            starts[match["name"]] = now
            print(f"  {now:7.1f} s  executing {match['name']}", file=sys.stderr, flush=True)
        elif match := _END.match(line):
            ends[match["name"]] = now
        elif match := _PLAN_DONE.match(line):
            plan_done = match

    header = f"# {' '.join(command)}\n# ADVLOGITS_HOME={home}\n"
    total = run_time_stamped(command, env=env, log=log, on_line=on_line, header=header)
    if not starts or starts.keys() != ends.keys():
        raise SystemExit(
            f"could not find every chapter's start and end in make's output ({sorted(starts)} started, "
            f"{sorted(ends)} finished); see {log}"
        )
    first, last = min(starts.values()), max(ends.values())
    return BuildTime(
        total_s=total,
        setup_s=first,
        chapters={name: ends[name] - starts[name] for name in sorted(starts)},
        chapters_wall_s=last - first,
        site_s=total - last,
        store_files=count_files(home),
        plan_s=0.0 if plan_start is None else first - plan_start,
        plan_unit_s=None if plan_done is None else 60 * float(plan_done["unit_min"]),
        plan_busy=None if plan_done is None else int(plan_done["busy"]) / 100,
    )


def per_image_seconds(arch: str, *, profile: str, repeats: int = 10) -> dict[str, float]:
    """Seconds per image of each kind of pass (`advlogits.passes.KINDS`) of ``arch`` on the profile's data set, one
    thread, bare (`benchmarks._common.bare_passes`), each at the batch size the book runs it at (`FLOOR_BATCHES`;
    training at the profile's batch size, with SGD, momentum and the profile's weight decay): the median of
    ``repeats`` timed batches after one untimed."""
    p = profiles.resolve(profile, device="cpu")
    shape, classes = input_shape(p.dataset), num_classes(p.dataset)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = models.build_for(arch, p.dataset).eval()
        optimizer = torch.optim.SGD(model.parameters(), lr=p.lr, momentum=0.9, weight_decay=p.weight_decay)
        sizes = {**FLOOR_BATCHES, "parameter_gradient": p.batch_size}
        batches = {
            kind: (torch.rand(sizes[kind], *shape), torch.randint(0, classes, (sizes[kind],))) for kind in passes.KINDS
        }
        runs = bare_passes(model, batches, optimizer=optimizer)
        return {kind: median_per_image(runs[kind], images=sizes[kind], rounds=repeats) for kind in passes.KINDS}
    finally:
        torch.set_num_threads(previous)


def plan_archs(profile: str) -> list[str]:
    """The architectures of every model the book's plan at ``profile`` trains."""
    units = book_plan(profiles.resolve(profile, device="cpu"))
    return sorted({u.config.arch for u in units if u.kind == "model"})


def bare_costs(archs: list[str], *, profile: str, cores: int = 1) -> dict[str, dict[str, float]]:
    """`per_image_seconds` of each of ``archs`` with ``cores`` loops at once: one child process per core, all timing
    together (each waits at a barrier until every child has started), each kind's cost the mean over the children.
    The build keeps every core busy, and cores share caches and memory bandwidth: on two cores the same bare loop
    runs 5-12% slower per kind with a second one beside it (`benchmarks/README.md`), so a floor priced from one loop
    alone would be a floor no build on every core can reach. The children start with the allocator settings the
    Makefile gives every build (`benchmarks.allocator.KEPT`, unless the environment sets them): this process may
    have started without them, and the bare loops must run as the build's passes do."""
    env = environment_outside_make()
    env.update({k: os.environ.get(k, v) for k, v in KEPT.items()})
    with tempfile.TemporaryDirectory(prefix="advlogits-bare-") as barrier:
        args = ["--profile", profile, "--bare-costs", ",".join(archs)]
        args += ["--bare-barrier", barrier, "--bare-children", str(cores)]
        children = run_children("benchmarks.book", args, n=cores, env=env, what="timing the bare passes")
    windows = [child["window"] for child in children]
    if max(start for start, _ in windows) >= min(end for _, end in windows):
        raise RuntimeError(f"the {cores} children timing the bare passes did not run at once: windows {windows}")
    return {
        arch: {kind: statistics.fmean(c["per_image_s"][arch][kind] for c in children) for kind in passes.KINDS}
        for arch in archs
    }


def _time_bare_passes(args: argparse.Namespace) -> dict[str, Any]:
    """The child of `bare_costs`: check in at the barrier, wait for every sibling, then time each architecture."""
    if args.bare_barrier is not None:
        (args.bare_barrier / str(os.getpid())).touch()
        deadline = time.monotonic() + BARRIER_TIMEOUT_S
        while sum(1 for _ in args.bare_barrier.iterdir()) < args.bare_children:
            if time.monotonic() > deadline:
                raise SystemExit(f"only some of the {args.bare_children} children started in {BARRIER_TIMEOUT_S} s")
            time.sleep(0.01)
    began = time.time()
    costs = {arch: per_image_seconds(arch, profile=args.profile) for arch in args.bare_costs.split(",")}
    return {"per_image_s": costs, "window": [began, time.time()]}


def compute_floor(
    counted: dict[str, dict[str, int]], *, costs: dict[str, dict[str, float]], profile: str, cores: int
) -> dict[str, Any] | None:
    """The floor of a run from its counted passes: each pass at its bare per-image cost with ``cores`` loops at once
    (`bare_costs`), over ``cores`` cores. The bare loops are timed again now, after the builds, and each kind keeps
    the faster of that and ``costs`` (timed before them; an architecture missing there has only the second timing):
    the machine's speed moves from one hour to the next, and the floor is a lower bound."""
    if not counted:
        return None
    after = bare_costs(sorted(counted), profile=profile, cores=cores)
    faster = {
        arch: {kind: min(after[arch][kind], costs.get(arch, after[arch])[kind]) for kind in after[arch]}
        for arch in counted
    }
    serial = sum(counted[arch].get(kind, 0) * faster[arch][kind] for arch in counted for kind in passes.KINDS)
    return {
        "passes": counted,
        "per_image_s": faster,
        "per_image_s_before": {arch: costs[arch] for arch in counted if arch in costs},
        "per_image_s_after": after,
        "cores": cores,
        "serial_s": serial,
        "floor_s": serial / cores,
    }


def targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target of `TARGETS` with the result's value (None where the run did not measure it), and whether met."""

    def value(path: str) -> float | None:
        node: Any = result
        for part in path.split("."):
            node = None if node is None else node.get(part)
        return node

    out = {}
    for path, at_most in TARGETS.items():
        measured = value(path)
        out[path] = {"value": measured, "at_most": at_most, "met": None if measured is None else measured <= at_most}
    return out


def target_line(name: str, target: dict[str, Any]) -> str:
    """One line of the summary: ``warm_s = 31.20 <= 45: met``."""
    if target["value"] is None:
        return f"  {name}: not measured in this run (target <= {target['at_most']:g})"
    value, at_most = target["value"], target["at_most"]
    return f"  {name} = {value:.2f} (target <= {at_most:g}): {verdict(value, at_most)}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.bare_costs:
        print(json.dumps(_time_bare_passes(args)))
        return {}
    load_avg_start = load_average()
    scratch = Path(tempfile.mkdtemp(prefix="advlogits-bench-book-"))
    home = scratch / "store"
    home.mkdir()
    print("==> book benchmark, timing the bare passes of the compute floor", file=sys.stderr, flush=True)
    costs = bare_costs(plan_archs(args.profile), profile=args.profile, cores=os.cpu_count() or 1)
    try:
        runs: dict[str, BuildTime] = {}
        for run in ("cold", "warm"):
            print(
                f"==> book benchmark, {run} store (profile={args.profile}, device={args.device}, store={home}, "
                f"plan workers={args.plan_workers})",
                file=sys.stderr,
                flush=True,
            )
            runs[run] = timed_make(
                profile=args.profile,
                device=args.device,
                home=home,
                work=scratch / run,
                log=args.out.with_suffix(f".{run}.log"),
                threads=args.threads,
                plan_workers=args.plan_workers,
                plan_executor=args.plan_executor,
                count_passes=scratch / f"passes-{run}",
            )
        counted = passes.read(scratch / "passes-cold") if (scratch / "passes-cold").is_dir() else {}
        floor = compute_floor(counted, costs=costs, profile=args.profile, cores=os.cpu_count() or 1)
    finally:
        if args.keep:
            print(f"kept {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    cold, warm = runs["cold"], runs["warm"]
    result: dict[str, Any] = {
        "benchmark": NAME,
        "cold_s": cold.total_s,
        "warm_s": warm.total_s,
        "chapters": {
            name: {"cold_s": cold.chapters[name], "warm_s": warm.chapters.get(name)} for name in cold.chapters
        },
        "phases": {
            run: {
                "setup_s": t.setup_s,
                "plan_s": t.plan_s,
                "plan_unit_s": t.plan_unit_s,
                "plan_busy": t.plan_busy,
                "chapters_s": t.chapters_wall_s,
                "chapters_sum_s": sum(t.chapters.values()),
                "site_s": t.site_s,
            }
            for run, t in runs.items()
        },
        "plan": {"workers": args.plan_workers, "executor": args.plan_executor},
        "floor": None
        if floor is None
        else {
            **floor,
            "ratio_cold": cold.total_s / floor["floor_s"],
        },
        "store_files_after_cold": cold.store_files,
        "store_files_added_by_warm": warm.store_files - cold.store_files,
        "settings": {
            "profile": args.profile,
            "device": args.device,
            "command": "make site (make book minus the copy)",
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS") if args.threads is None else args.threads,
        },
        "env": environment(load_avg_start=load_avg_start),
    }
    result["targets"] = targets(result)
    width = max(len(name) for name in cold.chapters)
    summary = [
        f"make site PROFILE={args.profile} DEVICE={args.device}, load average {load_avg_start} -> "
        f"{result['env']['load_avg']}:",
        f"  {'':{width}s}    cold s    warm s",
        *(f"  {name:{width}s}  {t['cold_s']:8.1f}  {t['warm_s']:8.1f}" for name, t in result["chapters"].items()),
        f"  {'(chapters, wall)':{width}s}  {cold.chapters_wall_s:8.1f}  {warm.chapters_wall_s:8.1f}",
        f"  {'(set-up)':{width}s}  {cold.setup_s:8.1f}  {warm.setup_s:8.1f}",
        f"  {'(site build)':{width}s}  {cold.site_s:8.1f}  {warm.site_s:8.1f}",
        f"  {'total':{width}s}  {cold.total_s:8.1f}  {warm.total_s:8.1f}",
        *(target_line(name, t) for name, t in result["targets"].items()),
        f"  the warm run added {result['store_files_added_by_warm']} files to the store "
        f"(the cold one left {cold.store_files})",
    ]
    workers = args.plan_workers or "one per core,"
    summary.append(
        f"  the plan ({workers} {args.plan_executor} workers) took {cold.plan_s:.1f} s of the cold run"
        + ("" if cold.plan_busy is None else f", its workers busy {cold.plan_busy:.0%} of it")
    )
    if floor is not None:
        summary.append(
            f"  compute floor {floor['floor_s']:.1f} s ({floor['cores']} cores): cold build "
            f"{result['floor']['ratio_cold']:.2f}x the floor"
        )
    write_result(result, args.out, summary)
    return result


if __name__ == "__main__":
    main()
