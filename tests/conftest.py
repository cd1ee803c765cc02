"""Session hooks and shared fixtures for pytest: the longest test starts first, so that the pytest-xdist workers
finish together; the command line's fixtures.

`make test` runs the unit tests in several workers (pytest-xdist, ``--dist worksteal``); the paper-path test
executes all five chapters and takes over two minutes. Collected last (alphabetically), it would start when the
other worker is nearly done and run alone; collected first, it runs beside everything else.
"""

from __future__ import annotations

import subprocess
import types
from pathlib import Path

import pytest

from advlogits.cli import chapter as chapter_verbs
from advlogits.pipeline import executors

LONGEST_FIRST = ("test_paper_path.py", "test_lab.py", "test_pipeline_executors.py", "test_pipeline_plan.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name not in LONGEST_FIRST)  # stable: the others keep their order


# The command line's fixtures (tests/test_cli.py, tests/test_reliability.py): a store of the test's own and no compute.


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    """A store of this test's own (not yet created) and an empty folder of executed chapters."""
    root = tmp_path / "store"
    monkeypatch.setenv("ADVLOGITS_HOME", str(root))
    executed = tmp_path / "executed"
    executed.mkdir()
    monkeypatch.setenv("ADVLOGITS_EXECUTED_DIR", str(executed))
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    return root


@pytest.fixture()
def no_compute(monkeypatch) -> list:
    """Replaces what would compute (running the plan, papermill) by a failure: a refusal must come before it."""
    calls: list = []

    def refuse(*args, **kwargs):
        calls.append((args, kwargs))
        raise AssertionError(f"compute started for bad input: {args} {kwargs}")

    monkeypatch.setattr(executors, "run_plan", refuse)  # where `advlogits run` imports it from
    monkeypatch.setattr(chapter_verbs, "subprocess", types.SimpleNamespace(run=refuse, PIPE=subprocess.PIPE))
    return calls
