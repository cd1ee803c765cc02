"""Helpers shared by several test files: a crafted pickle payload, an internet check, RobustBench checkpoints where
RobustBench looks first, a model that counts its calls, and a tiny training config. (CIFAR-10 files in the real
format come from `advlogits.synthetic`, which the GPU check uses too.)"""

from __future__ import annotations

import io
import os
import pickle
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

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
    lines = [
        line
        for line in params[0].source.splitlines()
        if line.strip() and not line.startswith(("import ", "from ", "#"))
    ]
    names = [line.split(":")[0] for line in lines]
    assert names[:5] == ["profile", "device", "seed", "eps", "overrides"], names
    assert all(line.count("=") == 1 for line in lines)
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
