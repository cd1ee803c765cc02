"""Session hooks and shared fixtures for pytest: the whole-book tests start first, one on each pytest-xdist worker;
the command line's fixtures; the smoke plan computed serially, once per session; the attack tests' images and CNN.

`make test` runs its tests in several workers (pytest-xdist, ``--dist worksteal``), which split the collected
tests into one contiguous share each, run their share in order and, once idle, take tests from the end of another
worker's share. A whole-book test (marked ``whole_book``: it computes a whole plan or executes every chapter, a minute
or more) collected late would start when the others are nearly done and run alone; so the whole-book tests are dealt
out, one worker after the other, to the start of each worker's share, and the longest files' tests follow them.
"""

from __future__ import annotations

import os
import subprocess
import types
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from torch import nn

from advlogits import profiles
from advlogits.cli import chapter as chapter_verbs
from advlogits.pipeline import executors
from advlogits.pipeline.executors import PlanSpec, run_plan
from advlogits.store import Store

from helpers import SMOKE, claim_records, computed_once, fashion_test_images, shared_folder, trained_tiny_cnn

LONGEST_FIRST = ("test_paper_path.py", "test_lab.py", "test_pipeline_executors.py", "test_pipeline_plan.py")
WHOLE_BOOK = "whole_book"


def shares(n_items: int, n_workers: int) -> list[int]:
    """How many of ``n_items`` tests each of ``n_workers`` pytest-xdist workers gets first (``--dist worksteal``
    hands the pending tests out evenly, in order: ``pending // workers left`` each)."""
    out, left = [], n_items
    for remaining in range(n_workers, 0, -1):
        out.append(left // remaining)
        left -= out[-1]
    return out


def whole_book_first(items: list, n_workers: int) -> list:
    """``items`` reordered so that each worker's share starts with whole-book tests (dealt out in turn, the longest
    files' first), then the longest files' other tests, then the rest in their collected order."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    ordered = sorted(items, key=lambda item: rank.get(item.path.name, len(rank)))  # stable
    whole = [item for item in ordered if item.get_closest_marker(WHOLE_BOOK)]
    rest = [item for item in ordered if not item.get_closest_marker(WHOLE_BOOK)]
    sizes = shares(len(items), max(n_workers, 1))
    starts = [whole[w :: len(sizes)] for w in range(len(sizes))]
    out: list = []
    for size, start in zip(sizes, starts):
        out += start + [rest.pop(0) for _ in range(max(size - len(start), 0))]
    return out + rest


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected: the shares are of the tests that run
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items[:] = whole_book_first(items, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


# The smoke plan computed serially with the default settings, the reference of every executor's store (tests/
# test_pipeline_executors.py, tests/test_pipeline_two_hosts.py): once per session, even over several pytest-xdist
# workers (the first to ask computes it under a file lock in the session's shared folder, the others find it stored).


@pytest.fixture(scope="session")
def smoke_serial_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of the smoke plan computed by ``run_plan`` with every setting left at its default (serial)."""
    home = shared_folder(tmp_path_factory) / "smoke-serial-store"
    with FileLock(str(home) + ".lock"):
        run_plan(PlanSpec(profiles.resolve(SMOKE, device="cpu")), store=Store(home), progress=False)
    return home


@pytest.fixture(scope="session")
def smoke_serial_claims(tmp_path_factory: pytest.TempPathFactory, smoke_serial_store: Path) -> list[dict]:
    """The scorecard's records of `smoke_serial_store`: the chapters that decide claims, executed on it."""
    _, records = computed_once(
        tmp_path_factory,
        "smoke-serial-executed",
        lambda executed: claim_records(smoke_serial_store, executed, profile=SMOKE),
    )
    return records


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


# The attack tests' data and model (tests/test_attacks.py, test_evaluation.py, test_autoattack.py), once per module.


@pytest.fixture(scope="module")
def test_data() -> tuple[torch.Tensor, torch.Tensor]:
    """500 Fashion-MNIST test images (500, 1, 28, 28) and labels (500,), read by hand (not by advlogits.data)."""
    return fashion_test_images(500)


@pytest.fixture(scope="module")
def cnn() -> nn.Module:
    """A tiny CNN trained for 2 epochs on 2000 Fashion-MNIST images (clean accuracy ~75%), in eval mode."""
    return trained_tiny_cnn()
