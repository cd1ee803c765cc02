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

Run: ``python -m benchmarks.book --profile smoke`` (the default, ``cpu``, takes many minutes); writes
``_build/bench/book.json`` as ``{"cold_s": ..., "warm_s": ..., "chapters": {name: {"cold_s", "warm_s"}}, ...}``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._common import REPO_ROOT, base_parser, environment, load_average, verdict, write_result

NAME = "book"
TARGETS_S = {"cold_s": 600.0, "warm_s": 120.0}  # performance targets: at most 10 minutes cold, under 2 minutes warm
_START = re.compile(r"^==> executing chapters/(?P<name>[^\s/]+)\.ipynb\b")
_END = re.compile(r"^mv \S*/\.partial/(?P<name>[^\s/]+)\.ipynb\s")
# Variables a parent make (e.g. `make bench`) exports; the timed make must start as if typed by a user.
_PARENT_MAKE_VARS = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "MAKE_TERMOUT", "MAKE_TERMERR")


@dataclass(frozen=True)
class BuildTime:
    """Seconds of one ``make site`` run, split into set-up, chapters and the site build."""

    total_s: float
    setup_s: float
    chapters: dict[str, float]
    site_s: float
    store_files: int  # files in ADVLOGITS_HOME after the run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = base_parser(__doc__, name=NAME)  # --threads is passed to the build as OMP_NUM_THREADS
    parser.add_argument("--keep", action="store_true", help="keep the temporary store and build folders")
    return parser.parse_args(argv)


def count_files(folder: Path) -> int:
    return sum(1 for path in folder.rglob("*") if path.is_file())


def timed_make(*, profile: str, device: str, home: Path, work: Path, log: Path,
               threads: int | None) -> BuildTime:
    """Run ``make site`` into ``work`` with store ``home``; time it per chapter from its output lines."""
    command = ["make", "--no-print-directory", "-C", str(REPO_ROOT), "site", f"PROFILE={profile}",
               f"DEVICE={device}", f"EXEC_DIR={work / 'executed'}", f"SRC_DIR={work / 'src'}",
               f"JB_OUT={work / 'jb'}"]
    env = {k: v for k, v in os.environ.items() if k not in _PARENT_MAKE_VARS}
    env["ADVLOGITS_HOME"] = str(home)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)

    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    tail: deque[str] = deque(maxlen=40)
    log.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    with log.open("w") as out, subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                text=True, bufsize=1) as proc:
        out.write(f"# {' '.join(command)}\n# ADVLOGITS_HOME={home}\n")
        assert proc.stdout is not None
        for line in proc.stdout:
            now = time.perf_counter() - began
            out.write(f"{now:9.2f}  {line}")
            tail.append(line)
            if match := _START.match(line):
                starts[match["name"]] = now
                print(f"  {now:7.1f} s  executing {match['name']}", flush=True)
            elif match := _END.match(line):
                ends[match["name"]] = now
        returncode = proc.wait()
    total = time.perf_counter() - began
    if returncode != 0:
        raise SystemExit(f"`{' '.join(command)}` failed with exit code {returncode}; its output is in {log}. "
                         f"Last lines:\n{''.join(tail)}")
    if not starts or starts.keys() != ends.keys():
        raise SystemExit(f"could not find every chapter's start and end in make's output ({sorted(starts)} started, "
                         f"{sorted(ends)} finished); see {log}")
    return BuildTime(total_s=total, setup_s=min(starts.values()),
                     chapters={name: ends[name] - starts[name] for name in sorted(starts)},
                     site_s=total - max(ends.values()), store_files=count_files(home))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    load_avg_start = load_average()
    scratch = Path(tempfile.mkdtemp(prefix="advlogits-bench-book-"))
    home = scratch / "store"
    home.mkdir()
    try:
        runs: dict[str, BuildTime] = {}
        for run in ("cold", "warm"):
            print(f"==> book benchmark, {run} store (profile={args.profile}, device={args.device}, store={home})",
                  flush=True)
            runs[run] = timed_make(profile=args.profile, device=args.device, home=home, work=scratch / run,
                                   log=args.out.with_suffix(f".{run}.log"), threads=args.threads)
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    cold, warm = runs["cold"], runs["warm"]
    result: dict[str, Any] = {
        "benchmark": NAME,
        "cold_s": cold.total_s,
        "warm_s": warm.total_s,
        "chapters": {name: {"cold_s": cold.chapters[name], "warm_s": warm.chapters.get(name)}
                     for name in cold.chapters},
        "phases": {run: {"setup_s": t.setup_s, "chapters_s": sum(t.chapters.values()), "site_s": t.site_s}
                   for run, t in runs.items()},
        "store_files_after_cold": cold.store_files,
        "store_files_added_by_warm": warm.store_files - cold.store_files,
        "targets": {k: {"at_most": TARGETS_S[k], "met": result_s <= TARGETS_S[k]}
                    for k, result_s in (("cold_s", cold.total_s), ("warm_s", warm.total_s))},
        "settings": {"profile": args.profile, "device": args.device, "command": "make site (make book minus the copy)",
                     "omp_num_threads": os.environ.get("OMP_NUM_THREADS") if args.threads is None else args.threads},
        "env": environment(load_avg_start=load_avg_start),
    }
    width = max(len(name) for name in cold.chapters)
    summary = [
        f"make site PROFILE={args.profile} DEVICE={args.device}, load average {load_avg_start} -> "
        f"{result['env']['load_avg']}:",
        f"  {'':{width}s}    cold s    warm s",
        *(f"  {name:{width}s}  {t['cold_s']:8.1f}  {t['warm_s']:8.1f}" for name, t in result["chapters"].items()),
        f"  {'(set-up)':{width}s}  {cold.setup_s:8.1f}  {warm.setup_s:8.1f}",
        f"  {'(site build)':{width}s}  {cold.site_s:8.1f}  {warm.site_s:8.1f}",
        f"  {'total':{width}s}  {cold.total_s:8.1f}  {warm.total_s:8.1f}",
        *(f"  {k}: {verdict(result[k], v['at_most'])} (target <= {v['at_most']:.0f} s)"
          for k, v in result["targets"].items()),
        f"  the warm run added {result['store_files_added_by_warm']} files to the store "
        f"(the cold one left {cold.store_files})",
    ]
    write_result(result, args.out, summary)
    return result


if __name__ == "__main__":
    main()
