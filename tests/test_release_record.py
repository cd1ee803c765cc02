"""advlogits.release.record: `make results` records a build in results/PROFILE/ (the scorecard, the environment and,
for cpu, the README's table), or refuses a missing, out-of-date or uncommitted one, naming the command to run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_release_readme_table import END, README, RECORDS, START

from advlogits.release import readme_table, record
from advlogits.release.readme import ResultsError, readme_block

ROOT = Path(__file__).resolve().parents[1]


def _notebook(path: Path, *, seconds: float | None, end: str, profile: str = "cpu") -> None:
    papermill = {"parameters": {"profile": profile, "device": "auto"}, "end_time": end}
    if seconds is not None:
        papermill["duration"] = seconds
    path.write_text(json.dumps({"cells": [], "metadata": {"papermill": papermill}, "nbformat": 4, "nbformat_minor": 5}))


def _build(root: Path, records: list | None = RECORDS, *, profile: str = "cpu") -> Path:
    """A repository in ``root`` with a README and an executed ``profile`` build of two chapters."""
    executed = root / "_build" / "executed" / profile
    executed.mkdir(parents=True)
    _notebook(executed / "01_a.ipynb", seconds=60.04, end="2026-01-02T03:04:05+00:00", profile=profile)
    _notebook(executed / "05_scorecard.ipynb", seconds=30.0, end="2026-01-02T03:05:00+00:00", profile=profile)
    if records is not None:
        (executed / "scorecard.json").write_text(json.dumps(records, indent=1))
    (root / "README.md").write_text(README)
    return executed


# ---------------------------------------------------------------------------------------------------------------
# the repository


def test_the_results_folder_is_not_ignored_by_git():
    done = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "results/cpu/scorecard.json", "results/cpu/environment.json"],
        capture_output=True,
        text=True,
    )
    if done.returncode == 128:
        pytest.skip(f"not a git checkout ({done.stderr.strip()})")
    assert done.returncode == 1, f".gitignore ignores {done.stdout.split()}: results/ must be committed"


def test_make_results_runs_the_module_on_the_chosen_profile():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", "-C", str(ROOT), "results", "PROFILE=smoke", f"VENV={sys.prefix}"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert f"{sys.prefix}/bin/python -m advlogits.release.record --profile smoke --root ." in done.stdout


# ---------------------------------------------------------------------------------------------------------------
# recording a build


def test_record_results_copies_the_scorecard_writes_the_environment_and_rewrites_only_the_readme_block(tmp_path):
    executed = _build(tmp_path)
    written = record.record_results("cpu", root=tmp_path)
    out = tmp_path / "results" / "cpu"
    assert written == [out / "scorecard.json", out / "environment.json", tmp_path / "README.md"]
    assert (out / "scorecard.json").read_bytes() == (executed / "scorecard.json").read_bytes()
    env = json.loads((out / "environment.json").read_text())
    assert env["profile"] == "cpu" and env["commit"] is None and env["uncommitted_changes"] is None  # no git here
    assert env["wall_seconds"] == 90.0
    assert env["chapter_seconds"] == {"01_a": 60.0, "05_scorecard": 30.0}
    assert env["build_finished"] == "2026-01-02T03:05:00+00:00"
    assert env["device_requested"] == "auto" and env["device"] in ("cpu", "cuda", "mps")
    assert env["python"] == ".".join(map(str, sys.version_info[:3]))
    assert {"advlogits", "torch", "torchvision", "numpy", "pandas", "papermill"} <= set(env["packages"])
    readme = (tmp_path / "README.md").read_text()
    assert readme.startswith("# title\n\nbefore\n\n" + START) and readme.endswith(END + "\n\nafter\n")
    expected = readme_table.render_block({"decisive": (None, None), "cpu": (RECORDS, env)})
    assert readme_block(readme, readme_table.MARKERS) == expected
    # the committed JSON alone re-renders the same block
    readme_table.readme_from_results(tmp_path)
    assert (tmp_path / "README.md").read_text() == readme


def test_another_profile_is_recorded_beside_cpu_and_leaves_the_readme_alone(tmp_path):
    _build(tmp_path, profile="smoke")
    written = record.record_results("smoke", root=tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "results/smoke/scorecard.json",
        "results/smoke/environment.json",
    ]
    assert (tmp_path / "README.md").read_text() == README


def test_a_chapter_without_a_papermill_duration_leaves_the_wall_time_unknown(tmp_path):
    executed = _build(tmp_path)
    _notebook(executed / "02_b.ipynb", seconds=None, end="2026-01-02T03:04:30+00:00")
    env = record.environment(executed, profile="cpu", root=tmp_path)
    assert env["wall_seconds"] is None and env["chapter_seconds"]["02_b"] is None
    assert "executed in" not in readme_table.render_block({"cpu": (RECORDS, env)})


def test_a_git_checkout_records_its_commit_and_whether_it_has_local_changes(tmp_path):
    _build(tmp_path)
    (tmp_path / "notes.txt").write_text("a tracked file\n")
    git = ["git", "-C", str(tmp_path), "-c", "user.name=advlogits", "-c", "user.email=tests@advlogits.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "README.md", "notes.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    env = record.environment(tmp_path / "_build" / "executed" / "cpu", profile="cpu", root=tmp_path)
    assert env["commit"] == head and env["uncommitted_changes"] is False
    (tmp_path / "README.md").write_text("rewritten by make results itself: not a local change\n")
    assert (
        record.environment(tmp_path / "_build" / "executed" / "cpu", profile="cpu", root=tmp_path)[
            "uncommitted_changes"
        ]
        is False
    )
    (tmp_path / "notes.txt").write_text("edited\n")
    assert (
        record.environment(tmp_path / "_build" / "executed" / "cpu", profile="cpu", root=tmp_path)[
            "uncommitted_changes"
        ]
        is True
    )
    with pytest.raises(ResultsError, match=r"^the working tree has uncommitted changes.*commit them"):
        record.record_results("cpu", root=tmp_path)
    assert not (tmp_path / "results" / "cpu" / "scorecard.json").exists(), "nothing recorded from a dirty tree"


# ---------------------------------------------------------------------------------------------------------------
# refusals, each naming what to run


def test_a_missing_scorecard_names_the_build_command(tmp_path):
    _build(tmp_path, records=None)
    with pytest.raises(
        ResultsError,
        match=r"no scorecard at .*scorecard\.json: build the cpu profile first with "
        r"`make book PROFILE=cpu`, then `make results PROFILE=cpu`",
    ):
        record.record_results("cpu", root=tmp_path)
    assert not (tmp_path / "results").exists()


def test_the_command_line_prints_the_error_and_fails(tmp_path):
    _build(tmp_path, records=None, profile="smoke")
    done = subprocess.run(
        [sys.executable, "-m", "advlogits.release.record", "--profile", "smoke", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: no scorecard at ") and "`make book PROFILE=smoke`" in done.stderr


def test_a_scorecard_older_than_the_library_is_refused(tmp_path):
    executed = _build(tmp_path)
    source = tmp_path / "lib" / "advlogits" / "chapters" / "claims.py"
    source.parent.mkdir(parents=True)
    source.write_text("# edited after the build\n")
    built = (executed / "scorecard.json").stat().st_mtime
    os.utime(source, (built + 10, built + 10))
    with pytest.raises(
        ResultsError,
        match=r"older than lib/advlogits/chapters/claims\.py: the cpu build is out of "
        r"date; run `make book PROFILE=cpu`",
    ):
        record.record_results("cpu", root=tmp_path)
    os.utime(source, (built - 10, built - 10))
    record.record_results("cpu", root=tmp_path)


def test_chapters_executed_at_another_profile_are_refused(tmp_path):
    executed = _build(tmp_path)
    _notebook(executed / "02_b.ipynb", seconds=1.0, end="2026-01-02T03:04:30+00:00", profile="smoke")
    with pytest.raises(ResultsError, match=r"executed at another profile \(\{'02_b': 'smoke'\}\), not cpu"):
        record.record_results("cpu", root=tmp_path)


def test_versions_sentence_names_python_and_every_installed_key_package():
    import importlib.metadata
    import platform

    sentence = record.versions_sentence()
    assert sentence.startswith(f"Python {platform.python_version()}, advlogits ")
    assert f"torch {importlib.metadata.version('torch')}" in sentence
    assert set(record.package_versions()) <= set(record.KEY_PACKAGES)
