"""advlogits.store, the generic store: keys, entries, locks, "get or compute" of weights, JSON and tensors (each
computed once, by a compute function the tests count), and housekeeping (keys, verify, stale files, remove).

The store knows nothing of training: the computations here are plain functions; training through the store is
tested in tests/test_pipeline_stored.py.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
import threading
import types
from pathlib import Path

import filelock
import pytest
import torch

from advlogits import store as store_module
from advlogits.fileio import StoreError, read_checked, record_path, write_checked
from advlogits.store import Store, canonical, config_key, from_canonical, home, source_digest
from advlogits.train import TrainConfig

from helpers import code_running_bytes, tiny_standard_config

TINY = tiny_standard_config()
KEY = config_key(TINY, code="code-a")
HISTORY = {"epoch": [1], "train_loss": [0.5]}


class Counter:
    """A compute function that counts its calls."""

    def __init__(self, result):
        self.calls = 0
        self.result = result

    def __call__(self, *args):
        self.calls += 1
        self.args = args
        return self.result() if callable(self.result) else self.result


def _state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(3, 2, generator=g), "b": torch.randn(3, generator=g)}


# --------------------------------------------------------------------------------------------------------------
# keys


def test_config_key_is_stable_and_sensitive():
    assert config_key(TINY, code="a") == config_key(dataclasses.replace(TINY), code="a")
    assert config_key(TINY, code="a") != config_key(dataclasses.replace(TINY, seed=1), code="a")
    assert config_key(TINY, code="a") != config_key(dataclasses.replace(TINY, lr=0.050001), code="a")
    assert config_key(TINY, code="a") != config_key(TINY, code="b"), "the code version is part of the key"
    assert len(config_key(TINY, code="a")) == 16
    assert config_key({"b": 1, "a": 2}, code="") == config_key({"a": 2, "b": 1}, code=""), "dicts by sorted keys"
    assert config_key({"a": 1}, code="") != config_key({"a": 1.0}, code=""), "an int is not a float"
    with pytest.raises(TypeError):
        config_key(TINY)  # the code that computes an entry is always named


def test_canonical_names_dataclasses_by_type_and_floats_by_repr():
    c = canonical(TINY)
    assert c["__type__"] == "TrainConfig" and c["lr"] == "0.05" and c["seed"] == 0 and c["teacher"] is None
    student = dataclasses.replace(TINY, method="distilled", teacher=TINY)
    assert canonical(student)["teacher"] == c, "a nested config is canonical too"
    assert canonical({"x": (1, 2.5), "a": [0.1]}) == {"a": ["0.1"], "x": [1, "2.5"]}
    json.dumps(canonical(student))


def test_from_canonical_rebuilds_the_config_that_canonical_wrote():
    student = dataclasses.replace(TINY, method="distilled", teacher=TINY, T=4.0, targets="flatten", confidence=0.25)
    stored = json.loads(json.dumps(canonical(student)))  # as config.json holds it
    assert from_canonical(stored, [TrainConfig]) == student
    assert from_canonical({"x": [1, "a"]}, []) == {"x": [1, "a"]}, "what names no type stays as it is"
    with pytest.raises(
        ValueError, match=r"^types must include the class 'TrainConfig' of the stored config \(got \[\]\)"
    ):
        from_canonical(stored, [])
    with pytest.raises(TypeError, match="gone"):
        from_canonical({**stored, "gone": 1}, [TrainConfig])  # a field this version of the code does not have


def _module(tmp_path: Path, name: str, source: str) -> types.ModuleType:
    path = tmp_path / f"{name}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    module = types.ModuleType(name)
    module.__file__ = str(path)
    return module


def test_source_digest_follows_the_code_and_not_the_order(tmp_path):
    a, b = _module(tmp_path, "a", "x = 1\n"), _module(tmp_path, "b", "y = 2\n")
    digest = source_digest([a, b])
    assert len(digest) == 12 and digest == source_digest([b, a])
    assert source_digest([a]) != digest
    commented = _module(tmp_path / "elsewhere", "a", "x = 1  # a comment\n\n")
    assert source_digest([commented, b]) == digest, "a comment is prose: no new key"
    changed = _module(tmp_path / "changed", "a", "x = 2\n")
    assert source_digest([changed, b]) != digest, "a changed operation is a new key"
    renamed = _module(tmp_path, "c", "x = 1\n")
    assert source_digest([renamed, b]) != digest, "the module's name counts, not only its code"


def test_source_digest_is_the_code_a_process_read_first(tmp_path):
    a = _module(tmp_path, "a", "x = 1\n")
    digest = source_digest([a])
    Path(a.__file__).write_text("x = 2\n")  # edited while the process runs: its results keep one key
    assert source_digest([a]) == digest


def test_default_store_follows_advlogits_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVLOGITS_HOME", str(tmp_path / "h"))
    assert Store().root == tmp_path / "h" == home()
    monkeypatch.delenv("ADVLOGITS_HOME")
    assert store_module.home() == Path.home() / ".cache" / "advlogits"
    assert Store().root == Path.home() / ".cache" / "advlogits"


def test_unwritable_home_names_the_variable(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("ADVLOGITS_HOME", str(blocker / "store"))
    compute = Counter({"a": 1})
    with pytest.raises(StoreError, match="not writable.*Set ADVLOGITS_HOME"):
        Store().get_or_compute_json(KEY, "x", {}, compute, code="")
    with pytest.raises(StoreError, match="not writable.*Set ADVLOGITS_HOME"):
        Store().writable_entry(KEY)
    assert compute.calls == 0, "nothing is computed that could not be stored"


# --------------------------------------------------------------------------------------------------------------
# entries and locks


def test_entries_and_locks_live_apart(tmp_path):
    s = Store(tmp_path)
    assert s.entry(KEY) == tmp_path / "entries" / KEY and not s.entry(KEY).exists()
    assert s.writable_entry(KEY) == s.entry(KEY) and s.entry(KEY).is_dir()
    assert list(s.entry(KEY).iterdir()) == [], "the write probe leaves nothing behind"
    lock = s.lock(KEY)
    assert Path(lock.lock_file) == tmp_path / "locks" / f"{KEY}.lock"
    with lock:
        with s.lock(KEY):  # re-entrant within a process: a result computed under the lock may ask for the entry
            assert s.lock(KEY).is_locked
    assert not s.lock(KEY).is_locked
    s.remove(KEY)
    assert not s.entry(KEY).exists() and (tmp_path / "locks" / f"{KEY}.lock").exists(), "removing keeps the lock"


def test_the_lock_excludes_another_process(tmp_path):
    s = Store(tmp_path)
    probe = textwrap.dedent(f"""
        from filelock import FileLock, Timeout
        try:
            FileLock({str(tmp_path / "locks" / f"{KEY}.lock")!r}, timeout=0).acquire()
        except Timeout:
            print("held")
        else:
            print("free")
    """)

    def other_process_sees() -> str:
        return subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
        ).stdout.strip()

    with s.lock(KEY):
        assert other_process_sees() == "held"
    assert other_process_sees() == "free"


def test_two_results_of_one_entry_compute_side_by_side(tmp_path):
    """Each result has its own lock: while another process computes one result of an entry (and holds that
    result's lock), this one computes another result of the same entry at once, and the weights' lock stays free."""
    s = Store(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import sys
                from advlogits.store import Store

                def compute():
                    print("computing", flush=True)
                    sys.stdin.read()  # until the test closes stdin
                    return {{"acc": 0.5}}

                Store({str(tmp_path)!r}).get_or_compute_json({KEY!r}, "evaluation", {{}}, compute, code="")
            """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "computing"
        logits: list[dict] = []
        worker = threading.Thread(
            target=lambda: logits.append(s.get_or_compute_json(KEY, "logits", {}, lambda: {"z": 1}, code="")),
            daemon=True,  # with one lock per entry it would block until the other process ends
        )
        worker.start()
        worker.join(timeout=60)
        assert logits == [{"z": 1}], "the other result waited for the evaluation's lock"
        evaluation = s.result_path(KEY, "evaluation", {}, ".json", code="").name
        assert s.lock(KEY, evaluation).is_locked is False  # this process does not hold it ...
        with pytest.raises(filelock.Timeout):  # ... the other process does
            filelock.FileLock(str(tmp_path / "locks" / f"{KEY}.{evaluation}.lock")).acquire(timeout=0.2)
        filelock.FileLock(str(tmp_path / "locks" / f"{KEY}.lock")).acquire(timeout=0.2)  # the weights' lock is free
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert holder.returncode == 0
    assert s.get_or_compute_json(KEY, "evaluation", {}, Counter({"acc": 0.9}), code="") == {"acc": 0.5}


# --------------------------------------------------------------------------------------------------------------
# weights


def test_weights_are_computed_once_then_loaded(tmp_path):
    s = Store(tmp_path)
    compute = Counter(lambda: (_state(0), HISTORY))
    assert not s.has_weights(KEY)
    state, history, computed = s.get_or_compute_weights(KEY, config=TINY, compute=compute)
    assert computed and compute.calls == 1 and compute.args == (s.entry(KEY) / "checkpoint.pt",)
    assert s.has_weights(KEY) and history == HISTORY
    again, history2, computed2 = s.get_or_compute_weights(KEY, config=TINY, compute=compute)
    assert not computed2 and compute.calls == 1, "stored weights are loaded, not computed again"
    assert history2 == HISTORY and again.keys() == state.keys()
    assert all(torch.equal(again[k], state[k]) for k in state)
    assert json.loads(read_checked(s.entry(KEY) / "config.json")) == canonical(TINY) == s.config_of(KEY)
    log = [json.loads(line) for line in (s.entry(KEY) / "training.log").read_text().splitlines()]
    assert len(log) == 1 and log[0]["resumed"] is False
    other = config_key(TINY, code="code-b")
    s.get_or_compute_weights(other, config=TINY, compute=compute)
    assert compute.calls == 2, "another key is another entry"


def test_a_computation_resumes_from_its_checkpoint_and_cleans_up(tmp_path):
    """The compute function gets the entry's checkpoint path; one left by a killed run is there to resume from,
    temporary files of killed writers are removed first, and the checkpoint is deleted once weights are stored."""
    s = Store(tmp_path)
    folder = s.writable_entry(KEY)
    (folder / "checkpoint.pt").write_bytes(b"progress")
    (folder / ".model.pt.abc.tmp").write_bytes(b"torn")
    (folder / "results").mkdir()
    (folder / "results" / ".metrics.json.x.tmp").write_bytes(b"torn")
    seen = []

    def compute(checkpoint: Path):
        seen.append((checkpoint.read_bytes(), sorted(p.name for p in folder.rglob(".*.tmp"))))
        return _state(1), HISTORY

    s.get_or_compute_weights(KEY, config=TINY, compute=compute)
    assert seen == [(b"progress", [])]
    assert not (folder / "checkpoint.pt").exists()
    log = [json.loads(line) for line in (folder / "training.log").read_text().splitlines()]
    assert [line["resumed"] for line in log] == [True]


def test_a_failed_computation_stores_nothing(tmp_path):
    s = Store(tmp_path)

    def compute(checkpoint: Path):
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        s.get_or_compute_weights(KEY, config=TINY, compute=compute)
    assert not s.has_weights(KEY)
    assert not s.lock(KEY).is_locked, "the lock is released"
    ok = Counter(lambda: (_state(2), HISTORY))
    assert s.get_or_compute_weights(KEY, config=TINY, compute=ok)[2] and ok.calls == 1


def test_a_failed_computation_leaves_no_entry(tmp_path):
    """The store's promise (module docstring): locks live apart, so a run that fails before writing anything
    leaves no entry behind, and `Store.keys` does not list a key that holds nothing."""
    s = Store(tmp_path)

    def compute(checkpoint: Path):
        raise ValueError("n must be at most the size of the split")

    with pytest.raises(ValueError):
        s.get_or_compute_weights(KEY, config=TINY, compute=compute)
    assert s.keys() == []
    assert not (tmp_path / "entries").exists()


def test_stored_weights_are_read_safely(tmp_path):
    s = Store(tmp_path)
    with pytest.raises(
        StoreError, match=r"no stored weights in .*; compute them first \(advlogits\.pipeline\.get_model\)"
    ):
        s.load_weights(KEY)
    s.save_weights(KEY, state=_state(0), config=TINY, history=HISTORY)
    marker = tmp_path / "pwned"
    write_checked(s.entry(KEY) / "model.pt", code_running_bytes(marker, "zip", wrap=lambda e: {"w": e}))
    with pytest.raises(StoreError, match=r"refusing to load .*model\.pt: .*Delete it to recompute it"):
        s.load_weights(KEY)
    assert not marker.exists()
    (s.entry(KEY) / "history.json").write_bytes(b"{}")  # corrupt: disagrees with its record
    with pytest.raises(StoreError, match=r"corrupt.*Run `advlogits store repair`"):
        s.load_weights(KEY)


# --------------------------------------------------------------------------------------------------------------
# results


def test_results_are_computed_once(tmp_path):
    s = Store(tmp_path)
    compute = Counter({"value": 3})
    assert s.get_or_compute_json(KEY, "metric", {"k": 1}, compute, code="c") == {"value": 3}
    assert s.get_or_compute_json(KEY, "metric", {"k": 1}, compute, code="c") == {"value": 3}
    assert compute.calls == 1
    assert s.has_result(KEY, "metric", {"k": 1}, ".json", code="c")
    s.get_or_compute_json(KEY, "metric", {"k": 2}, compute, code="c")
    assert compute.calls == 2, "other parameters are another result"
    s.get_or_compute_json(KEY, "metric", {"k": 1}, compute, code="d")
    assert compute.calls == 3, "other code is another result"
    tensors = Counter(lambda: {"z": torch.arange(6.0).reshape(2, 3)})
    first = s.get_or_compute_tensors(KEY, "logits", {}, tensors, code="c")
    again = s.get_or_compute_tensors(KEY, "logits", {}, tensors, code="c")
    assert tensors.calls == 1 and torch.equal(first["z"], again["z"])
    assert s.config_of(KEY) is None, "an entry of results only has no config"


def test_results_are_keyed_by_name_parameters_and_code(tmp_path):
    s = Store(tmp_path)
    a = s.result_path(KEY, "r", {}, ".json", code="one")
    b = s.result_path(KEY, "r", {}, ".json", code="two")
    assert a != b and a.parent == b.parent == s.entry(KEY) / "results"
    assert a.name.startswith("r-") and a.suffix == ".json"
    assert s.result_path(KEY, "r", {"n": 1}, ".json", code="one") != a
    assert s.result_path(KEY, "r", {}, ".pt", code="one") == a.with_suffix(".pt")
    assert not s.has_result(KEY, "r", {}, ".json", code="one")


def test_a_corrupt_result_is_refused_not_recomputed_silently(tmp_path):
    s = Store(tmp_path)
    compute = Counter({"acc": 0.9})
    s.get_or_compute_json(KEY, "m", {}, compute, code="")
    path = s.result_path(KEY, "m", {}, ".json", code="")
    path.write_bytes(path.read_bytes().replace(b"0.9", b"1.0"))
    with pytest.raises(StoreError, match="corrupt"):
        s.get_or_compute_json(KEY, "m", {}, compute, code="")
    record_path(path).unlink()  # an incomplete write is recomputed
    assert s.get_or_compute_json(KEY, "m", {}, compute, code="") == {"acc": 0.9} and compute.calls == 2


# --------------------------------------------------------------------------------------------------------------
# housekeeping


def test_keys_files_verify_stale_files_and_remove(tmp_path):
    s = Store(tmp_path)
    assert s.keys() == [] and s.verify() == {} and s.stale_files() == []
    other = config_key(TINY, code="code-b")
    s.save_weights(KEY, state=_state(0), config=TINY, history=HISTORY)
    s.get_or_compute_json(other, "m", {}, Counter({"a": 1}), code="")
    assert s.keys() == sorted([KEY, other])
    assert [p.name for p in s.files(KEY)] == ["config.json", "history.json", "model.pt"]
    assert len(list(s.files(other))) == 1
    checked = s.verify()
    assert len(checked) == 4 and set(checked.values()) == {"ok"}
    result = s.result_path(other, "m", {}, ".json", code="").name
    free = tmp_path / "locks" / f"{other}.{result}.lock"
    assert Path(s.lock(other, result).lock_file) == free
    assert s.stale_files() == [free], "the lock of a result no process computes is stale"

    (s.entry(KEY) / "history.json").write_bytes(b'{"epoch": [2], "train_loss": [0.5]}')
    assert s.verify()[s.entry(KEY) / "history.json"] == "corrupt"
    torn = s.entry(KEY) / ".model.pt.123.tmp"
    torn.write_bytes(b"x")
    never_completed = s.entry(other) / "results" / "half.json"
    never_completed.write_bytes(b"{")
    (s.entry(KEY) / "training.log").write_text("{}\n")
    (s.entry(KEY) / "checkpoint.pt").write_bytes(b"progress")
    with s.lock(KEY):
        stale = s.stale_files()
    assert sorted(stale) == sorted([torn, never_completed, free]), (
        "torn and never-completed files and unheld locks; not the log, the checkpoint or a held lock"
    )
    s.remove(KEY)
    assert s.keys() == [other] and not s.has_weights(KEY)
    s.remove(KEY)  # removing what is gone is fine
