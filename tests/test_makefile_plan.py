"""The Makefile's plan step and record line, read from ``make -n`` (nothing is built): by default `make book`
computes the plan with one one-thread worker per core, PLAN_WORKERS overrides it (1: one process), a
PLAN_WORKERS that is not a number of workers is refused in one line, and the site's build ends with the one line that
compares its scorecard with the profile's committed record.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")


def make(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """``make -n ARGS`` in the repository, its executed chapters and its venv in ``tmp_path`` (outside any make)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE") and not k.startswith("OMP_")}
    return subprocess.run(
        ["make", "--no-print-directory", "-n", f"EXEC_DIR={tmp_path}", f"VENV={tmp_path / 'venv'}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def plan_commands(tmp_path: Path, *settings: str) -> str:
    done = make(tmp_path, str(tmp_path / ".plan"), "PROFILE=smoke", *settings)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_plan_runs_with_one_one_thread_worker_per_core_by_default(tmp_path):
    out = plan_commands(tmp_path)
    assert re.search(rf"-m advlogits run --profile smoke .*\n? *--workers {CORES} --threads 1\b", out), out
    assert "plan --check" not in out


@pytest.mark.parametrize("workers", ["1", "3"])
def test_plan_workers_overrides_the_number_of_workers(tmp_path, workers):
    out = plan_commands(tmp_path, f"PLAN_WORKERS={workers}")
    assert re.search(rf"--workers {workers} --threads 1\b", out), out


@pytest.mark.parametrize("value", ["two", "-1", "1.5", "0"])
def test_a_plan_workers_that_is_not_a_number_of_workers_is_refused_in_one_line(tmp_path, value):
    done = make(tmp_path, "help", f"PLAN_WORKERS={value}")
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and f"PLAN_WORKERS={value} is not a number of workers (>= 1)" in errors[0], done.stderr
    assert "PLAN_WORKERS=1" in errors[0]


def test_help_says_what_the_default_does(tmp_path):
    done = subprocess.run(["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "compute the plan (one worker per core" in done.stdout
    assert f"one per core, {CORES} here; 1: one process)" in done.stdout
    assert "compare its scorecard with results/PROFILE/" in done.stdout


def test_the_site_build_ends_with_the_line_against_the_committed_record(tmp_path):
    done = make(tmp_path, "site", "-o", "stage", "PROFILE=cpu")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    build = next(i for i, line in enumerate(lines) if "jupyter-book build" in line)
    check = next(i for i, line in enumerate(lines) if "-m advlogits.record_check" in line)
    assert check > build
    assert f"--profile cpu --scorecard {tmp_path}/scorecard.json" in lines[check]
    assert "|| line=" in "\n".join(lines[check:]), "a failed comparison never fails the build"
    assert 'echo "==> the scorecard against results/cpu/: $line"' in lines[-1]


def test_the_makefile_accepts_every_profile_of_the_library_and_refuses_others(tmp_path):
    from advlogits.names import PROFILES

    listed = re.search(r"^PROFILES := (.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert listed and tuple(listed.group(1).split()) == PROFILES
    for profile in PROFILES:
        assert make(tmp_path, str(tmp_path / ".plan"), f"PROFILE={profile}").returncode == 0, profile
    refused = make(tmp_path, str(tmp_path / ".plan"), "PROFILE=laptop")
    assert refused.returncode != 0 and "PROFILE=laptop is not one of: smoke cpu decisive paper" in refused.stderr
