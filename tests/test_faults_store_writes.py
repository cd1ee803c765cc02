"""Fault injection: a store write killed at any point leaves the previous entry readable and is never read
half-written.

A worker (`fault_workers.worker_store_kills`) prepares a store holding a complete entry (OLD: weights, history,
config, one result), then forks one child per case that performs one write and dies by SIGKILL at its m-th
fsync, or by the kernel's SIGXFSZ in the middle of a file (RLIMIT_FSIZE). The tests read what each child left.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from advlogits.fileio import StoreError, read_checked, tensor_bytes
from advlogits.store import Store

from fault_workers import (
    NEW_KEY,
    NEW_RESULT,
    OLD_RESULT,
    STORE_HISTORY,
    STORE_NEW,
    STORE_OLD,
    WORKER_TIMEOUT_S,
    digest,
    load_stored,
    result_file,
    store_case_models,
    store_write,
    worker_command,
)
from helpers import computed_once

pytestmark = pytest.mark.faults


def _model_bytes() -> int:
    return len(tensor_bytes(store_case_models()["NEW"].state_dict()))


# save_weights makes 12 fsyncs (3 files x (data, folder, record, folder)); write_checked makes 4.
STORE_CASES = (
    [{"name": f"save-new-fsync-{m}", "scenario": "save-new", "at_fsync": m} for m in range(1, 13)]
    + [{"name": f"result-into-old-fsync-{m}", "scenario": "result-into-old", "at_fsync": m} for m in range(1, 5)]
    + [{"name": f"overwrite-result-fsync-{m}", "scenario": "overwrite-result", "at_fsync": m} for m in range(1, 5)]
    + [{"name": "save-new-complete", "scenario": "save-new"}]
)


@pytest.fixture(scope="module")
def store_kills(tmp_path_factory) -> tuple[Path, dict, list[dict]]:
    """Every case's store under one folder, the worker's report (case -> exit status) and the cases; the worker runs
    once per session (the tests only read its stores)."""
    torn = [
        {"name": "save-new-torn-model", "scenario": "save-new", "torn_at": _model_bytes() // 2},
        {"name": "overwrite-result-torn", "scenario": "overwrite-result", "torn_at": len(NEW_RESULT) // 2},
    ]
    cases = STORE_CASES + torn

    def kill_every_case(base: Path) -> dict:
        proc = subprocess.run(
            worker_command("store-kills", {"base": str(base), "cases": cases}),
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT_S,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.splitlines()[-1])

    base, report = computed_once(tmp_path_factory, "store-kills", kill_every_case)
    return base, report, cases


def _readable(path: Path) -> bytes | None:
    """``read_checked`` must never raise here: atomic writes leave complete files or none, never a corrupt one."""
    return read_checked(path)


def _assert_old_entry_intact(store: Store, *, result_may_be: tuple[bytes | None, ...] = (OLD_RESULT,)) -> None:
    model, history = load_stored(store, STORE_OLD)
    expected = store_case_models()["OLD"]
    assert digest(model) == digest(expected) and history == STORE_HISTORY
    assert _readable(result_file(store, "metrics")) in result_may_be


@pytest.mark.slow
def test_store_writes_were_killed_where_intended(store_kills):
    _, report, cases = store_kills
    for case in cases:
        expected = (
            0
            if not ({"at_fsync", "torn_at"} & case.keys())
            else (signal.SIGKILL if "at_fsync" in case else signal.SIGXFSZ)
        )
        assert report[case["name"]] == expected, case


@pytest.mark.slow
@pytest.mark.parametrize("m", range(1, 13))
def test_a_killed_save_model_leaves_the_old_entry_and_no_half_model(store_kills, m, tmp_path):
    base, _, _ = store_kills
    store = Store(base / f"save-new-fsync-{m}")
    _assert_old_entry_intact(store)
    complete = Store(tmp_path)  # the same save, not killed: the bytes a reader may see
    store_write(complete, "save-new")
    folder = store.entry(NEW_KEY)
    # a file is readable exactly from the fsync after its record's rename (4, 8, 12), never before
    for name, readable_from in (("config.json", 4), ("history.json", 8), ("model.pt", 12)):
        data = _readable(folder / name)
        if m < readable_from:
            assert data is None, f"{name} was served before it was complete"
        elif name == "model.pt":
            loaded = torch.load(io.BytesIO(data), weights_only=True)
            assert {k: v.tolist() for k, v in loaded.items()} == {
                k: v.tolist() for k, v in store_case_models()["NEW"].state_dict().items()
            }
        else:
            assert data == read_checked(complete.entry(NEW_KEY) / name)
    assert store.has_weights(NEW_KEY) is (m >= 12)
    if m < 12:
        with pytest.raises(
            StoreError,
            match=r"no stored weights in .*; compute them first "
            r"\(advlogits\.pipeline\.get_model\)",
        ):
            store.load_weights(NEW_KEY)
    else:
        assert digest(load_stored(store, STORE_NEW)[0]) == digest(store_case_models()["NEW"])


@pytest.mark.slow
@pytest.mark.parametrize("m", range(1, 5))
def test_a_killed_result_write_into_an_entry_leaves_it_intact(store_kills, m):
    base, _, _ = store_kills
    store = Store(base / f"result-into-old-fsync-{m}")
    _assert_old_entry_intact(store)
    # readable only once its record is renamed into place (fsync 4 is the folder's, after that rename)
    assert _readable(result_file(store, "extra")) == (NEW_RESULT if m == 4 else None)


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
    folder = store.entry(NEW_KEY)
    leftovers = list(folder.glob(".model.pt.*.tmp"))
    assert [p.stat().st_size for p in leftovers] == [torn["save-new-torn-model"]], "the write stopped mid-file"
    assert not (folder / "model.pt").exists() and not store.has_weights(NEW_KEY)
    assert read_checked(folder / "history.json") is not None, "the files written before it are complete"

    store = Store(base / "overwrite-result-torn")
    result = result_file(store, "metrics")
    assert [p.stat().st_size for p in result.parent.glob(".*.tmp")] == [torn["overwrite-result-torn"]]
    _assert_old_entry_intact(store, result_may_be=(None,))


@pytest.mark.slow
def test_the_store_lists_what_killed_writes_left(store_kills):
    """After the kills, `Store.stale_files` lists the torn temporary file and `Store.verify` finds nothing
    corrupt: every file with a checksum record reads back whole."""
    base, _, _ = store_kills
    store = Store(base / "save-new-torn-model")
    assert (
        {p.name for p in store.stale_files() if p.suffix == ".tmp"}
        == {p.name for p in store.entry(NEW_KEY).glob(".model.pt.*.tmp")}
        != set()
    )
    checked = store.verify()
    assert checked and set(checked.values()) == {"ok"}
    assert store.entry(NEW_KEY) / "history.json" in checked and store.entry(NEW_KEY) / "model.pt" not in checked
