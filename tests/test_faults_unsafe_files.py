"""Fault injection: crafted files in the store. Weights or a checkpoint that do not fit the model are refused with
what is wrong named and what to do said.

A file that would run code when unpickled is refused by the loader that reads it, each tested with its module:
the safe load in every format and whatever torch's default (tests/test_fileio.py), a stored model
(tests/test_store.py), a training checkpoint (tests/test_train.py), a RobustBench checkpoint (tests/test_models.py)
and a CIFAR-10 batch (tests/test_data.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from advlogits import pipeline
from advlogits.fileio import StoreError, tensor_bytes, write_checked
from advlogits.models import build_model
from advlogits.store import Store
from advlogits.train import TrainConfig

from fault_workers import METRICS, ST, STORE_HISTORY, entry_of

pytestmark = pytest.mark.faults


def _plant(store: Store, config: TrainConfig, name: str, data: bytes) -> Path:
    """Put ``data`` at ``name`` in the entry with a checksum record that matches it, as if the store wrote it."""
    store.save_weights(
        pipeline.model_key(config), state=build_model("cnn-small").state_dict(), config=config, history=STORE_HISTORY
    )
    path = entry_of(store, config) / name
    write_checked(path, data)
    return path


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
