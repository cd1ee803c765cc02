"""Fault injection: crafted files in the store.

A stored model, a training checkpoint or a RobustBench checkpoint that would run code when unpickled is refused
and the code does not run, whatever torch's default (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``); weights or a
checkpoint that do not fit the model are refused with what is wrong named and what to do said.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest
import torch

from advlogits import pipeline
from advlogits.fileio import StoreError, tensor_bytes, write_checked
from advlogits.models import build_model, load_robustbench
from advlogits.store import Store
from advlogits.train import TrainConfig

from fault_workers import METRICS, ST, STORE_HISTORY, entry_of
from helpers import CodeRunningPayload

pytestmark = pytest.mark.faults


def _crafted(marker: Path, fmt: str, *, wrap) -> bytes:
    payload = wrap(CodeRunningPayload(marker))
    if fmt == "raw-pickle":
        return pickle.dumps(payload, protocol=2)
    buffer = io.BytesIO()
    torch.save(payload, buffer, _use_new_zipfile_serialization=(fmt == "zip"))
    return buffer.getvalue()


def _plant(store: Store, config: TrainConfig, name: str, data: bytes) -> Path:
    """Put ``data`` at ``name`` in the entry with a checksum record that matches it, as if the store wrote it."""
    store.save_weights(
        pipeline.model_key(config), state=build_model("cnn-small").state_dict(), config=config, history=STORE_HISTORY
    )
    path = entry_of(store, config) / name
    write_checked(path, data)
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
    assert pipeline.has_model(ST, store=store), "only the safe load stands between the file and the code"
    with pytest.raises(StoreError, match=r"(?s)refusing to load .*model\.pt: .*Delete it to recompute it"):
        pipeline.get_model(ST, store=store, progress=False)
    assert not marker.exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_training_checkpoint_that_runs_code_is_refused(tmp_path, monkeypatch, fmt):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "pwned"
    store = Store(tmp_path / "store")
    ckpt = entry_of(store, ST) / "checkpoint.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(_crafted(marker, fmt, wrap=lambda e: {"model": e, "epoch": 0}))
    with pytest.raises(StoreError, match=r"refusing to load .*checkpoint\.pt.*never load a checkpoint you do not"):
        pipeline.get_model(ST, store=store, progress=False)
    assert not marker.exists()
    assert not pipeline.has_model(ST, store=store), "nothing was trained on top of it"


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
    _plant(store, ST, "model.pt", tensor_bytes(state))
    with pytest.raises(
        StoreError,
        match=r"model\.pt do not fit .*: missing keys: net\.head\.3\.bias; unexpected keys: "
        r"net\.head\.5\.weight; mis-shaped keys: net\.features\.3\.weight\. .*delete",
    ):
        pipeline.get_model(ST, store=store, progress=False)


def _checkpoint_state(config: TrainConfig) -> dict:
    """A checkpoint as `advlogits.train.fit` writes it after epoch 1 (weights, optimizer, scheduler, epoch,
    history)."""
    torch.manual_seed(0)
    model = build_model(config.arch)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, nesterov=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": 0,
        "history": {key: [] for key in (*METRICS, "seconds")},
    }


CHECKPOINT_CASES = [
    # (id, how the checkpoint is spoiled, expected message)
    (
        "other-architecture",
        lambda state: state.update(model=build_model("cnn").state_dict()),
        r"weights in checkpoint .*checkpoint\.pt do not fit Sequential: missing keys: net\.features\.3\.bias, "
        r"net\.features\.3\.weight; unexpected keys: net\.features\.2\.bias, .*mis-shaped keys: .*net\.head\.1\.weight",
    ),
    (
        "other-run",
        lambda state: state.update(epoch=7),
        r"ends at epoch index 7, outside this run of 3 epochs: it belongs to another run\. Delete it",
    ),
    (
        "missing-parts",
        lambda state: [state.pop("optimizer"), state.pop("scheduler")],
        r"checkpoint .*checkpoint\.pt lacks optimizer, scheduler: it was not written by this training loop",
    ),
]


@pytest.mark.parametrize("spoil, message", [c[1:] for c in CHECKPOINT_CASES], ids=[c[0] for c in CHECKPOINT_CASES])
def test_a_checkpoint_that_does_not_fit_is_refused_with_what_is_wrong(tmp_path, spoil, message):
    """The resume path loads a checkpoint's weights checked key by key: a StoreError that names the bad keys and
    says to delete the checkpoint, not a RuntimeError or KeyError without advice."""
    state = _checkpoint_state(ST)
    spoil(state)
    store = Store(tmp_path)
    ckpt = entry_of(store, ST) / "checkpoint.pt"
    ckpt.parent.mkdir(parents=True)
    torch.save(state, ckpt)
    with pytest.raises(StoreError, match=message):
        pipeline.get_model(ST, store=store, progress=False)
    assert not pipeline.has_model(ST, store=store)
