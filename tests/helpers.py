"""Helpers shared by several test files: a crafted pickle payload, an internet check, RobustBench checkpoints where
RobustBench looks first, a model that counts its calls, a tiny training config, a chapter executed as the build
executes it, a store's contents as runs compare them, work done once per test session, and the attack tests' data
and models (Fashion-MNIST read by hand, a tiny CNN, a two-class linear model). (CIFAR-10 files in the real format
come from `advlogits.synthetic`, which the GPU check uses too.)"""

from __future__ import annotations

import ast
import dataclasses
import gzip
import io
import json
import os
import pickle
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from filelock import FileLock
from torch import nn

from advlogits.buildfiles import PAPERMILL_ENGINE
from advlogits.paths import EXECUTED
from advlogits.train import TrainConfig


class CodeRunningPayload:
    """Unpickling this object runs ``touch <marker>``: a test passes only if the marker is never created."""

    def __init__(self, marker: str | Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


PICKLE_FORMATS = ("zip", "legacy", "raw-pickle")  # torch.save's two formats, and a bare pickle


def code_running_bytes(marker: str | Path, fmt: str, *, wrap: Callable[[object], object] = lambda e: e) -> bytes:
    """A file that runs ``touch <marker>`` when unpickled: `CodeRunningPayload` inside ``wrap`` (a checkpoint's
    layout), written in format ``fmt`` of `PICKLE_FORMATS`."""
    payload = wrap(CodeRunningPayload(marker))
    if fmt == "raw-pickle":
        return pickle.dumps(payload, protocol=2)
    buffer = io.BytesIO()
    torch.save(payload, buffer, _use_new_zipfile_serialization=(fmt == "zip"))
    return buffer.getvalue()


def online(host: str) -> bool:
    """True if ``host`` resolves: then a download would really start, and the offline tests do not apply."""
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def folders_of_a_dead_process(parent: Path, *prefixes: str) -> list[Path]:
    """A `process_folder` of each prefix, made by a child that then exits as a killed process does, without
    removing them."""
    code = textwrap.dedent(
        """
        import os, sys
        from advlogits.fileio import process_folder
        folders = [process_folder(p, parent=sys.argv[1]) for p in sys.argv[2:]]  # held: collected, they would go
        print("\\n".join(f.name for f in folders), flush=True)
        os._exit(0)  # no clean-up, as after SIGKILL
        """
    )
    child = subprocess.run([sys.executable, "-c", code, str(parent), *prefixes], capture_output=True, text=True)
    assert child.returncode == 0, child.stderr
    return [Path(line) for line in child.stdout.split()]


def robustbench_zoo_model(name: str) -> Any:
    """A freshly initialised (random-weight) network of CIFAR-10 L-inf RobustBench zoo entry ``name``."""
    from advlogits._compat import import_robustbench_utils

    import_robustbench_utils()  # registers the autoattack alias before robustbench's modules are imported
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    return model_dicts[BenchmarkDataset.cifar_10][ThreatModel.Linf][name]["model"]()


def write_robustbench_checkpoint(model_dir: Path, name: str, state: object) -> Path:
    """Save ``{"state_dict": state}`` (RobustBench's checkpoint layout) at ``model_dir/cifar10/Linf/<name>.pt``,
    where `robustbench.utils.load_model` looks before downloading; returns the path."""
    import torch

    folder = model_dir / "cifar10" / "Linf"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.pt"
    torch.save({"state_dict": state}, path)
    return path


def hand_made_robust(**values: float) -> dict[str, float]:
    """Robust accuracies of the distillation line-up's claim students, made by hand (defaults overridden by name)."""
    names = {
        "hard": "hard labels",
        "kd_st": "KD-ST",
        "kd_at": "KD-AT",
        "shuffled": "AT shuffled",
        "mean": "AT mean",
        "order": "AT ST order",
        "flat": "AT flattened",
        "smooth": "AT label smoothing",
    }
    base = {
        "hard": 0.10,
        "kd_st": 0.12,
        "kd_at": 0.42,
        "shuffled": 0.15,
        "mean": 0.20,
        "order": 0.27,
        "flat": 0.12,
        "smooth": 0.10,
    }
    return {names[k]: v for k, v in {**base, **values}.items()}


def committed_chapter_code(stem: str) -> list:
    """The code cells of ``chapters/<stem>.ipynb``, checked to have one typed parameters cell (the set-up imports,
    then profile, device, seed, eps, overrides) and no cell over 30 lines. (That every chapter is committed without
    outputs is tests/test_hygiene.py's check.)"""
    import nbformat

    nb = nbformat.read(Path(__file__).resolve().parents[1] / "chapters" / f"{stem}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    statements = [n for n in ast.parse(params[0].source).body if not isinstance(n, (ast.Import, ast.ImportFrom))]
    typed = [n for n in statements if isinstance(n, ast.AnnAssign) and n.value is not None]
    assert len(typed) == len(statements), "the parameters cell holds imports and typed parameters with values only"
    names = [n.target.id for n in typed]
    assert names[:5] == ["profile", "device", "seed", "eps", "overrides"], names
    assert max(len(c.source.splitlines()) for c in code) <= 30
    return code


class CountingModel(torch.nn.Module):
    """A 10-class linear model on 4x4 inputs that counts its forward passes, to check that bad input is refused
    before any compute."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(16, 10)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.linear(x.flatten(1))


def tiny_standard_config(*, n_train: int = 256, n_val: int = 64, batch_size: int = 64, epochs: int = 1) -> TrainConfig:
    """A standard-training config of cnn-small on a Fashion-MNIST subset, small enough for a unit test."""
    return TrainConfig(
        dataset="fashion-mnist",
        arch="cnn-small",
        method="standard",
        epochs=epochs,
        batch_size=batch_size,
        lr=0.05,
        weight_decay=5e-4,
        n_train=n_train,
        n_val=n_val,
        seed=0,
    )


SMOKE = "smoke"  # the profile of the tests that run the whole plan
CHAPTERS = sorted((Path(__file__).resolve().parents[1] / "chapters").glob("*.ipynb"))


def execute_chapter(
    chapter: Path,
    out: Path,
    *,
    env: dict[str, str],
    profile: str,
    parameters: dict | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess:
    """Execute ``chapter`` with papermill into ``out`` as `make execute` does (kernel python3, from chapters/, on the
    CPU), with ``profile`` and the other ``parameters``; the finished process, its output captured."""
    cmd = [sys.executable, "-m", "papermill", str(chapter), str(out), "-k", "python3", "--engine", PAPERMILL_ENGINE]
    cmd += ["--cwd", str(chapter.parent)]
    cmd += ["--no-progress-bar", "-p", "profile", profile, "-p", "device", "cpu"]
    if parameters:
        cmd += ["-y", json.dumps(parameters)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


TIMINGS = ("pid", "finished", "seconds")  # what a log line says of the process and the clock, not of the result


def store_contents(home: Path) -> dict[str, object]:
    """Every file of every entry of the store at ``home``, as two runs of one plan must leave it: the bytes of each
    file, but a training history without its seconds (its checksum record, which covers them, is left out) and a
    log (training.log, compute.log) as its sorted lines without `TIMINGS`."""
    contents: dict[str, object] = {}
    for path in sorted((home / "entries").rglob("*")):
        name = str(path.relative_to(home))
        if not path.is_file() or path.name == "history.json.sha256":
            continue
        if path.name == "history.json":
            contents[name] = {k: v for k, v in json.loads(path.read_bytes()).items() if k != "seconds"}
        elif path.suffix == ".log":
            lines = [json.loads(line) for line in path.read_text().splitlines()]
            contents[name] = sorted(json.dumps({k: v for k, v in x.items() if k not in TIMINGS}) for x in lines)
        else:
            contents[name] = path.read_bytes()
    return contents


def store_differences(home: Path, reference: Path) -> list[str]:
    """The files of the store at ``home`` that are missing, extra or different against ``reference``, compared as
    `store_contents`; empty when the two hold the same results."""
    ours, theirs = store_contents(home), store_contents(reference)
    return [
        f"{name}: {'missing' if name not in ours else 'extra' if name not in theirs else 'different'}"
        for name in sorted(ours.keys() | theirs.keys())
        if ours.get(name) != theirs.get(name)
    ]


def shared_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder that every pytest-xdist worker of this session shares (the session's base folder without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def computed_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, compute: Callable[[Path], Any]
) -> tuple[Path, Any]:
    """``compute(folder)`` run once per session, even over several pytest-xdist workers, in the folder ``name`` of
    the session's shared folder: the first worker to ask runs it under a file lock and keeps its result (JSON), the
    others find it there. Returns the folder and the result.

    A module-scoped fixture is set up again by every worker that runs a test of its module, and again whenever a
    worker comes back to the module after stealing other tests: an expensive one belongs here instead."""
    folder = shared_folder(tmp_path_factory) / name
    done = folder / ".computed.json"
    with FileLock(str(folder) + ".lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a failed attempt left
            folder.mkdir(parents=True)
            done.write_text(json.dumps(compute(folder)))
    return folder, json.loads(done.read_text())


def claim_chapters() -> list[Path]:
    """The chapters that decide the claims (those that write claim records)."""
    from advlogits.chapters import claims

    stems = {claim.chapter for claim in claims.CLAIMS.values()}
    return [c for c in CHAPTERS if c.stem in stems]


def claim_records(home: Path, executed: Path, *, profile: str, chapters: Sequence[Path] | None = None) -> list[dict]:
    """The scorecard's records of the store at ``home``: ``chapters`` (default: `claim_chapters`) executed into
    ``executed`` at ``profile``, their claim records gathered as the scorecard gathers them."""
    from advlogits import buildfiles

    env = {**os.environ, "ADVLOGITS_HOME": str(home), EXECUTED: str(executed)}
    executed.mkdir(parents=True, exist_ok=True)
    for chapter in claim_chapters() if chapters is None else chapters:
        proc = execute_chapter(chapter, executed / chapter.name, env=env, profile=profile)
        assert proc.returncode == 0, f"{chapter.name}:\n{proc.stderr[-3000:]}"
    with mock.patch.dict(os.environ, {EXECUTED: str(executed)}):
        return buildfiles.gather(profile)


_METHOD_FIELDS = {
    "standard": {},
    "adversarial": dict(eps=0.1, alpha=0.04, steps=3),
    "distilled": dict(teacher=tiny_standard_config(), targets="kd", T=2.0),
}


def train_config(method: str = "standard", **fields: Any) -> TrainConfig:
    """`tiny_standard_config` as a config of ``method`` (adversarial: eps 0.1, alpha 0.04, 3 PGD steps; distilled: KD
    at T = 2 from a standard teacher), with ``fields`` replaced: what the training functions of a unit test take."""
    return dataclasses.replace(tiny_standard_config(), method=method, **{**_METHOD_FIELDS[method], **fields})


# ----------------------------------------------------------------------------------------------------
# the attack tests' data and models (tests/test_attacks.py, test_evaluation.py, test_autoattack.py, test_predict.py)

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def read_idx_images(name: str, n: int) -> torch.Tensor:
    """The first n images of a gz IDX file of Debian's Fashion-MNIST as float32 (n, 1, 28, 28) in [0, 1], read by
    hand (independent of advlogits.data)."""
    with gzip.open(FASHION_MNIST / name) as f:
        raw = f.read(16 + n * 28 * 28)
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, 1, 28, 28)
    return torch.from_numpy(pixels.astype(np.float32) / 255.0)


def read_idx_labels(name: str, n: int) -> torch.Tensor:
    """The first n labels of a gz IDX file of Debian's Fashion-MNIST as int64 (n,)."""
    with gzip.open(FASHION_MNIST / name) as f:
        raw = f.read(8 + n)
    return torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=8).astype(np.int64))


def fashion_test_images(n: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n Fashion-MNIST test images (n, 1, 28, 28) and labels (n,)."""
    return read_idx_images("t10k-images-idx3-ubyte.gz", n), read_idx_labels("t10k-labels-idx1-ubyte.gz", n)


def tiny_cnn() -> nn.Module:
    """Two strided convolutions and a linear layer: 10 classes on (N, 1, 28, 28)."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 7 * 7, 10),
    )


def trained_tiny_cnn() -> nn.Module:
    """`tiny_cnn` trained for 2 epochs on 2000 Fashion-MNIST images (clean accuracy ~75%), in eval mode."""
    x = read_idx_images("train-images-idx3-ubyte.gz", 2000)
    y = read_idx_labels("train-labels-idx1-ubyte.gz", 2000)
    torch.manual_seed(0)
    model = tiny_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    order = torch.Generator().manual_seed(0)
    for _ in range(2):
        perm = torch.randperm(len(x), generator=order)
        for i in range(0, len(x), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    for p in model.parameters():
        p.grad = None
    return model


def linear_two_class(dtype: torch.dtype = torch.float64) -> nn.Module:
    """f(x) = W flatten(x) + b with 2 classes on (N, 3, 4, 4) inputs, fixed random weights, in eval mode."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2)).to(dtype)
    with torch.no_grad():
        model[1].weight.normal_(0.0, 0.3)
        model[1].bias.normal_(0.0, 0.3)
    return model.eval()


def accuracy_by_hand(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The fraction of argmax predictions equal to y, in one forward pass (no library code)."""
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).double().mean().item()


class BatchNormDropoutNet(nn.Module):
    """A model whose output and buffers change in train mode (BatchNorm statistics, Dropout)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 28 * 28, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def model_state(model: nn.Module) -> dict[str, object]:
    """What a function that runs a model must leave as it found it: each submodule's mode, each parameter's
    requires_grad and .grad, and the buffers (BatchNorm statistics)."""
    return {
        "modes": {name: m.training for name, m in model.named_modules()},
        "flags": {name: p.requires_grad for name, p in model.named_parameters()},
        "grads": {name: None if p.grad is None else p.grad.clone() for name, p in model.named_parameters()},
        "buffers": {name: b.clone() for name, b in model.named_buffers()},
    }


def assert_same_state(before: dict[str, object], after: dict[str, object]) -> None:
    """`model_state` unchanged, tensor by tensor."""
    assert after["modes"] == before["modes"]
    assert after["flags"] == before["flags"]
    for part in ("grads", "buffers"):
        for name, value in before[part].items():
            got = after[part][name]
            assert (got is None) if value is None else torch.equal(got, value), (part, name)


# ----------------------------------------------------------------------------------------------------
# data sets in the real formats (tests/test_data.py, tests/test_datafiles.py)


def idx_images_bytes(images: np.ndarray) -> bytes:
    """An IDX images file of ``images`` (N, 28, 28) uint8."""
    return struct.pack(">iiii", 2051, len(images), 28, 28) + images.astype(np.uint8).tobytes()


def idx_labels_bytes(labels: np.ndarray) -> bytes:
    """An IDX labels file of ``labels`` (N,) uint8."""
    return struct.pack(">ii", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def write_idx_set(folder: Path, split: str, images: np.ndarray, labels: np.ndarray, *, gz: bool) -> None:
    """Write ``images`` (N, 28, 28) and ``labels`` (N,) as the IDX files of ``split``."""
    folder.mkdir(parents=True, exist_ok=True)
    prefix = "train" if split == "train" else "t10k"
    for stem, payload in (
        (f"{prefix}-images-idx3-ubyte", idx_images_bytes(images)),
        (f"{prefix}-labels-idx1-ubyte", idx_labels_bytes(labels)),
    ):
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(payload))
        else:
            (folder / stem).write_bytes(payload)


def random_idx_set(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random 28 x 28 uint8 images and labels in 0..9."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=n, dtype=np.uint8)
