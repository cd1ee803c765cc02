"""Fault injection: runs that are killed, share a store, meet crafted files and bad input (issue 6).

Every fault is real, nothing is mocked: worker processes die by SIGKILL (one torn write dies by the kernel's
SIGXFSZ in the middle of a write), run at the same time against one store, and load crafted pickles.
Properties, one section each:

1. a training run killed at a random point resumes from its last completed epoch to the result of an
   uninterrupted run;
2. a store write killed at any point leaves the previous entry readable and is never read half-written;
3. two processes asking for one model train it once and get the same weights; two papermill runs of a
   chapter on one store both succeed;
4. a checkpoint that would run code when unpickled is refused and the code does not run; weights that do
   not fit are refused with the bad keys named;
5. bad input (papermill parameters, the Python API, the environment) fails before any training with a
   message naming the parameter and its allowed values, and leaves the store without entries;
6. the same profile and seed give byte-identical metrics files, another seed different ones;
7. a change of the library code that matters changes the store key, an exempt module does not, and the
   Makefile re-executes a chapter when the library or the chapter changes.

The workers that get killed are functions of this file (``python tests/test_faults.py <command> <json>``),
so what runs in the killed process is ordinary Python, read next to the test that checks it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from advlogits import profiles
from advlogits.data import DatasetError
from advlogits.models import build_model, load_robustbench
from advlogits.profiles import ProfileError
from advlogits.store import Store, StoreError, code_version, config_key, safe_torch_load
from advlogits.train import TrainConfig
from helpers import CodeRunningPayload

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "chapters" / "01_standard_vs_adversarial.ipynb"
WORKER_TIMEOUT_S = 300

# Small runs: 128 images in batches of 32 are 4 optimizer steps per epoch.
ST = TrainConfig(dataset="fashion-mnist", arch="cnn-small", method="standard", epochs=3, batch_size=32, lr=0.05,
                 weight_decay=5e-4, n_train=128, n_val=32, seed=0)
AT = dataclasses.replace(ST, method="adversarial", epochs=2, eps=0.1, alpha=0.05, steps=2, seed=1)
CONFIGS = {"ST": ST, "AT": AT}
STEPS_PER_EPOCH = 4
# What "the same metrics" means: every per-epoch and per-batch number of the history and the final weights.
# ``seconds`` is wall-clock time and differs between any two runs.
METRICS = ("epoch", "train_loss", "train_acc", "val_acc", "batch_loss")


# =====================================================================================================
# helpers shared by the tests and the workers
# =====================================================================================================

def _digest(model: torch.nn.Module) -> str:
    """sha256 of a model's weights (names and values), to compare models across processes."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _wait_for(path: Path, *, timeout: float = WORKER_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout} s")
        time.sleep(0.01)


def _run_actions(actions: list) -> None:
    """Run a worker's choreography: [["touch", path] | ["wait", path] | ["sleep", seconds], ...]."""
    for verb, arg in actions:
        if verb == "touch":
            Path(arg).touch()
        elif verb == "wait":
            _wait_for(Path(arg))
        elif verb == "sleep":
            time.sleep(arg)
        else:
            raise ValueError(f"unknown action {verb!r}")


def _die() -> None:
    """SIGKILL this process: no exception, no finally block, no atexit handler runs."""
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_after_step(k: int, before_dying: list) -> None:
    """SIGKILL this process right after its k-th optimizer step (counted from the start of this process)."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    count = 0

    def hook(optimizer, args, kwargs) -> None:
        nonlocal count
        count += 1
        if count == k:
            _run_actions(before_dying)
            _die()

    register_optimizer_step_post_hook(hook)


def _kill_at_fsync(m: int) -> None:
    """SIGKILL this process when it calls ``os.fsync`` for the m-th time, before that fsync runs.

    The store fsyncs twice per atomic write (the temporary file, before its rename; the folder, after it), so the
    m-th fsync names an exact point of a write: odd m = data in a temporary file not yet renamed, even m = file
    renamed into place. The real ``os.fsync`` runs for every other call.
    """
    real = os.fsync
    count = 0

    def fsync(fd: int) -> None:
        nonlocal count
        count += 1
        if count == m:
            _die()
        real(fd)

    os.fsync = fsync


def _worker_command(command: str, args: dict) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), command, json.dumps(args)]


def _training_log(entry: Path) -> list[dict]:
    path = entry / "training.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


# =====================================================================================================
# the workers (run as `python tests/test_faults.py <command> <json args>`)
# =====================================================================================================

def worker_train(args: dict) -> None:
    """``Store(root).get_or_train(config)``, optionally killed at a point; prints the weights' digest and history."""
    kill = args.get("kill") or {}
    if "after_step" in kill:
        _kill_after_step(kill["after_step"], kill.get("before_dying", []))
    if "at_fsync" in kill:
        _kill_at_fsync(kill["at_fsync"])
    _run_actions(args.get("before", []))
    model, history = Store(args["root"]).get_or_train(CONFIGS[args["config"]], progress=False)
    print(json.dumps({"digest": _digest(model), "history": history}))


def _store_case_models() -> dict[str, torch.nn.Module]:
    """The weights of the entry that exists before the write (OLD) and of the one being written (NEW)."""
    out = {}
    for name, seed in (("OLD", 10), ("NEW", 11)):
        torch.manual_seed(seed)
        out[name] = build_model("cnn-small")
    return out


STORE_OLD = dataclasses.replace(ST, seed=10)
STORE_NEW = dataclasses.replace(ST, seed=11)
STORE_HISTORY = {"epoch": [1], "train_loss": [0.5], "train_acc": [0.8], "val_acc": [0.75], "seconds": [1.0],
                 "batch_loss": [0.6, 0.4]}
OLD_RESULT = b'{"acc": 0.5}'
NEW_RESULT = json.dumps({"per_image": list(range(40_000))}).encode()  # ~240 kB, so a write can be torn mid-way


def _prepare_old_entry(root: Path) -> Store:
    """A store holding a complete entry (OLD: model, history, config and one result)."""
    store = Store(root)
    store.save_model(STORE_OLD, _store_case_models()["OLD"], STORE_HISTORY)
    store.write_file(store.result_path(STORE_OLD, "metrics", {}, ".json"), OLD_RESULT)
    return store


def _store_write(store: Store, scenario: str) -> None:
    """The write that gets killed."""
    if scenario == "save-new":  # a new model stored beside the old entry
        store.save_model(STORE_NEW, _store_case_models()["NEW"], STORE_HISTORY)
    elif scenario == "result-into-old":  # a new result written into the old entry's folder
        store.write_file(store.result_path(STORE_OLD, "extra", {}, ".json"), NEW_RESULT)
    elif scenario == "overwrite-result":  # a complete file of the old entry rewritten
        store.write_file(store.result_path(STORE_OLD, "metrics", {}, ".json"), NEW_RESULT)
    else:
        raise ValueError(scenario)


def worker_store_kills(args: dict) -> None:
    """For each case: prepare a store with a complete OLD entry, then fork a child that performs one write and is
    killed at the case's point (the m-th fsync, or torn after ``torn_at`` bytes of a file by RLIMIT_FSIZE).
    Prints {case: signal number the child died of, or 0}. Forking keeps ~25 kills within one torch import."""
    import resource

    torch.set_num_threads(1)  # no OpenMP pool in the parent, so forked children are safe
    report = {}
    for case in args["cases"]:
        store = _prepare_old_entry(Path(args["base"]) / case["name"])
        pid = os.fork()
        if pid == 0:  # the child: arm the kill, write, exit (reached only if the kill point was not met)
            if "at_fsync" in case:
                _kill_at_fsync(case["at_fsync"])
            if "torn_at" in case:
                signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it by default; restore "terminate"
                resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
                resource.setrlimit(resource.RLIMIT_FSIZE, (case["torn_at"], case["torn_at"]))
            _store_write(store, case["scenario"])
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        report[case["name"]] = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
    print(json.dumps(report))


def worker_evaluate(args: dict) -> None:
    """Train and evaluate the smoke profile's AT model in a fresh store (for the determinism test)."""
    from advlogits import experiments

    p = profiles.resolve("smoke", device="cpu", seed=args["seed"], n_autoattack=8)
    store = Store(args["root"])
    experiments.evaluate(p, p.adversarial(), store=store, progress=False)
    print(json.dumps({"entry": str(store.entry(p.adversarial()))}))


def worker_key(args: dict) -> None:
    """Report which advlogits is imported, its code version, and whether a stored result had to be computed."""
    import advlogits

    computed = []
    store = Store(args["root"])
    store.get_or_compute_json(ST, "probe", {}, lambda: computed.append(1) or {"by": os.getpid()})
    print(json.dumps({"file": advlogits.__file__, "code": code_version(), "entry": store.entry(ST).name,
                      "computed": bool(computed)}))


def _fork_training(root: str, config: str, kill: dict) -> int:
    """Fork a child that trains ``config`` through ``Store(root).get_or_train``, armed to die at ``kill``."""
    pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        if "after_step" in kill:
            _kill_after_step(kill["after_step"], [])
        if "at_fsync" in kill:
            _kill_at_fsync(kill["at_fsync"])
        Store(root).get_or_train(CONFIGS[config], progress=False)
        status = 0  # reached only if the kill point was never met
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(status)


def worker_trials(args: dict) -> None:
    """Run the self-killing training trials, two at a time, each trial's runs one after the other.

    This process imports torch and the library and decodes the data once, then forks one child per run: a real
    process that SIGKILLs itself at its trial's point. Forking saves an interpreter start and an import per run.
    No torch operation may run here before a fork (a child inheriting a started OpenMP pool hangs), so the data
    are decoded by the loader's numpy-only reader, whose cache the children inherit.
    Prints {trial id: [exit status of each run, -signal number if killed]}.
    """
    import torch._dynamo  # noqa: F401  (imported by the first optimizer: ~3 s a child need not repeat)

    from advlogits import data

    for split in ("train", "test"):
        data._load_fashion_mnist(split, None)
    queue = [dict(t, kills=list(t["kills"])) for t in args["trials"]]
    statuses: dict[str, list[int]] = {t["id"]: [] for t in queue}
    running: dict[int, dict] = {}  # pid -> trial (its current run is kills[0])
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    while queue or running:
        while queue and len(running) < 2:
            trial = queue.pop(0)
            running[_fork_training(trial["root"], trial["config"], trial["kills"][0])] = trial
        for pid, trial in list(running.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                del running[pid]
                statuses[trial["id"]].append(-os.WTERMSIG(status) if os.WIFSIGNALED(status)
                                             else os.WEXITSTATUS(status))
                if len(trial["kills"]) > 1:  # the next run of this trial resumes what this one left
                    queue.insert(0, dict(trial, kills=trial["kills"][1:]))
        if time.monotonic() > deadline:
            for pid in running:
                os.kill(pid, signal.SIGKILL)
            raise TimeoutError(f"trials still running after {WORKER_TIMEOUT_S} s: {list(running.values())}")
        time.sleep(0.01)
    print(json.dumps(statuses))


WORKERS = {"train": worker_train, "trials": worker_trials, "store-kills": worker_store_kills,
           "evaluate": worker_evaluate, "key": worker_key}


# =====================================================================================================
# 1. kill during training
# =====================================================================================================

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
    # renamed into place) and inside save_model after the last epoch (fsyncs 7-18: config, history, model.pt;
    # fsync 15: model.pt a temporary file; fsync 18: model.pt's record in place, so the model is stored)
    Trial("ST-in-checkpoint-1-write", "ST", ({"at_fsync": 1},), done=0),
    Trial("ST-after-checkpoint-2-rename", "ST", ({"at_fsync": 4},), done=2),
    Trial("ST-in-save-model", "ST", ({"at_fsync": 15},), done=3),
    Trial("ST-after-model-record", "ST", ({"at_fsync": 18},), done=3, stored=True),
    # killed twice: in epoch 2's checkpoint write, then after 6 steps of the resumed run (2 in epoch 3)
    Trial("ST-killed-twice", "ST", ({"at_fsync": 3}, {"after_step": 6}), done=_done_after_step(6, start=1)),
    # SIGKILL from outside at a seeded random time within epoch 2 (after epoch 1's checkpoint appears)
    *(Trial(f"ST-timed-{u}", "ST", ({"timed": u},), done=None) for u in _TIMED),
]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """Uninterrupted runs of ST and AT through the store: name -> (state dict, history)."""
    root = tmp_path_factory.mktemp("reference")
    out = {}
    for name, config in CONFIGS.items():
        model, history = Store(root).get_or_train(config, progress=False)
        out[name] = ({k: v.clone() for k, v in model.state_dict().items()}, history)
    return out


def _timed_kill(root: Path, config: str, fraction: float) -> tuple[int, str]:
    """Start a training worker and SIGKILL it from here at ``fraction`` of 0.4 epoch after its first checkpoint
    appears (well inside epoch 2: epoch 3 remains). Returns (exit status, stderr)."""
    proc = subprocess.Popen(_worker_command("train", {"root": str(root), "config": config}),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        checkpoint = Store(root).entry(CONFIGS[config]) / "checkpoint.pt"
        deadline = time.monotonic() + WORKER_TIMEOUT_S
        while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        if proc.poll() is None:
            time.sleep(fraction * 0.4 * safe_torch_load(checkpoint)["history"]["seconds"][0])
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=WORKER_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err


@pytest.fixture(scope="module")
def killed_runs(tmp_path_factory) -> dict:
    """Every trial's runs: trial id -> (store root, [exit status of each run], stderr). The self-killing trials
    run as forks of one worker (`worker_trials`), the timed ones as worker processes killed from here."""
    base = tmp_path_factory.mktemp("killed")
    forked = [{"id": t.id, "config": t.config, "root": str(base / t.id), "kills": t.kills}
              for t in TRIALS if "timed" not in t.kills[0]]
    trials = subprocess.Popen(_worker_command("trials", {"trials": forked}), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    out = {}
    for t in TRIALS:
        if "timed" in t.kills[0]:
            code, err = _timed_kill(base / t.id, t.config, t.kills[0]["timed"])
            out[t.id] = (base / t.id, [code], err)
    stdout, stderr = trials.communicate(timeout=2 * WORKER_TIMEOUT_S)
    assert trials.returncode == 0, stderr[-3000:]
    for trial_id, statuses in json.loads(stdout.splitlines()[-1]).items():
        out[trial_id] = (base / trial_id, statuses, stderr)
    return out


def _assert_same_run(model: torch.nn.Module, history: dict, ref: tuple[dict, dict]) -> None:
    ref_state, ref_history = ref
    state = model.state_dict()
    assert state.keys() == ref_state.keys()
    for key in state:
        torch.testing.assert_close(state[key], ref_state[key], rtol=0, atol=1e-6, msg=key)
    for key in METRICS:
        assert history[key] == pytest.approx(ref_history[key], rel=1e-6, abs=1e-7), key
    assert len(history["seconds"]) == len(ref_history["seconds"]) and all(s > 0 for s in history["seconds"])


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
    entry = store.entry(config)
    ckpt_path = entry / "checkpoint.pt"
    checkpoint = safe_torch_load(ckpt_path) if ckpt_path.exists() else None
    done = 0 if checkpoint is None else checkpoint["epoch"] + 1
    if trial.done is None:
        assert 1 <= done < config.epochs, "the timed kill struck after epoch 1 and before the end"
    else:
        assert done == trial.done, "the last complete checkpoint is the last epoch finished before the kill"
    assert store.has_model(config) == trial.stored

    model, history = store.get_or_train(config, progress=False)  # resumes from checkpoint.pt

    _assert_same_run(model, history, reference[trial.config])
    if checkpoint is not None:  # the epochs done before the kill were kept (their timings too), not redone
        assert history["seconds"][:done] == checkpoint["history"]["seconds"]
    log = _training_log(entry)
    if trial.stored:
        assert log == [], "the stored model was served, not trained again"
    else:
        assert [line["resumed"] for line in log] == [done > 0], "trained once more, from the checkpoint if any"
        assert not ckpt_path.exists(), "the checkpoint is removed once the model is stored"
        assert not list(entry.rglob(".*.tmp")), "temporary files of killed writes are cleaned up"


# =====================================================================================================
# 2. kill during a store write
# =====================================================================================================

def _model_bytes() -> int:
    buffer = io.BytesIO()
    torch.save(_store_case_models()["NEW"].state_dict(), buffer)
    return len(buffer.getvalue())


# save_model makes 12 fsyncs (3 files x (data, folder, record, folder)); write_file makes 4.
STORE_CASES = (
    [{"name": f"save-new-fsync-{m}", "scenario": "save-new", "at_fsync": m} for m in range(1, 13)]
    + [{"name": f"result-into-old-fsync-{m}", "scenario": "result-into-old", "at_fsync": m} for m in range(1, 5)]
    + [{"name": f"overwrite-result-fsync-{m}", "scenario": "overwrite-result", "at_fsync": m} for m in range(1, 5)]
    + [{"name": "save-new-complete", "scenario": "save-new"}]
)


@pytest.fixture(scope="module")
def store_kills(tmp_path_factory) -> tuple[Path, dict, list[dict]]:
    base = tmp_path_factory.mktemp("store-kills")
    torn = [{"name": "save-new-torn-model", "scenario": "save-new", "torn_at": _model_bytes() // 2},
            {"name": "overwrite-result-torn", "scenario": "overwrite-result", "torn_at": len(NEW_RESULT) // 2}]
    cases = STORE_CASES + torn
    proc = subprocess.run(_worker_command("store-kills", {"base": str(base), "cases": cases}), capture_output=True,
                          text=True, timeout=WORKER_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return base, json.loads(proc.stdout.splitlines()[-1]), cases


def _readable(store: Store, path: Path) -> bytes | None:
    """``read_file`` must never raise here: atomic writes leave complete files or none, never a corrupt one."""
    return store.read_file(path)


def _assert_old_entry_intact(store: Store, *, result_may_be: tuple[bytes | None, ...] = (OLD_RESULT,)) -> None:
    model, history = store.load_model(STORE_OLD)
    expected = _store_case_models()["OLD"]
    assert _digest(model) == _digest(expected) and history == STORE_HISTORY
    assert _readable(store, store.result_path(STORE_OLD, "metrics", {}, ".json")) in result_may_be


@pytest.mark.slow
def test_store_writes_were_killed_where_intended(store_kills):
    _, report, cases = store_kills
    for case in cases:
        expected = 0 if not ({"at_fsync", "torn_at"} & case.keys()) else (
            signal.SIGKILL if "at_fsync" in case else signal.SIGXFSZ)
        assert report[case["name"]] == expected, case


@pytest.mark.slow
@pytest.mark.parametrize("m", range(1, 13))
def test_a_killed_save_model_leaves_the_old_entry_and_no_half_model(store_kills, m, tmp_path):
    base, _, _ = store_kills
    store = Store(base / f"save-new-fsync-{m}")
    _assert_old_entry_intact(store)
    complete = Store(tmp_path)  # the same save, not killed: the bytes a reader may see
    complete.save_model(STORE_NEW, _store_case_models()["NEW"], STORE_HISTORY)
    folder = store.entry(STORE_NEW)
    # a file is readable exactly from the fsync after its record's rename (4, 8, 12), never before
    for name, readable_from in (("config.json", 4), ("history.json", 8), ("model.pt", 12)):
        data = _readable(store, folder / name)
        if m < readable_from:
            assert data is None, f"{name} was served before it was complete"
        elif name == "model.pt":
            loaded = torch.load(io.BytesIO(data), weights_only=True)
            assert {k: v.tolist() for k, v in loaded.items()} == \
                {k: v.tolist() for k, v in _store_case_models()["NEW"].state_dict().items()}
        else:
            assert data == complete.read_file(complete.entry(STORE_NEW) / name)
    assert store.has_model(STORE_NEW) is (m >= 12)
    if m < 12:
        with pytest.raises(StoreError, match="no stored model for this config"):
            store.load_model(STORE_NEW)
    else:
        assert _digest(store.load_model(STORE_NEW)[0]) == _digest(_store_case_models()["NEW"])


@pytest.mark.slow
@pytest.mark.parametrize("m", range(1, 5))
def test_a_killed_result_write_into_an_entry_leaves_it_intact(store_kills, m):
    base, _, _ = store_kills
    store = Store(base / f"result-into-old-fsync-{m}")
    _assert_old_entry_intact(store)
    # readable only once its record is renamed into place (fsync 4 is the folder's, after that rename)
    assert _readable(store, store.result_path(STORE_OLD, "extra", {}, ".json")) == (NEW_RESULT if m == 4 else None)


@pytest.mark.slow
@pytest.mark.parametrize("m", range(1, 5))
def test_a_killed_overwrite_is_never_read_half_written(store_kills, m):
    """The store writes each file once (get_or_* write only what is absent), so rewriting a complete file is not
    one of its paths; if a caller does it and is killed, the file reads as absent (recomputed), never as a mix."""
    base, _, _ = store_kills
    store = Store(base / f"overwrite-result-fsync-{m}")
    _assert_old_entry_intact(store, result_may_be=(NEW_RESULT,) if m == 4 else (None,))


@pytest.mark.slow
def test_a_write_torn_mid_file_is_never_read_as_valid(store_kills):
    base, _, cases = store_kills
    torn = {c["name"]: c["torn_at"] for c in cases if "torn_at" in c}
    store = Store(base / "save-new-torn-model")
    _assert_old_entry_intact(store)
    folder = store.entry(STORE_NEW)
    leftovers = list(folder.glob(".model.pt.*.tmp"))
    assert [p.stat().st_size for p in leftovers] == [torn["save-new-torn-model"]], "the write stopped mid-file"
    assert not (folder / "model.pt").exists() and not store.has_model(STORE_NEW)
    assert store.read_file(folder / "history.json") is not None, "the files written before it are complete"

    store = Store(base / "overwrite-result-torn")
    result = store.result_path(STORE_OLD, "metrics", {}, ".json")
    assert [p.stat().st_size for p in result.parent.glob(".*.tmp")] == [torn["overwrite-result-torn"]]
    _assert_old_entry_intact(store, result_may_be=(None,))


# =====================================================================================================
# 3. two runs at once
# =====================================================================================================

def _start_train_worker(root: Path, config: str, **args) -> subprocess.Popen:
    return subprocess.Popen(_worker_command("train", {"root": str(root), "config": config, **args}),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> tuple[int, dict | None, str]:
    out, err = proc.communicate(timeout=WORKER_TIMEOUT_S)
    result = json.loads(out.splitlines()[-1]) if proc.returncode == 0 else None
    return proc.returncode, result, err


@pytest.mark.slow
def test_two_processes_asking_for_one_model_train_it_once(tmp_path, reference):
    root = tmp_path / "store"
    ready, go = [tmp_path / "ready-a", tmp_path / "ready-b"], tmp_path / "go"
    procs = [_start_train_worker(root, "ST", before=[["touch", str(r)], ["wait", str(go)]]) for r in ready]
    for r in ready:
        _wait_for(r)
    go.touch()  # both call get_or_train now
    (code_a, a, err_a), (code_b, b, err_b) = [_finish(p) for p in procs]
    assert code_a == 0 and code_b == 0, err_a[-2000:] + err_b[-2000:]

    entry = Store(root).entry(ST)
    assert len(_training_log(entry)) == 1, "one process trained, the other waited on the lock and loaded"
    assert a["digest"] == b["digest"]
    assert a["history"] == b["history"], "the same history, timings included: one run, stored once"
    _assert_same_run(Store(root).load_model(ST)[0], a["history"], reference["ST"])


@pytest.mark.slow
def test_a_process_waiting_on_the_lock_resumes_when_the_trainer_is_killed(tmp_path, reference):
    """A trains and holds the lock; B asks for the same model and blocks; A is SIGKILLed in epoch 2; the kernel
    releases A's lock, and B resumes from A's epoch-1 checkpoint instead of starting again."""
    root = tmp_path / "store"
    holding, waiting = tmp_path / "a-holds-the-lock", tmp_path / "b-is-waiting"
    a = _start_train_worker(root, "ST", kill={"after_step": 6, "before_dying": [
        ["touch", str(holding)], ["wait", str(waiting)], ["sleep", 1.0]]})
    b = _start_train_worker(root, "ST", before=[["wait", str(holding)], ["touch", str(waiting)]])
    code_a, _, err_a = _finish(a)
    code_b, result, err_b = _finish(b)
    assert code_a == -signal.SIGKILL, err_a[-2000:]
    assert code_b == 0, err_b[-2000:]
    assert [line["resumed"] for line in _training_log(Store(root).entry(ST))] == [True]
    _assert_same_run(Store(root).load_model(ST)[0], result["history"], reference["ST"])


def _papermill(out: Path, *params: str, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "papermill", str(CHAPTER), str(out), "-k", "python3", "--cwd", str(CHAPTER.parent),
           "--no-progress-bar", *params]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env})


@pytest.mark.slow
def test_two_papermill_runs_of_a_chapter_on_one_store_both_succeed(tmp_path):
    home = tmp_path / "store"
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    # smoke, with AutoAttack on 8 images instead of 32: the property is about sharing the store, not the attack
    runs = [_papermill(tmp_path / name / "chapter.ipynb", "-p", "profile", "smoke",
                       "-y", "overrides: {n_autoattack: 8}", env={"ADVLOGITS_HOME": str(home)}) for name in ("a", "b")]
    outcomes = [p.communicate(timeout=900) for p in runs]
    for proc, (_, err) in zip(runs, outcomes):
        assert proc.returncode == 0, err[-3000:]
    import nbformat

    tables = []
    for name in ("a", "b"):
        nb = nbformat.read(tmp_path / name / "chapter.ipynb", as_version=4)
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert not [o for o in outputs if o.output_type == "error"]
        tables.append([o["data"]["text/plain"] for o in outputs if "text/plain" in o.get("data", {})
                       and "AutoAttack" in o["data"]["text/plain"]])
    assert tables[0] == tables[1] and tables[0], "both chapters show the same stored evaluation"
    entries = sorted((home / "entries").iterdir())
    assert len(entries) == 2, "one entry for ST, one for AT"
    for entry in entries:
        assert len(_training_log(entry)) == 1, f"{entry.name} was trained once"
        assert len(list((entry / "results").glob("evaluation-*.json"))) == 1


# =====================================================================================================
# 4. unsafe checkpoints
# =====================================================================================================

def _crafted(marker: Path, fmt: str, *, wrap) -> bytes:
    import pickle

    payload = wrap(CodeRunningPayload(marker))
    if fmt == "raw-pickle":
        return pickle.dumps(payload, protocol=2)
    buffer = io.BytesIO()
    torch.save(payload, buffer, _use_new_zipfile_serialization=(fmt == "zip"))
    return buffer.getvalue()


def _plant(store: Store, config: TrainConfig, name: str, data: bytes) -> Path:
    """Put ``data`` at ``name`` in the entry with a checksum record that matches it, as if the store wrote it."""
    store.save_model(config, build_model("cnn-small"), STORE_HISTORY)
    path = store.entry(config) / name
    store.write_file(path, data)
    return path


FORMATS = ["zip", "legacy", "raw-pickle"]


@pytest.mark.parametrize("unsafe_default", [False, True], ids=["torch-default", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_model_that_runs_code_is_refused_by_the_store(tmp_path, monkeypatch, fmt, unsafe_default):
    if unsafe_default:  # an environment that turns off torch's safe default must not matter
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "pwned"
    store = Store(tmp_path / "store")
    _plant(store, ST, "model.pt", _crafted(marker, fmt, wrap=lambda e: {"net.head.3.bias": e}))
    assert store.has_model(ST), "only the safe load stands between the file and the code"
    with pytest.raises(StoreError, match=r"(?s)refusing to load .*model\.pt: .*Delete .* to retrain"):
        store.get_or_train(ST, progress=False)
    assert not marker.exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_training_checkpoint_that_runs_code_is_refused(tmp_path, monkeypatch, fmt):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "pwned"
    store = Store(tmp_path / "store")
    ckpt = store.entry(ST) / "checkpoint.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(_crafted(marker, fmt, wrap=lambda e: {"model": e, "epoch": 0}))
    with pytest.raises(StoreError, match=r"refusing to load .*checkpoint\.pt.*never load a checkpoint you do not"):
        store.get_or_train(ST, progress=False)
    assert not marker.exists()
    assert not store.has_model(ST), "nothing was trained on top of it"


@pytest.mark.parametrize("fmt", ["legacy", "raw-pickle"])
def test_load_robustbench_refuses_code_in_any_format_even_with_unsafe_default(tmp_path, monkeypatch, fmt):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "pwned"
    path = tmp_path / "cifar10" / "Linf" / "Ding2020MMA.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(_crafted(marker, fmt, wrap=lambda e: {"state_dict": e}))
    with pytest.raises(RuntimeError, match=r"refusing to load .*Ding2020MMA\.pt: torch\.load\(weights_only=True\)"):
        load_robustbench("Ding2020MMA", model_dir=tmp_path)
    assert not marker.exists()


def test_weights_that_do_not_fit_are_refused_by_the_store_with_the_bad_keys(tmp_path):
    store = Store(tmp_path)
    torch.manual_seed(0)
    state = dict(build_model("cnn-small").state_dict())
    state.pop("net.head.3.bias")
    state["net.head.5.weight"] = torch.zeros(10, 10)
    state["net.features.3.weight"] = torch.zeros(64, 32, 5, 5)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    _plant(store, ST, "model.pt", buffer.getvalue())
    with pytest.raises(StoreError, match=r"model\.pt do not fit .*: missing keys: net\.head\.3\.bias; unexpected keys: "
                                         r"net\.head\.5\.weight; mis-shaped keys: net\.features\.3\.weight\. .*delete"):
        store.get_or_train(ST, progress=False)


def _checkpoint_state(config: TrainConfig) -> dict:
    """A checkpoint as `_fit` writes it after epoch 1 (weights, optimizer, scheduler, epoch, history)."""
    torch.manual_seed(0)
    model = build_model(config.arch)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, nesterov=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "epoch": 0, "history": {key: [] for key in (*METRICS, "seconds")}}


CHECKPOINT_CASES = [
    # (id, how the checkpoint is spoiled, expected message)
    ("other-architecture", lambda state: state.update(model=build_model("cnn").state_dict()),
     r"weights in checkpoint .*checkpoint\.pt do not fit Sequential: missing keys: net\.features\.3\.bias, "
     r"net\.features\.3\.weight; unexpected keys: net\.features\.2\.bias, .*mis-shaped keys: .*net\.head\.1\.weight"),
    ("other-run", lambda state: state.update(epoch=7),
     r"ends at epoch index 7, outside this run of 3 epochs: it belongs to another run\. Delete it"),
    ("missing-parts", lambda state: [state.pop("optimizer"), state.pop("scheduler")],
     r"checkpoint .*checkpoint\.pt lacks optimizer, scheduler: it was not written by this training loop"),
]


@pytest.mark.parametrize("spoil, message", [c[1:] for c in CHECKPOINT_CASES], ids=[c[0] for c in CHECKPOINT_CASES])
def test_a_checkpoint_that_does_not_fit_is_refused_with_what_is_wrong(tmp_path, spoil, message):
    """Before the fix, the resume path called ``load_state_dict`` unchecked: a RuntimeError or KeyError without
    advice instead of a StoreError that names the bad keys and says to delete the checkpoint."""
    state = _checkpoint_state(ST)
    spoil(state)
    store = Store(tmp_path)
    ckpt = store.entry(ST) / "checkpoint.pt"
    ckpt.parent.mkdir(parents=True)
    torch.save(state, ckpt)
    with pytest.raises(StoreError, match=message):
        store.get_or_train(ST, progress=False)
    assert not store.has_model(ST)


# =====================================================================================================
# 5. bad input
# =====================================================================================================

def _idx(kind: str, count: int, payload: bytes) -> bytes:
    import struct

    header = struct.pack(">iiii", 2051, count, 28, 28) if kind == "images" else struct.pack(">ii", 2049, count)
    return header + payload


def _fashion_copy(folder: Path, *, images: int, truncate_to: int | None = None) -> Path:
    """A Fashion-MNIST train split of ``images`` images in ``folder``, its images file cut after
    ``truncate_to`` payload bytes if given (the header still announces all images)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=images * 784, dtype=np.uint8).tobytes()
    labels = np.arange(images, dtype=np.uint8) % 10
    (folder / "train-images-idx3-ubyte").write_bytes(_idx("images", images, pixels[:truncate_to]))
    (folder / "train-labels-idx1-ubyte").write_bytes(_idx("labels", images, labels.tobytes()))
    return folder


PAPERMILL_CASES = [
    # (id, papermill parameters, environment, expected message)
    ("unknown-profile", ["-p", "profile", "nope"], {}, "profile must be one of smoke, cpu, paper (got 'nope')"),
    ("cuda-without-cuda", ["-p", "profile", "smoke", "-p", "device", "cuda"], {},
     "device='cuda' but CUDA is not available on this machine; use device='cpu' or device='auto'"),
    ("negative-seed", ["-p", "profile", "smoke", "-p", "seed", "-3"], {}, "seed must be an integer >= 0"),
    ("eps-not-a-number", ["-p", "profile", "smoke", "-p", "eps", "abc"], {}, "eps must be a number (got 'abc')"),
    ("zero-steps", ["-p", "profile", "smoke", "-y", "overrides: {steps: 0}"], {},
     "steps must be an integer >= 1 (got 0)"),
    ("n-beyond-the-data", ["-p", "profile", "smoke", "-y", "overrides: {n_train: 100000}"], {},
     "n_train must be None or in [1, 60000] for fashion-mnist (got 100000)"),
    ("unwritable-home", ["-p", "profile", "smoke"], {"ADVLOGITS_HOME": "{tmp}/a-file/store"},
     "is not writable (Not a directory). Set ADVLOGITS_HOME to a writable folder"),
    ("truncated-data", ["-p", "profile", "smoke"], {"ADVLOGITS_DATA": "{tmp}/data"},
     "train-images-idx3-ubyte is truncated: 1016 bytes for 60000 items"),
]


@pytest.mark.slow
def test_bad_papermill_parameters_fail_before_training(tmp_path):
    """Eight bad inputs through the chapter's papermill interface, two kernels at a time."""
    (tmp_path / "a-file").write_text("a file where the store's parent folder should be")
    _fashion_copy(tmp_path / "data", images=60_000, truncate_to=1000)

    def run(case):
        name, params, env, _ = case
        env = {"ADVLOGITS_HOME": str(tmp_path / name / "store"),
               **{k: v.format(tmp=tmp_path) for k, v in env.items()}}
        (tmp_path / name).mkdir()
        proc = _papermill(tmp_path / name / "out.ipynb", *params, env=env)
        out, err = proc.communicate(timeout=600)
        return proc.returncode, _strip_ansi(out + err), Path(env["ADVLOGITS_HOME"])

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, PAPERMILL_CASES))
    for (name, _, _, message), (code, text, home) in zip(PAPERMILL_CASES, results):
        assert code != 0, name
        assert message in text, f"{name}: {message!r} not in the output:\n{text[-3000:]}"
        assert not (home / "entries").exists(), f"{name}: the store gained an entry"
    assert (tmp_path / "a-file").read_text().startswith("a file")


_DISTILLED = dataclasses.replace(ST, method="distilled", teacher=ST, targets="kd", T=2.0)

RESOLVE_CASES = [
    # (id, overrides of resolve("smoke"), expected message)
    ("infinite-lr", dict(lr="inf"), r"lr must be > 0 and finite \(got inf\)"),
    ("infinite-weight-decay", dict(weight_decay="inf"), r"weight_decay must be >= 0 and finite"),
    ("huge-seed", dict(seed=2**40), r"seed must be an integer >= 0 and <= 4294967295 \(got 1099511627776\)"),
    ("huge-seed-in-seeds", dict(seeds="0, 99999999999"), r"seeds must be integers >= 0 and <= 4294967295"),
    ("nan-eps", dict(eps="nan"), r"eps must be in \(0, 1\), an L-inf radius .*\(got nan\)"),
    ("fractional-seed", dict(seed="1.5"), r"seed must be an integer \(got '1.5'\)"),
    ("device-not-a-string", dict(device=7), r"device must be a string \(got 7\)"),
    ("alpha-above-a-new-eps", dict(eps=0.05, alpha=0.1), r"alpha must be in \(0, eps=0.05\] \(got 0.1\)"),
    ("n-val-beyond-the-test-split", dict(n_val=20_000), r"n_val must be in \[1, 10000\] \(got 20000\)"),
]


@pytest.mark.parametrize("overrides, message", [c[1:] for c in RESOLVE_CASES], ids=[c[0] for c in RESOLVE_CASES])
def test_bad_profile_values_are_refused(overrides, message):
    with pytest.raises(ProfileError, match=message):
        profiles.resolve("smoke", **{"device": "cpu", **overrides})


CONFIG_CASES = [
    # (id, the bad config's fields, expected message): refused when the config is made, before any compute
    ("unknown-dataset", dict(dataset="mnist"), r"TrainConfig: dataset must be one of fashion-mnist, cifar10"),
    ("unknown-arch", dict(arch="vit"), r"TrainConfig: arch must be one of cnn-small, cnn, preact-resnet18, wrn-34-10"),
    ("unknown-method", dict(method="fancy"), r"TrainConfig: method must be one of standard, adversarial, distilled"),
    ("alpha-above-eps", dict(method="adversarial", eps=0.1, alpha=0.2, steps=2), r"alpha must be in \(0, eps=0.1\]"),
    ("zero-pgd-steps", dict(method="adversarial", eps=0.1, alpha=0.05, steps=0), r"steps must be an integer >= 1"),
    ("eps-of-one", dict(method="adversarial", eps=1.0, alpha=0.05, steps=2), r"eps must be in \(0, 1\)"),
    ("negative-seed", dict(seed=-3), r"seed must be an integer in \[0, 4294967295\] \(got -3\)"),
    ("zero-epochs", dict(epochs=0), r"epochs must be an integer >= 1 \(got 0\)"),
    ("student-temperature-zero", dict(method="distilled", teacher=ST, T=0.0), r"T must be > 0 and finite"),
    ("student-unknown-targets", dict(method="distilled", teacher=ST, targets="bogus"),
     r"targets must be one of kd, shuffle, mean, reorder, flatten, label_smoothing, argmax \(got 'bogus'\)"),
    ("student-without-teacher", dict(method="distilled"), r"a distilled config needs a teacher config"),
]


@pytest.mark.parametrize("fields, message", [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES])
def test_bad_train_configs_are_refused_when_made(fields, message):
    """Before the fix a student with T=0 or unknown targets got its teacher trained first, then failed."""
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(ST, **fields)


def test_valid_students_and_adversarial_configs_are_accepted():
    assert _DISTILLED.teacher == ST and AT.alpha <= AT.eps
    assert profiles.resolve("smoke", device="cpu", seed=2**32 - 1).standard().seed == 2**32 - 1


ENVIRONMENT_CASES = [
    # (id, how to break the environment, exception, expected message)
    ("n-beyond-the-data", "n_train", ValueError, r"n=70000 exceeds the size of the fashion-mnist train split"),
    ("home-in-proc", "home", StoreError, r"the store at /proc/advlogits-store is not writable .*Set ADVLOGITS_HOME"),
    ("data-copy-too-small", "small", DatasetError,
     r"train-labels-idx1-ubyte has 100 items; the Fashion-MNIST train split has 60000"),
    ("data-copy-truncated", "truncated", DatasetError, r"train-images-idx3-ubyte is truncated: 2016 bytes for "
                                                       r"60000 items, expected 47040016"),
]


@pytest.mark.parametrize("how, error, message", [c[1:] for c in ENVIRONMENT_CASES],
                         ids=[c[0] for c in ENVIRONMENT_CASES])
def test_a_bad_environment_fails_before_training_and_leaves_no_entry(tmp_path, monkeypatch, how, error, message):
    monkeypatch.setenv("ADVLOGITS_HOME", str(tmp_path / "store"))
    config = ST
    if how == "n_train":
        config = dataclasses.replace(ST, n_train=70_000)
    elif how == "home":
        monkeypatch.setenv("ADVLOGITS_HOME", "/proc/advlogits-store")
    else:
        folder = _fashion_copy(tmp_path / "data", images=100 if how == "small" else 60_000,
                               truncate_to=2000 if how == "truncated" else None)
        monkeypatch.setenv("ADVLOGITS_DATA", str(folder))
    with pytest.raises(error, match=message):
        Store().get_or_train(config, progress=False)
    assert not (tmp_path / "store" / "entries").exists()


def test_the_bad_input_matrix_has_at_least_20_cases():
    """The matrix above holds at least 20 cases, papermill and the Python API together."""
    assert len(PAPERMILL_CASES) + len(RESOLVE_CASES) + len(CONFIG_CASES) + len(ENVIRONMENT_CASES) >= 20


# =====================================================================================================
# 6. determinism
# =====================================================================================================

@pytest.mark.slow
def test_same_profile_and_seed_give_byte_identical_metrics_files(tmp_path):
    """The smoke profile's AT model trained and evaluated in three fresh stores by three processes at once."""
    runs = {name: (tmp_path / name, seed) for name, seed in (("first", 0), ("again", 0), ("other-seed", 1))}
    procs = {name: subprocess.Popen(_worker_command("evaluate", {"root": str(root), "seed": seed}),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, (root, seed) in runs.items()}
    entries = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=WORKER_TIMEOUT_S)
        assert proc.returncode == 0, err[-3000:]
        entries[name] = Path(json.loads(out.splitlines()[-1])["entry"])

    def metrics(name: str) -> bytes:
        (path,) = (entries[name] / "results").glob("evaluation-*.json")
        return path.read_bytes()

    def history(name: str) -> dict:
        stored = json.loads((entries[name] / "history.json").read_text())
        return {key: stored[key] for key in METRICS}  # without the wall-clock seconds

    assert metrics("first") == metrics("again"), "the evaluation JSON (clean, PGD, AutoAttack, per image)"
    assert metrics("first") != metrics("other-seed")
    assert (entries["first"] / "model.pt").read_bytes() == (entries["again"] / "model.pt").read_bytes()
    assert history("first") == history("again") != history("other-seed")


# =====================================================================================================
# 7. the store key follows the code; the Makefile follows the library and the chapters
# =====================================================================================================

def _package_copy(base: Path, name: str, edit: str | None) -> Path:
    """A copy of the advlogits package under ``base/name``, with a comment appended to module ``edit``."""
    import advlogits

    target = base / name / "advlogits"
    shutil.copytree(Path(advlogits.__file__).parent, target, ignore=shutil.ignore_patterns("__pycache__"))
    if edit is not None:
        with open(target / edit, "a") as f:
            f.write("\n# a comment: the key hashes source bytes, so even this counts\n")
    return target.parent


def _key_worker(copy: Path, root: Path) -> dict:
    proc = subprocess.run(_worker_command("key", {"root": str(root)}), capture_output=True, text=True,
                          timeout=WORKER_TIMEOUT_S, env={**os.environ, "PYTHONPATH": str(copy)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.slow
def test_changing_library_code_that_matters_changes_the_store_key(tmp_path):
    root = tmp_path / "store"
    unchanged = _key_worker(_package_copy(tmp_path, "unchanged", None), root)
    assert unchanged["file"].startswith(str(tmp_path)), "the subprocess imported the copy"
    assert unchanged["code"] == code_version() and unchanged["entry"] == config_key(ST)
    assert unchanged["computed"]

    with ThreadPoolExecutor(max_workers=2) as pool:
        hashed, exempt = pool.map(lambda edit: _key_worker(_package_copy(tmp_path, edit, edit), root),
                                  ["attacks.py", "plots.py"])
    assert hashed["code"] != unchanged["code"] and hashed["entry"] != unchanged["entry"]
    assert hashed["computed"], "a changed attack recomputes the result in a new entry"
    assert exempt["code"] == unchanged["code"] and not exempt["computed"], "a figure change reuses the stored result"
    assert sorted(p.name for p in (root / "entries").iterdir()) == sorted([unchanged["entry"], hashed["entry"]])


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_the_makefile_re_executes_a_chapter_when_the_library_or_the_chapter_changes(tmp_path):
    """``make -n`` in a throwaway copy whose executed chapter is up to date. ``-o`` marks the parameters file
    old: it is remade on every run (FORCE) but only rewritten when DEVICE changes, which ``-n`` cannot know."""
    copy = tmp_path / "repo"
    (copy / "chapters").mkdir(parents=True)
    shutil.copy(ROOT / "Makefile", copy)
    shutil.copy(ROOT / "pyproject.toml", copy)
    shutil.copy(CHAPTER, copy / "chapters")
    shutil.copytree(ROOT / "lib" / "advlogits", copy / "lib" / "advlogits",
                    ignore=shutil.ignore_patterns("__pycache__"))
    executed = copy / "_build" / "executed" / "smoke"
    executed.mkdir(parents=True)
    stamp = copy / ".venv" / ".advlogits-setup.stamp"
    stamp.parent.mkdir()
    stamp.touch()
    params = executed / ".params"
    params.write_text("device=auto\n")
    shutil.copy(CHAPTER, executed)
    t0 = time.time() - 1000
    for path in [*copy.rglob("*.py"), copy / "Makefile", copy / "pyproject.toml", copy / "chapters" / CHAPTER.name]:
        os.utime(path, (t0, t0))
    os.utime(stamp, (t0 + 10, t0 + 10))
    os.utime(params, (t0 + 10, t0 + 10))
    os.utime(executed / CHAPTER.name, (t0 + 20, t0 + 20))

    def would_execute() -> bool:
        proc = subprocess.run(["make", "-n", "-o", str(params.relative_to(copy)), "execute", "PROFILE=smoke"],
                              cwd=copy, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return f"papermill chapters/{CHAPTER.name}" in proc.stdout

    assert not would_execute(), "an up-to-date chapter is not executed again"
    for changed in (copy / "lib" / "advlogits" / "attacks.py", copy / "lib" / "advlogits" / "plots.py",
                    copy / "chapters" / CHAPTER.name):
        os.utime(changed, (t0 + 30, t0 + 30))
        assert would_execute(), f"a change of {changed.name} re-executes the chapter"
        os.utime(changed, (t0, t0))
    assert not would_execute()


if __name__ == "__main__":
    WORKERS[sys.argv[1]](json.loads(sys.argv[2]))
