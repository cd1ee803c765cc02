"""``make test`` from a fresh clone, as CI runs it: its wall time against the target of five minutes.

What is measured: ``git clone`` of this repository's HEAD (committed work only) into a temporary folder, then
``CI=true bash .ci/run`` there, which runs ``make test``: the set-up of ``.venv``, lint, the smoke book (its plan,
every chapter, both site editions), then one pytest run of every test (the unit tests, the browser tests of the site,
the tests of the build's store). Timed from the clone to the end, with the time of each of make's ``==>`` lines and
pytest's own time. The clone has no ``.venv``, no
``_build`` and an empty store of its own (``ADVLOGITS_HOME`` in the temporary folder); caches outside it (uv's,
the Debian packages) stay as they are: for the figure of a fresh machine, empty ``~/.cache/uv`` first.

``--quick`` runs ``make help`` in the clone instead: it checks the benchmark, not the time.

Run: ``python -m benchmarks.make_test`` (``--help`` for the flags); writes ``_build/bench/make_test.json``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import (
    QUICK_HELP,
    REPO_ROOT,
    base_parser,
    environment,
    environment_outside_make,
    load_average,
    run_time_stamped,
    verdict,
    write_result,
)

NAME = "make_test"
TARGET_S = 300.0  # `make test` from a fresh clone, set-up included
_MARK = re.compile(r"^==> (?P<what>.+)$")
_TESTS = re.compile(r"^=+ (?P<counts>.*\d+ passed.*) in (?P<seconds>[\d.]+)s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = base_parser(__doc__, name=NAME)  # --profile, --device and --threads do not apply: make test decides
    parser.add_argument("--quick", action="store_true", help=QUICK_HELP)
    parser.add_argument("--keep", action="store_true", help="keep the clone (with its .venv) after the run")
    return parser.parse_args(argv)


def timed_run(command: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run ``command``, writing its time-stamped output to ``log``; the seconds of each ``==>`` line and the end."""
    marks: list[dict[str, Any]] = []
    tests: dict[str, Any] | None = None

    def on_line(now: float, line: str) -> None:
        nonlocal tests
        if match := _MARK.match(line.rstrip()):
            marks.append({"at_s": round(now, 2), "what": match["what"]})
        elif tests is None and (match := _TESTS.match(line)):
            tests = {"seconds": float(match["seconds"]), "counts": match["counts"].strip(" =")}

    total = run_time_stamped(command, cwd=cwd, env=env, log=log, on_line=on_line)
    return {"total_s": total, "marks": marks, "tests": tests}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    load_avg_start = load_average()
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    scratch = Path(tempfile.mkdtemp(prefix="advlogits-bench-make-test-"))
    clone = scratch / "repo"
    env = environment_outside_make()
    env.update(CI="true", ADVLOGITS_HOME=str(scratch / "store"))
    command = ["make", "--no-print-directory", "help"] if args.quick else ["bash", ".ci/run"]
    log = args.out.with_suffix(".log")
    print(f"==> make test benchmark: {' '.join(command)} in a clone of {commit[:12]}", file=sys.stderr, flush=True)
    try:
        began = time.perf_counter()
        subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True, timeout=600)
        clone_s = time.perf_counter() - began
        run = timed_run(command, cwd=clone, env=env, log=log)
    finally:
        if args.keep:
            print(f"kept {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    total = clone_s + run["total_s"]
    result: dict[str, Any] = {
        "benchmark": NAME,
        "total_s": total,
        "clone_s": clone_s,
        "tests": run["tests"],
        "marks": run["marks"],
        "targets": {"total_s": {"value": total, "at_most": TARGET_S, "met": total <= TARGET_S}},
        "settings": {"command": " ".join(command), "commit": commit, "quick": args.quick, "log": str(log)},
        "env": environment(load_avg_start=load_avg_start),
    }
    tests = run["tests"]
    summary = [
        f"{' '.join(command)} in a fresh clone of {commit[:12]}, load average {load_avg_start} -> "
        f"{result['env']['load_avg']}:",
        *(f"  {mark['at_s']:8.1f} s  {mark['what']}" for mark in run["marks"]),
        f"  pytest: {tests['counts']} in {tests['seconds']:.1f} s" if tests else "  pytest: not run",
        f"  total_s = {total:.1f} (target <= {TARGET_S:g}): {verdict(total, TARGET_S)}",
    ]
    write_result(result, args.out, summary)
    return result


if __name__ == "__main__":
    main()
