"""The fault-injection suite's shared helpers and the worker processes it kills.

The fault tests (``tests/test_faults_*.py``) make every fault real, nothing is mocked: worker processes die by
SIGKILL (one torn write dies by the kernel's SIGXFSZ in the middle of a write), run at the same time against one
store, and load crafted pickles. What runs in a killed process is an ordinary function of this module, started
as ``python tests/fault_workers.py <command> <json args>``, so it is read next to the tests that check it.

The tests import this module for the configs they train (`ST`, `AT`), the helpers that arm a kill and the
helpers that compare a resumed run with an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from advlogits import pipeline, profiles
from advlogits.buildfiles import PAPERMILL_ENGINE
from advlogits.fileio import write_checked
from advlogits.models import build_model
from advlogits.pipeline import stored, training
from advlogits.store import Store
from advlogits.train import TrainConfig

from helpers import tiny_standard_config

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "chapters" / "01_standard_vs_adversarial.ipynb"
WORKER_TIMEOUT_S = 300

# Small runs: 128 images in batches of 32 are 4 optimizer steps per epoch.
ST = tiny_standard_config(n_train=128, n_val=32, batch_size=32, epochs=3)
AT = dataclasses.replace(ST, method="adversarial", epochs=2, eps=0.1, alpha=0.05, steps=2, seed=1)
CONFIGS = {"ST": ST, "AT": AT}
STEPS_PER_EPOCH = 4
# What "the same metrics" means: every per-epoch and per-batch number of the history and the final weights.
# ``seconds`` is wall-clock time and differs between any two runs.
METRICS = ("epoch", "train_loss", "train_acc", "val_acc", "batch_loss")


# =====================================================================================================
# helpers shared by the tests and the workers
# =====================================================================================================


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: this one's, with this checkout's library first on PYTHONPATH (so a
    papermill kernel or a worker imports the library under test), and ``extra`` on top."""
    paths = [str(ROOT / "lib"), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **extra}


def digest(model: torch.nn.Module) -> str:
    """sha256 of a model's weights (names and values), to compare models across processes."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def wait_for(path: Path, *, timeout: float = WORKER_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout} s")
        time.sleep(0.01)


def run_actions(actions: list) -> None:
    """Run a worker's choreography: [["touch", path] | ["wait", path] | ["sleep", seconds], ...]."""
    for verb, arg in actions:
        if verb == "touch":
            Path(arg).touch()
        elif verb == "wait":
            wait_for(Path(arg))
        elif verb == "sleep":
            time.sleep(arg)
        else:
            raise ValueError(f"unknown action {verb!r}")


def die() -> None:
    """SIGKILL this process: no exception, no finally block, no atexit handler runs."""
    os.kill(os.getpid(), signal.SIGKILL)


def kill_after_step(k: int, before_dying: list) -> None:
    """SIGKILL this process right after its k-th optimizer step (counted from the start of this process)."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    count = 0

    def hook(optimizer, args, kwargs) -> None:
        nonlocal count
        count += 1
        if count == k:
            run_actions(before_dying)
            die()

    register_optimizer_step_post_hook(hook)


def kill_at_fsync(m: int) -> None:
    """SIGKILL this process when it calls ``os.fsync`` for the m-th time, before that fsync runs.

    Every atomic write fsyncs twice (the temporary file, before its rename; the folder, after it), so the m-th
    fsync names an exact point of a write: odd m = data in a temporary file not yet renamed, even m = file
    renamed into place. The real ``os.fsync`` runs for every other call.
    """
    real = os.fsync
    count = 0

    def fsync(fd: int) -> None:
        nonlocal count
        count += 1
        if count == m:
            die()
        real(fd)

    os.fsync = fsync


def worker_command(command: str, args: dict) -> list[str]:
    """The command line that runs worker ``command`` of this module with ``args``."""
    return [sys.executable, str(Path(__file__).resolve()), command, json.dumps(args)]


def training_log(entry: Path) -> list[dict]:
    """The lines of an entry's ``training.log``: one per completed computation of its weights."""
    path = entry / "training.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def entry_of(store: Store, config: TrainConfig) -> Path:
    """The entry folder of the model ``config`` in ``store``."""
    return store.entry(pipeline.model_key(config))


def load_stored(store: Store, config: TrainConfig) -> tuple[torch.nn.Module, dict]:
    """The stored model of ``config`` and its history; StoreError if it is not stored (never trains)."""
    key = pipeline.model_key(config)
    state, history = store.load_weights(key)
    return training.model_from_state(config, state, source=store.entry(key) / "model.pt"), history


def reference_runs(root: Path) -> dict:
    """Uninterrupted runs of ST and AT through the store: name -> (state dict, history)."""
    out = {}
    for name, config in CONFIGS.items():
        model, history = pipeline.get_model(config, store=Store(root), progress=False)
        out[name] = ({k: v.clone() for k, v in model.state_dict().items()}, history)
    return out


def assert_same_run(model: torch.nn.Module, history: dict, ref: tuple[dict, dict]) -> None:
    """``model`` and ``history`` are those of the uninterrupted run ``ref`` (weights to 1e-6, every metric)."""
    ref_state, ref_history = ref
    state = model.state_dict()
    assert state.keys() == ref_state.keys()
    for key in state:
        torch.testing.assert_close(state[key], ref_state[key], rtol=0, atol=1e-6, msg=key)
    for key in METRICS:
        assert history[key] == pytest.approx(ref_history[key], rel=1e-6, abs=1e-7), key
    assert len(history["seconds"]) == len(ref_history["seconds"]) and all(s > 0 for s in history["seconds"])


def papermill(out: Path, *params: str, env: dict) -> subprocess.Popen:
    """Start papermill on chapter 1 with ``params``, as the build does (the kernel sees this checkout's library and
    ``env``)."""
    cmd = [
        sys.executable,
        "-m",
        "papermill",
        str(CHAPTER),
        str(out),
        "-k",
        "python3",
        "--engine",
        PAPERMILL_ENGINE,  # kernels started together cannot take each other's ports
        "--cwd",
        str(CHAPTER.parent),
        "--no-progress-bar",
        *params,
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(**env))


# =====================================================================================================
# the store-write cases: an entry that exists before the write (OLD) and one being written (NEW)
# =====================================================================================================


def store_case_models() -> dict[str, torch.nn.Module]:
    """The weights of the entry that exists before the write (OLD) and of the one being written (NEW)."""
    out = {}
    for name, seed in (("OLD", 10), ("NEW", 11)):
        torch.manual_seed(seed)
        out[name] = build_model("cnn-small")
    return out


STORE_OLD = dataclasses.replace(ST, seed=10)
STORE_NEW = dataclasses.replace(ST, seed=11)
OLD_KEY = pipeline.model_key(STORE_OLD)
NEW_KEY = pipeline.model_key(STORE_NEW)
RESULT_CODE = stored.result_code()
STORE_HISTORY = {
    "epoch": [1],
    "train_loss": [0.5],
    "train_acc": [0.8],
    "val_acc": [0.75],
    "seconds": [1.0],
    "batch_loss": [0.6, 0.4],
}
OLD_RESULT = b'{"acc": 0.5}'
NEW_RESULT = json.dumps({"per_image": list(range(40_000))}).encode()  # ~240 kB, so a write can be torn mid-way


def result_file(store: Store, name: str) -> Path:
    """Where result ``name`` (no parameters) of the OLD entry lives."""
    return store.result_path(OLD_KEY, name, {}, ".json", code=RESULT_CODE)


def prepare_old_entry(root: Path) -> Store:
    """A store holding a complete entry (OLD: weights, history, config and one result)."""
    store = Store(root)
    store.save_weights(OLD_KEY, state=store_case_models()["OLD"].state_dict(), config=STORE_OLD, history=STORE_HISTORY)
    write_checked(result_file(store, "metrics"), OLD_RESULT)
    return store


def store_write(store: Store, scenario: str) -> None:
    """The write that gets killed."""
    if scenario == "save-new":  # new weights stored beside the old entry
        store.save_weights(
            NEW_KEY, state=store_case_models()["NEW"].state_dict(), config=STORE_NEW, history=STORE_HISTORY
        )
    elif scenario == "result-into-old":  # a new result written into the old entry's folder
        write_checked(result_file(store, "extra"), NEW_RESULT)
    elif scenario == "overwrite-result":  # a complete file of the old entry rewritten
        write_checked(result_file(store, "metrics"), NEW_RESULT)
    else:
        raise ValueError(scenario)


# =====================================================================================================
# the workers (run as `python tests/fault_workers.py <command> <json args>`)
# =====================================================================================================


def worker_train(args: dict) -> None:
    """``pipeline.get_model(config, store=Store(root))``, optionally killed at a point; prints the weights' digest
    and the history."""
    kill = args.get("kill") or {}
    if "after_step" in kill:
        kill_after_step(kill["after_step"], kill.get("before_dying", []))
    if "at_fsync" in kill:
        kill_at_fsync(kill["at_fsync"])
    run_actions(args.get("before", []))
    model, history = pipeline.get_model(CONFIGS[args["config"]], store=Store(args["root"]), progress=False)
    print(json.dumps({"digest": digest(model), "history": history}))


def worker_store_kills(args: dict) -> None:
    """For each case: prepare a store with a complete OLD entry, then fork a child that performs one write and is
    killed at the case's point (the m-th fsync, or torn after ``torn_at`` bytes of a file by RLIMIT_FSIZE).
    Prints {case: signal number the child died of, or 0}. Forking keeps ~25 kills within one torch import."""
    import resource

    torch.set_num_threads(1)  # no OpenMP pool in the parent, so forked children are safe
    report = {}
    for case in args["cases"]:
        store = prepare_old_entry(Path(args["base"]) / case["name"])
        pid = os.fork()
        if pid == 0:  # the child: arm the kill, write, exit (reached only if the kill point was not met)
            if "at_fsync" in case:
                kill_at_fsync(case["at_fsync"])
            if "torn_at" in case:
                signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it by default; restore "terminate"
                resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
                resource.setrlimit(resource.RLIMIT_FSIZE, (case["torn_at"], case["torn_at"]))
            store_write(store, case["scenario"])
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        report[case["name"]] = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
    print(json.dumps(report))


def worker_evaluate(args: dict) -> None:
    """Train and evaluate the smoke profile's AT model in a fresh store (for the determinism test)."""
    p = profiles.resolve("smoke", device="cpu", seed=args["seed"], n_autoattack=8)
    store = Store(args["root"])
    pipeline.evaluate(p, p.adversarial(), store=store, progress=False)
    print(json.dumps({"entry": str(entry_of(store, p.adversarial()))}))


def worker_key(args: dict) -> None:
    """A warm run on the store at ``root``: which advlogits is imported, its model and result code, the key of
    ST, and which model files and stored results the run had to add (ST's model and its evaluation logits).

    Every chapter module, the figures and the claims registry are imported too, so a key that depended on what
    is imported (rather than on the declared sources) would show up here."""
    import importlib

    import advlogits

    for module in sorted((Path(advlogits.__file__).parent / "chapters").glob("*.py")):
        importlib.import_module(
            f"advlogits.chapters.{module.stem}" if module.stem != "__init__" else "advlogits.chapters"
        )
    store = Store(args["root"])

    def files(pattern: str) -> set[str]:
        return {str(p.relative_to(store.root)) for p in store.root.glob(pattern)}

    models_before, results_before = files("entries/*/model.pt"), files("entries/*/results/*")
    pipeline.get_model(ST, store=store, progress=False)
    pipeline.eval_logits(profiles.resolve("smoke", device="cpu"), ST, store=store)
    print(
        json.dumps(
            {
                "file": advlogits.__file__,
                "model_code": stored.model_code(),
                "result_code": stored.result_code(),
                "model_key": pipeline.model_key(ST),
                "new_models": sorted(files("entries/*/model.pt") - models_before),
                "new_results": sorted(files("entries/*/results/*") - results_before),
            }
        )
    )


def _fork_training(root: str, config: str, kill: dict) -> int:
    """Fork a child that trains ``config`` through ``pipeline.get_model``, armed to die at ``kill``."""
    pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        if "after_step" in kill:
            kill_after_step(kill["after_step"], [])
        if "at_fsync" in kill:
            kill_at_fsync(kill["at_fsync"])
        pipeline.get_model(CONFIGS[config], store=Store(root), progress=False)
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
        data.read_split("fashion-mnist", split)
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
                statuses[trial["id"]].append(-os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))
                if len(trial["kills"]) > 1:  # the next run of this trial resumes what this one left
                    queue.insert(0, dict(trial, kills=trial["kills"][1:]))
        if time.monotonic() > deadline:
            for pid in running:
                os.kill(pid, signal.SIGKILL)
            raise TimeoutError(f"trials still running after {WORKER_TIMEOUT_S} s: {list(running.values())}")
        time.sleep(0.01)
    print(json.dumps(statuses))


WORKERS = {
    "train": worker_train,
    "trials": worker_trials,
    "store-kills": worker_store_kills,
    "evaluate": worker_evaluate,
    "key": worker_key,
}


if __name__ == "__main__":
    WORKERS[sys.argv[1]](json.loads(sys.argv[2]))
