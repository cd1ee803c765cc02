"""The store: keys, atomic writes that survive a kill, checksums, safe loading, get_or_train reuse."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from advlogits import store as store_module
from advlogits.store import Store, StoreError, atomic_write_bytes, config_key, load_state_dict_checked, safe_torch_load
from advlogits.train import TrainConfig
from helpers import CodeRunningPayload

TINY = TrainConfig(dataset="fashion-mnist", arch="cnn-small", method="standard", epochs=1, batch_size=64, lr=0.05,
                   weight_decay=5e-4, n_train=256, n_val=64, seed=0)


def test_config_key_is_stable_and_sensitive():
    assert config_key(TINY) == config_key(dataclasses.replace(TINY))
    assert config_key(TINY) != config_key(dataclasses.replace(TINY, seed=1))
    assert config_key(TINY) != config_key(dataclasses.replace(TINY, lr=0.050001))
    assert config_key(TINY, code="a") != config_key(TINY, code="b"), "the code version is part of the key"
    assert len(config_key(TINY)) == 16


def test_write_killed_midway_leaves_old_file_intact(tmp_path):
    target = tmp_path / "result.json"
    atomic_write_bytes(b'{"old": true}', target)
    ready = tmp_path / "ready"
    script = textwrap.dedent(f"""
        import os, time
        from pathlib import Path
        from advlogits import store
        real_fsync = os.fsync
        def slow_fsync(fd):  # the new bytes are written to the temporary file; stop before the rename
            real_fsync(fd)
            Path({str(ready)!r}).touch()
            time.sleep(60)
        store.os.fsync = slow_fsync
        store.atomic_write_bytes(b"x" * 5_000_000, Path({str(target)!r}))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 60
        while not ready.exists():
            assert proc.poll() is None, "writer exited before reaching the kill point"
            assert time.time() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert target.read_bytes() == b'{"old": true}'
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".result.json.")]
    assert leftovers and leftovers[0].stat().st_size == 5_000_000, "the kill happened after the new bytes were written"


def test_checked_files_detect_corruption_and_incomplete_writes(tmp_path):
    s = Store(tmp_path)
    path = tmp_path / "entry" / "metrics.json"
    assert s.read_file(path) is None
    s.write_file(path, b'{"acc": 0.9}')
    assert s.read_file(path) == b'{"acc": 0.9}'
    path.write_bytes(b'{"acc": 1.0}')  # same size, different bytes
    with pytest.raises(StoreError, match="corrupt.*Delete the entry folder"):
        s.read_file(path)
    path.write_bytes(b'{"acc"')  # truncated
    with pytest.raises(StoreError, match="corrupt"):
        s.read_file(path)
    path.with_name("metrics.json.sha256").unlink()  # never completed: ignored, not served
    assert s.read_file(path) is None


def test_a_checkpoint_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"weight": CodeRunningPayload(marker)}, path)
    with pytest.raises(StoreError, match="refusing to load .*evil.pt"):
        safe_torch_load(path)
    assert not marker.exists()


def test_a_truncated_checkpoint_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(StoreError, match="refusing to load"):
        safe_torch_load(path)


def test_mismatched_weights_are_refused_with_the_bad_keys():
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state.pop("1.bias")
    state["2.weight"] = torch.zeros(1)
    state["0.weight"] = torch.zeros(5, 5)
    with pytest.raises(StoreError, match=r"missing keys: 1.bias; unexpected keys: 2.weight; mis-shaped keys: 0.weight"):
        load_state_dict_checked(model, state, source="x.pt")
    good = {k: torch.full_like(v, 0.5) for k, v in model.state_dict().items()}
    load_state_dict_checked(model, good, source="x.pt")
    assert torch.all(model[0].weight == 0.5)


def test_unwritable_home_names_the_variable(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("ADVLOGITS_HOME", str(blocker / "store"))
    with pytest.raises(StoreError, match="not writable.*Set ADVLOGITS_HOME"):
        Store().get_or_compute_json(TINY, "x", {}, lambda: {"a": 1})


def test_results_are_computed_once(tmp_path):
    s = Store(tmp_path)
    calls = []
    compute = lambda: calls.append(1) or {"value": 3}
    assert s.get_or_compute_json(TINY, "metric", {"k": 1}, compute) == {"value": 3}
    assert s.get_or_compute_json(TINY, "metric", {"k": 1}, compute) == {"value": 3}
    assert len(calls) == 1
    s.get_or_compute_json(TINY, "metric", {"k": 2}, compute)
    assert len(calls) == 2, "other parameters are another result"
    tensors = s.get_or_compute_tensors(TINY, "logits", {}, lambda: {"z": torch.arange(6.0).reshape(2, 3)})
    again = s.get_or_compute_tensors(TINY, "logits", {}, lambda: pytest.fail("recomputed"))
    assert torch.equal(tensors["z"], again["z"])


@pytest.mark.slow
def test_get_or_train_trains_once_then_loads(tmp_path):
    s = Store(tmp_path)
    model, history = s.get_or_train(TINY, progress=False)
    entry = s.entry(TINY)
    stamp = (entry / "model.pt").stat().st_mtime_ns
    assert not (entry / "checkpoint.pt").exists(), "the training checkpoint is removed once the model is stored"
    assert json.loads((entry / "config.json").read_text())["seed"] == 0
    loaded, history2 = s.get_or_train(TINY, progress=False)
    assert (entry / "model.pt").stat().st_mtime_ns == stamp
    assert history2 == json.loads(json.dumps(history))
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    assert not loaded.training


def test_default_store_follows_advlogits_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVLOGITS_HOME", str(tmp_path / "h"))
    assert Store().root == tmp_path / "h"
    monkeypatch.delenv("ADVLOGITS_HOME")
    assert store_module.home() == Path.home() / ".cache" / "advlogits"


def test_results_are_keyed_by_the_source_of_the_module_that_computes_them(tmp_path):
    from advlogits import experiments, theory
    from advlogits.store import _CORE_MODULES, _source_version, code_version

    assert "theory.py" not in _CORE_MODULES and "train.py" in _CORE_MODULES
    assert _source_version(theory.train_linear) == code_version(("theory.py",)) != ""
    assert _source_version(experiments.evaluate) == code_version(("experiments.py",))
    assert _source_version(lambda: None) == "", "code outside the package (tests, notebooks) adds nothing"
    s = Store(tmp_path)
    a = s.result_path(TINY, "r", {}, ".json", theory.train_linear)
    b = s.result_path(TINY, "r", {}, ".json", experiments.evaluate)
    assert a != b and a.parent == b.parent == s.entry(TINY) / "results"
