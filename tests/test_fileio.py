"""advlogits.fileio: atomic writes that survive a kill, checksummed files, safe tensor loads, checked state dicts,
temporary folders that outlive no process."""

from __future__ import annotations

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

from advlogits import fileio
from advlogits.fileio import (
    StoreError,
    atomic_torch_save,
    atomic_write_bytes,
    load_state_dict_checked,
    process_folder,
    read_checked,
    record_path,
    remove_process_folders,
    safe_torch_load,
    tensor_bytes,
    verify_checked,
    write_checked,
)

from helpers import PICKLE_FORMATS, code_running_bytes, folders_of_a_dead_process


def test_write_killed_midway_leaves_old_file_intact(tmp_path):
    target = tmp_path / "result.json"
    atomic_write_bytes(b'{"old": true}', target)
    ready = tmp_path / "ready"
    script = textwrap.dedent(f"""
        import os, time
        from pathlib import Path
        from advlogits import fileio
        real_fsync = os.fsync
        def slow_fsync(fd):  # the new bytes are written to the temporary file; stop before the rename
            real_fsync(fd)
            Path({str(ready)!r}).touch()
            time.sleep(60)
        fileio.os.fsync = slow_fsync
        fileio.atomic_write_bytes(b"x" * 5_000_000, Path({str(target)!r}))
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


def test_a_failed_write_leaves_no_temporary_file_and_the_target_as_it_was(tmp_path):
    """A write that fails (here: the target is a non-empty folder, so the rename fails) raises, removes its
    temporary file and leaves what was at the target."""
    target = tmp_path / "out"
    target.mkdir()
    (target / "inside").write_text("kept")
    with pytest.raises(OSError):
        atomic_write_bytes(b"new", target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (target / "inside").read_text() == "kept"


def test_atomic_writes_create_folders_and_replace_whole_files(tmp_path):
    target = tmp_path / "a" / "b" / "file.bin"
    atomic_write_bytes(b"first version, longer", target)
    atomic_write_bytes(b"second", target)
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"], "no temporary file is left"


def test_checked_files_detect_corruption_and_incomplete_writes(tmp_path):
    path = tmp_path / "entry" / "metrics.json"
    assert read_checked(path) is None
    assert verify_checked(path) == "incomplete"
    write_checked(path, b'{"acc": 0.9}')
    assert read_checked(path) == b'{"acc": 0.9}'
    assert verify_checked(path) == "ok"
    assert record_path(path) == tmp_path / "entry" / "metrics.json.sha256"
    assert json.loads(record_path(path).read_text())["size"] == len(b'{"acc": 0.9}')
    path.write_bytes(b'{"acc": 1.0}')  # same size, different bytes
    with pytest.raises(StoreError, match="corrupt.*Run `advlogits store repair`"):
        read_checked(path)
    assert verify_checked(path) == "corrupt"
    path.write_bytes(b'{"acc"')  # truncated
    with pytest.raises(StoreError, match="corrupt"):
        read_checked(path)
    record_path(path).unlink()  # never completed: ignored, not served
    assert read_checked(path) is None
    assert verify_checked(path) == "incomplete"


def test_an_unreadable_record_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "entry" / "history.json"
    write_checked(path, b"{}")
    record_path(path).write_text("not json")
    with pytest.raises(StoreError, match=r"cannot read .*history\.json .*Run `advlogits store repair`"):
        read_checked(path)
    assert verify_checked(path) == "corrupt"


def test_rewriting_a_checked_file_removes_its_record_first(tmp_path, monkeypatch):
    """Between the start of a rewrite and its new record, the file reads as never completed, not as the old one
    under a stale record: the record goes before the data is replaced."""
    path = tmp_path / "r.json"
    write_checked(path, b"old")
    seen = []
    real = fileio.atomic_write_bytes

    def spy(data, target):
        seen.append((target.name, record_path(path).exists()))
        real(data, target)

    monkeypatch.setattr(fileio, "atomic_write_bytes", spy)
    write_checked(path, b"new")
    assert seen == [("r.json", False), ("r.json.sha256", False)]
    assert read_checked(path) == b"new"


@pytest.mark.parametrize("unsafe_default", [False, True], ids=["torch-default", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"])
@pytest.mark.parametrize("fmt", PICKLE_FORMATS)
def test_a_checkpoint_that_runs_code_is_refused(tmp_path, monkeypatch, fmt, unsafe_default):
    """In every format, whatever torch's default: the one safe load that the store and training read through."""
    if unsafe_default:  # an environment that turns off torch's safe default must not matter
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    path.write_bytes(code_running_bytes(marker, fmt, wrap=lambda e: {"weight": e}))
    with pytest.raises(StoreError, match="refusing to load .*evil.pt"):
        safe_torch_load(path)
    assert not marker.exists()
    with pytest.raises(StoreError, match=r"refusing to load stored bytes: .*never load a checkpoint you do not trust"):
        safe_torch_load(path.read_bytes())
    with pytest.raises(StoreError, match=r"refusing to load entry/model\.pt: "):
        safe_torch_load(path.read_bytes(), name="entry/model.pt")
    assert not marker.exists()


def test_a_truncated_checkpoint_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(StoreError, match="refusing to load"):
        safe_torch_load(path)


def test_tensors_round_trip_through_bytes_and_atomic_saves(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3), "n": torch.tensor(3), "nested": [torch.ones(2)]}
    loaded = safe_torch_load(tensor_bytes(state))
    assert torch.equal(loaded["w"], state["w"]) and torch.equal(loaded["n"], state["n"])
    assert torch.equal(loaded["nested"][0], state["nested"][0])
    path = tmp_path / "ckpt" / "checkpoint.pt"
    atomic_torch_save(state, path)
    assert torch.equal(safe_torch_load(path)["w"], state["w"])
    assert path.read_bytes() == tensor_bytes(state)


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


def test_assigning_a_state_takes_its_tensors_and_copies_only_those_in_another_dtype_or_layout():
    """With ``assign=True`` the model ends as a copy would leave it (its dtypes and strides), holding the state's own
    tensors wherever they already have them."""
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    state = {k: torch.full_like(v, 0.25) for k, v in model.state_dict().items()}
    state["0.weight"] = torch.full((3, 2), 0.5).t()  # the right shape, strides (1, 2) where the model's are (3, 1)
    state["1.bias"] = torch.full((2,), 0.75, dtype=torch.float64)
    load_state_dict_checked(model, state, source="x.pt", assign=True)
    loaded = model.state_dict()
    assert loaded["0.weight"].stride() == (3, 1) and torch.all(loaded["0.weight"] == 0.5)
    assert loaded["1.bias"].dtype == torch.float32 and torch.all(loaded["1.bias"] == 0.75)
    assert loaded["0.bias"].data_ptr() == state["0.bias"].data_ptr(), "in the model's layout: taken as it is"
    assert loaded["0.weight"].data_ptr() != state["0.weight"].data_ptr()
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in model.parameters())


def test_a_state_that_is_not_a_dict_or_has_many_bad_keys_is_refused():
    model = nn.Sequential(*[nn.Linear(2, 2) for _ in range(6)])
    with pytest.raises(StoreError, match=r"x\.pt does not hold a state dict \(got list\)"):
        load_state_dict_checked(model, [torch.zeros(1)], source="x.pt")
    with pytest.raises(
        StoreError,
        match=r"weights in x\.pt do not fit Sequential: missing keys: "
        r"(\d\.(bias|weight), ){7}\d\.(bias|weight) \.\.\.\. .*delete the file",
    ):
        load_state_dict_checked(model, {}, source="x.pt")
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(StoreError, match=r"mis-shaped keys: 0\.weight"):
        load_state_dict_checked(model, {**model.state_dict(), "0.weight": "not a tensor"}, source="x.pt")
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters())), "a refused state loads nothing"


def test_the_folders_of_dead_processes_go_and_the_others_stay_until_asked(tmp_path):
    """A folder whose process is gone goes with ``only_dead``; this live process's stays until every folder of the
    prefix is asked for; a folder of another prefix is never touched."""
    dead, other = folders_of_a_dead_process(tmp_path, "run1-", "run2-")
    with process_folder("run1-", parent=tmp_path) as alive:
        assert Path(alive).name.startswith(f"run1-{os.getpid()}-") and dead.is_dir()
        (Path(alive) / "model.pt").write_bytes(b"weights")
        assert remove_process_folders("run1-", parent=tmp_path, only_dead=True) == [dead]
        assert sorted(tmp_path.iterdir()) == sorted([Path(alive), other])
        assert remove_process_folders("run1-", parent=tmp_path, only_dead=False) == [Path(alive)]
    assert list(tmp_path.iterdir()) == [other]
