"""Fault injection: a training run killed at any point resumes to the result of an uninterrupted run.

Every kill is real (SIGKILL, from inside the run at an exact optimizer step or fsync, or from outside at a seeded
random time); the workers are functions of `fault_workers`. A killed run resumes from its last checkpoint (written
after every epoch but the last, whose weights are stored as the model), trains the rest once, keeps the timings of
the epochs checkpointed before the kill, and leaves no checkpoint or temporary file behind.
"""

from __future__ import annotations

import dataclasses
import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from advlogits import pipeline
from advlogits.fileio import safe_torch_load
from advlogits.store import Store

from fault_workers import (
    CONFIGS,
    STEPS_PER_EPOCH,
    WORKER_TIMEOUT_S,
    assert_same_run,
    entry_of,
    reference_runs,
    training_log,
    worker_command,
)
from helpers import computed_once

pytestmark = pytest.mark.faults


@dataclasses.dataclass(frozen=True)
class Trial:
    """One killed training run (or a chain of them) in a fresh store, then resumed by the test."""

    id: str
    config: str  # "ST" (3 epochs) or "AT" (2 epochs)
    kills: tuple[dict, ...]  # one worker run per element, each killed: after_step / at_fsync / timed
    done: int | None  # epochs checkpointed when the last kill struck (None: timed kill, read from the checkpoint)
    stored: bool = False  # the kill struck after the model itself was stored


def _done_after_step(k: int, *, start: int = 0) -> int:
    """Epochs checkpointed when a run that started at epoch ``start`` dies after its k-th optimizer step: the
    epoch of step k is not checkpointed yet, even when k is its last step (validation and the save follow)."""
    return start + (k - 1) // STEPS_PER_EPOCH


_RNG = random.Random(210812001)
_ST_STEPS = _RNG.sample([k for k in range(1, 3 * STEPS_PER_EPOCH + 1) if k not in (4, 12)], 3)
_AT_STEPS = _RNG.sample(range(1, 2 * STEPS_PER_EPOCH + 1), 2)
_TIMED = [round(_RNG.random(), 3) for _ in range(2)]

TRIALS = [
    # the last step of epoch 1 (before its validation and checkpoint) and the last step of the run
    Trial("ST-after-step-4", "ST", ({"after_step": 4},), done=0),
    Trial("ST-after-step-12", "ST", ({"after_step": 12},), done=2),
    *(Trial(f"ST-after-step-{k}", "ST", ({"after_step": k},), done=_done_after_step(k)) for k in _ST_STEPS),
    *(Trial(f"AT-after-step-{k}", "AT", ({"after_step": k},), done=_done_after_step(k)) for k in _AT_STEPS),
    # inside the checkpoint writes (fsync 1: epoch 1's checkpoint still a temporary file; fsync 4: epoch 2's
    # renamed into place; the last epoch writes none) and inside save_weights after the last epoch (fsyncs 5-16:
    # config, history, model.pt; fsync 13: model.pt a temporary file, so the last epoch is trained again; fsync 16:
    # model.pt's record in place, so the model is stored)
    Trial("ST-in-checkpoint-1-write", "ST", ({"at_fsync": 1},), done=0),
    Trial("ST-after-checkpoint-2-rename", "ST", ({"at_fsync": 4},), done=2),
    Trial("ST-in-save-model", "ST", ({"at_fsync": 13},), done=2),
    Trial("ST-after-model-record", "ST", ({"at_fsync": 16},), done=2, stored=True),
    # killed twice: in epoch 2's checkpoint write, then after 6 steps of the resumed run (2 in epoch 3)
    Trial("ST-killed-twice", "ST", ({"at_fsync": 3}, {"after_step": 6}), done=_done_after_step(6, start=1)),
    # SIGKILL from outside at a seeded random time within epoch 2 (after epoch 1's checkpoint appears)
    *(Trial(f"ST-timed-{u}", "ST", ({"timed": u},), done=None) for u in _TIMED),
]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """Uninterrupted runs of ST and AT through the store: name -> (state dict, history). They train once per session
    (every pytest-xdist worker that runs these tests reads them from that store)."""
    root, _ = computed_once(tmp_path_factory, "kill-reference", lambda folder: bool(reference_runs(folder)))
    return reference_runs(root)


def _timed_kill(root: Path, config: str, fraction: float, *, epoch_s: float) -> tuple[int, str]:
    """Start a training worker and SIGKILL it from here at ``fraction`` of 0.4 epoch after its first checkpoint
    appears (well inside epoch 2: epoch 3 remains). An epoch lasts the shorter of this run's first epoch and
    ``epoch_s`` (a later epoch of the uninterrupted run): a first epoch slowed by start-up costs or by other
    processes would otherwise push the kill past the end of the run. Returns (exit status, stderr)."""
    proc = subprocess.Popen(
        worker_command("train", {"root": str(root), "config": config}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        checkpoint = entry_of(Store(root), CONFIGS[config]) / "checkpoint.pt"
        deadline = time.monotonic() + WORKER_TIMEOUT_S
        while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        if proc.poll() is None:
            first_epoch_s = safe_torch_load(checkpoint)["history"]["seconds"][0]
            time.sleep(fraction * 0.4 * min(first_epoch_s, epoch_s))
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=WORKER_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err


@pytest.fixture(scope="module")
def killed_runs(tmp_path_factory, reference) -> dict:
    """Every trial's runs: trial id -> (store root, [exit status of each run], stderr), once per session (each
    trial's store is resumed by its own test, whichever worker runs it)."""
    _, runs = computed_once(tmp_path_factory, "killed", lambda base: _kill_every_trial(base, reference))
    return {trial_id: (Path(root), statuses, stderr) for trial_id, (root, statuses, stderr) in runs.items()}


def _kill_every_trial(base: Path, reference: dict) -> dict:
    """The trials' runs in stores under ``base``: the self-killing trials as forks of one worker
    (`fault_workers.worker_trials`), the timed ones as worker processes killed from here."""
    forked = [
        {"id": t.id, "config": t.config, "root": str(base / t.id), "kills": t.kills}
        for t in TRIALS
        if "timed" not in t.kills[0]
    ]
    trials = subprocess.Popen(
        worker_command("trials", {"trials": forked}), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out = {}
    for t in TRIALS:
        if "timed" in t.kills[0]:
            epoch_s = reference[t.config][1]["seconds"][1]  # the uninterrupted run's second epoch
            code, err = _timed_kill(base / t.id, t.config, t.kills[0]["timed"], epoch_s=epoch_s)
            out[t.id] = (str(base / t.id), [code], err)
    stdout, stderr = trials.communicate(timeout=2 * WORKER_TIMEOUT_S)
    assert trials.returncode == 0, stderr[-3000:]
    for trial_id, statuses in json.loads(stdout.splitlines()[-1]).items():
        out[trial_id] = (str(base / trial_id), statuses, stderr)
    return out


def test_kill_trials_cover_the_run():
    """At least 10 kills, at mid-epoch steps, epoch ends, inside checkpoint and model writes, and from outside."""
    kills = [k for t in TRIALS for k in t.kills]
    assert len(kills) >= 10
    mid_epoch = {k["after_step"] % STEPS_PER_EPOCH for k in kills if "after_step" in k}
    assert 0 in mid_epoch and mid_epoch - {0}, "kills at the end of an epoch and inside one"
    assert {t.config for t in TRIALS} == {"ST", "AT"}


@pytest.mark.slow
@pytest.mark.parametrize("trial", TRIALS, ids=lambda t: t.id)
def test_a_killed_training_run_resumes_to_the_uninterrupted_result(trial, killed_runs, reference):
    root, statuses, stderr = killed_runs[trial.id]
    assert statuses == [-signal.SIGKILL] * len(trial.kills), f"every run was killed; worker stderr:\n{stderr[-3000:]}"
    config = CONFIGS[trial.config]
    store = Store(root)
    entry = entry_of(store, config)
    ckpt_path = entry / "checkpoint.pt"
    checkpoint = safe_torch_load(ckpt_path) if ckpt_path.exists() else None
    done = 0 if checkpoint is None else checkpoint["epoch"] + 1
    if trial.done is None:
        assert 1 <= done < config.epochs, "the timed kill struck after epoch 1 and before the end"
    else:
        assert done == trial.done, "the last complete checkpoint is the last epoch finished before the kill"
    assert pipeline.has_model(config, store=store) == trial.stored

    model, history = pipeline.get_model(config, store=store, progress=False)  # resumes from checkpoint.pt

    assert_same_run(model, history, reference[trial.config])
    if checkpoint is not None:  # the epochs done before the kill were kept (their timings too), not redone
        assert history["seconds"][:done] == checkpoint["history"]["seconds"]
    log = training_log(entry)
    if trial.stored:
        assert log == [], "the stored model was served, not trained again"
    else:
        assert [line["resumed"] for line in log] == [done > 0], "trained once more, from the checkpoint if any"
        assert not ckpt_path.exists(), "the checkpoint is removed once the model is stored"
        assert not list(entry.rglob(".*.tmp")), "temporary files of killed writes are cleaned up"
