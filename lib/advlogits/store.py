"""A content-addressed store of computed things: model weights with their history, and results.

The store is generic: it knows keys, checked files, locks and "get or compute", nothing of training. A caller
(`advlogits.pipeline`) names an entry by `config_key` of a config and a digest of the source code that
produced it (`source_digest`), so a changed config or changed code never serves a stale result, and passes the
function that computes a missing one.

Every file is written atomically and followed by a checksum record (`advlogits.fileio`); a file whose record
is missing was never completed and is ignored, a file that disagrees with its record is refused. Weights are
always read with ``weights_only=True``: a stored file cannot run code.

Layout: ``entries/<key>/`` holds ``config.json``, ``history.json``, ``model.pt`` (each with a ``.sha256``
record), ``results/``, ``checkpoint.pt`` while a model is being computed, ``training.log`` (one JSON line per
completed training: pid, time, whether it resumed from a checkpoint) and ``compute.log`` (one line per computed
result: pid, time, its name and seconds). Inter-process locks live apart, one per model in
``locks/<key>.lock`` and one per result in ``locks/<key>.<result file>.lock``, so a run that fails before writing
anything leaves no entry behind and deleting an entry never deletes a lock another process holds.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
import typing
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from filelock import FileLock
from torch import Tensor

from .codekey import code_text
from .fileio import (
    REPAIR,
    StoreError,
    read_checked,
    record_path,
    safe_torch_load,
    tensor_bytes,
    verify_checked,
    write_checked,
)
from .paths import HOME, check_folder, resolve_path, setting

__all__ = ["LOG_FILES", "Store", "StoreError", "config_key", "from_canonical", "home", "source_digest"]

MODEL_FILES = ("config.json", "history.json", "model.pt")
LOG_FILES = ("training.log", "compute.log")  # an entry's logs: lines appended, no checksum record
CORRUPT = "corrupt"  # the folder under the store's root where corrupt files are moved aside


def home() -> Path:
    """The store's root: ``$ADVLOGITS_HOME`` or ``~/.cache/advlogits``, absolute (`advlogits.paths`); a setting
    naming a file is refused with a SettingError naming ADVLOGITS_HOME."""
    root = setting(HOME, Path.home() / ".cache" / "advlogits")
    assert root is not None
    return check_folder(HOME, root)


def source_digest(modules: Iterable[ModuleType]) -> str:
    """12 hex digits of what the source files of ``modules`` compute (by module name, order-independent).

    Only the code enters (`advlogits.codekey.code_text`): comments, docstrings, error messages and log lines do
    not, so editing prose never retrains a model. Each file is read once per process, so a process keeps one
    digest (that of the code it imported, near enough) even if the files are edited while it runs; and each set of
    modules is hashed once per process (a plan asks for the same digests about a thousand times)."""
    return _digest_of(tuple(sorted((module.__name__, module.__file__) for module in modules)))


@functools.cache
def _digest_of(named_files: tuple[tuple[str, str], ...]) -> str:
    digest = hashlib.sha256()
    for name, file in named_files:
        digest.update(name.encode())
        digest.update(_code_of(file))
    return digest.hexdigest()[:12]


@functools.cache
def _code_of(file: str) -> bytes:
    return code_text(Path(file).read_bytes(), filename=file).encode()


def canonical(value: Any) -> Any:
    """A JSON-able form of a config (frozen dataclasses by type and fields, floats by repr) for hashing."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            "__type__": type(value).__name__,
            **{f.name: canonical(getattr(value, f.name)) for f in dataclasses.fields(value)},
        }
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, float):
        return repr(value)
    return value


def _holds_float(hint: Any) -> bool:
    """Whether a field's type hint admits a float (``float``, ``float | None``)."""
    return hint is float or float in typing.get_args(hint)


def from_canonical(value: Any, types: Iterable[type]) -> Any:
    """The config `canonical` wrote, rebuilt: each ``{"__type__": name, ...}`` becomes the frozen dataclass of
    ``types`` with that name, its float fields read back from their repr; lists and other values stay as they are.

    ValueError naming the type when ``types`` has none of that name; TypeError when the fields do not fit the
    class (a config written by another version of the code)."""
    by_name = {t.__name__: t for t in types}
    if isinstance(value, list):
        return [from_canonical(v, by_name.values()) for v in value]
    if not isinstance(value, dict):
        return value
    fields = {k: from_canonical(v, by_name.values()) for k, v in value.items() if k != "__type__"}
    if "__type__" not in value:
        return fields
    cls = by_name.get(value["__type__"])
    if cls is None:
        raise ValueError(
            f"types must include the class {value['__type__']!r} of the stored config (got {sorted(by_name)})"
        )
    hints = typing.get_type_hints(cls)
    return cls(**{k: float(v) if isinstance(v, str) and _holds_float(hints.get(k)) else v for k, v in fields.items()})


def config_key(config: Any, *, code: str) -> str:
    """16 hex digits naming ``config`` (a frozen dataclass or JSON-able dict) computed by the code ``code``."""
    payload = json.dumps({"config": canonical(config), "code": code}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class Store:
    """Entries keyed by `config_key` under ``root`` (default: `home()`)."""

    def __init__(self, root: str | Path | None = None):
        self.root = check_folder("the store's root", resolve_path(root)) if root is not None else home()

    # -- layout ---------------------------------------------------------------------------------------------------
    def entry(self, key: str) -> Path:
        """The folder of entry ``key`` (not created)."""
        return self.root / "entries" / key

    def writable_entry(self, key: str) -> Path:
        """The folder of entry ``key``, created; StoreError naming ADVLOGITS_HOME if it cannot be written."""
        return self._writable(self.entry(key))

    def _writable(self, folder: Path) -> Path:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # A probe file of this process's own: a shared name raced when two processes probed at once.
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-probe-")
            os.close(fd)
            os.unlink(probe)
        except OSError as err:
            raise StoreError(
                f"the store at {self.root} is not writable ({err.strerror}). Set ADVLOGITS_HOME to a writable folder."
            ) from err
        return folder

    def check_writable(self) -> Path:
        """The store's root, created and probed; StoreError naming ADVLOGITS_HOME if it cannot be written (asked
        before a run starts, so that a read-only store is refused before any compute)."""
        return self._writable(self.root)

    def lock(self, key: str, result: str | None = None) -> FileLock:
        """An inter-process lock on the weights of entry ``key``, or on its result file named ``result``: two
        processes asking for one model or one result compute it once, while two results of one model (its
        evaluation and its logits, say) compute side by side.

        One lock object per path (``is_singleton``), so it is re-entrant within a process. The lock file is
        ``locks/<key>.lock`` or ``locks/<key>.<result>.lock``, outside the entry (see the module docstring).
        """
        name = f"{key}.lock" if result is None else f"{key}.{result}.lock"
        return FileLock(str(self._writable(self.root / "locks") / name), is_singleton=True)

    # -- weights --------------------------------------------------------------------------------------------------
    def has_weights(self, key: str) -> bool:
        """True when entry ``key`` holds complete weights and history."""
        folder = self.entry(key)
        return record_path(folder / "model.pt").exists() and record_path(folder / "history.json").exists()

    def save_weights(self, key: str, *, state: dict[str, Tensor], config: Any, history: dict) -> Path:
        """Store weights (a state dict) with the config that produced them and their history; returns the folder."""
        folder = self.writable_entry(key)
        write_checked(folder / "config.json", json.dumps(canonical(config), indent=1).encode())
        write_checked(folder / "history.json", json.dumps(history).encode())
        write_checked(folder / "model.pt", tensor_bytes({k: v.detach().cpu() for k, v in state.items()}))
        return folder

    def load_weights(self, key: str) -> tuple[dict[str, Tensor], dict]:
        """The stored (state dict on the CPU, history) of entry ``key``; StoreError if absent, corrupt or unsafe."""
        folder = self.entry(key)
        weights = read_checked(folder / "model.pt")
        history = read_checked(folder / "history.json")
        if weights is None or history is None:
            raise StoreError(f"no stored weights in {folder}; compute them first (advlogits.pipeline.get_model).")
        return safe_torch_load(weights, name=folder / "model.pt"), json.loads(history)

    def get_or_compute_weights(
        self, key: str, *, config: Any, compute: Callable[[Path], tuple[dict[str, Tensor], dict]]
    ) -> tuple[dict[str, Tensor], dict, bool]:
        """The stored (state, history) of entry ``key``, or ``compute(checkpoint)`` run once and stored.

        Returns ``(state, history, computed)``. The computation runs under the entry's lock, so processes asking
        at once compute it once; ``checkpoint`` is a path in the entry where ``compute`` may save progress and
        resume from after a crash (deleted once the weights are stored).
        """
        if self.has_weights(key):
            return *self.load_weights(key), False
        with self.lock(key):
            if self.has_weights(key):  # another process finished it while we waited
                return *self.load_weights(key), False
            folder = self.entry(key)  # not created here: a computation that fails first leaves no entry behind
            checkpoint = folder / "checkpoint.pt"
            # Under the lock no other writer is active in this entry (a result is computed from stored weights
            # only, so none is while they are missing): temporary files are from killed writers.
            for stale in folder.rglob(".*.tmp") if folder.is_dir() else ():
                stale.unlink(missing_ok=True)
            resumed = checkpoint.exists()
            state, history = compute(checkpoint)
            self.save_weights(key, state=state, config=config, history=history)
            self._log_computation(folder, resumed=resumed)
            checkpoint.unlink(missing_ok=True)
        return state, history, True

    @classmethod
    def _log_computation(cls, folder: Path, *, resumed: bool) -> None:
        """Append one JSON line to the entry's ``training.log``: which process computed it, when, and whether it
        resumed from a checkpoint (so one can see that concurrent runs computed an entry once)."""
        cls._log(folder / "training.log", resumed=resumed)

    @classmethod
    def _log(cls, path: Path, **fields: Any) -> None:
        """Append one JSON line (pid, time and ``fields``) to a log file of an entry, synced to disk."""
        line = json.dumps({"pid": os.getpid(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **fields})
        cls.append_log(path, (line + "\n").encode())

    @staticmethod
    def append_log(path: Path, lines: bytes) -> None:
        """Append whole lines to a log file of an entry (one of `LOG_FILES`), synced to disk: how a log written by a
        process elsewhere (a Ray task's own store) joins this store's."""
        with open(path, "ab") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())

    def compute_seconds(self, name: str, *, keys: Iterable[str] | None = None) -> list[float]:
        """How long each stored result called ``name`` (e.g. "evaluation") took to compute, from the
        ``compute.log`` files of the entries ``keys`` (default: all; results computed by another store and copied
        in have no line)."""
        out = []
        wanted = None if keys is None else set(keys)
        for key in self.keys() if wanted is None else sorted(wanted & set(self.keys())):
            log = self.entry(key) / "compute.log"
            for line in log.read_text().splitlines() if log.exists() else ():
                record = json.loads(line)
                if record.get("name") == name:
                    out.append(float(record["seconds"]))
        return out

    # -- results --------------------------------------------------------------------------------------------------
    def result_path(self, key: str, name: str, params: dict, suffix: str, *, code: str) -> Path:
        """Where result ``name`` of entry ``key`` lives: keyed by ``params`` and the code ``code`` computing it."""
        return self.entry(key) / "results" / f"{name}-{config_key(params, code=code)}{suffix}"

    def has_result(self, key: str, name: str, params: dict, suffix: str, *, code: str) -> bool:
        """True when the result is stored complete."""
        return record_path(self.result_path(key, name, params, suffix, code=code)).exists()

    def _get_or_compute(
        self,
        path: Path,
        key: str,
        compute: Callable[[], Any],
        encode: Callable[[Any], bytes],
        decode: Callable[[bytes], Any],
    ) -> Any:
        data = read_checked(path)
        if data is not None:
            return decode(data)
        with self.lock(key, path.name):
            data = read_checked(path)
            if data is not None:
                return decode(data)
            self._writable(path.parent)
            began = time.perf_counter()
            data = encode(compute())
            write_checked(path, data)
            self._log(
                self.entry(key) / "compute.log",
                name=path.name.rsplit("-", 1)[0],
                seconds=round(time.perf_counter() - began, 3),
            )
        return decode(data)

    def get_or_compute_json(self, key: str, name: str, params: dict, compute: Callable[[], dict], *, code: str) -> dict:
        """A JSON result of entry ``key`` (e.g. metrics), keyed by ``name``, ``params`` and ``code``; computed once."""
        path = self.result_path(key, name, params, ".json", code=code)
        return self._get_or_compute(path, key, compute, lambda r: json.dumps(r, indent=1).encode(), json.loads)

    def get_or_compute_tensors(
        self, key: str, name: str, params: dict, compute: Callable[[], dict[str, Tensor]], *, code: str
    ) -> dict[str, Tensor]:
        """Tensors of entry ``key`` (e.g. logits), keyed by ``name``, ``params`` and ``code``; computed once."""
        path = self.result_path(key, name, params, ".pt", code=code)

        def encode(result: dict[str, Tensor]) -> bytes:
            return tensor_bytes({k: v.detach().cpu() for k, v in result.items()})

        return self._get_or_compute(path, key, compute, encode, lambda data: safe_torch_load(data, name=path))

    # -- housekeeping ---------------------------------------------------------------------------------------------
    def keys(self) -> list[str]:
        """The keys of every entry folder, sorted."""
        folder = self.root / "entries"
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def config_of(self, key: str) -> dict | None:
        """The stored config (JSON form) of entry ``key``; None for an entry of results only."""
        data = read_checked(self.entry(key) / "config.json")
        return None if data is None else json.loads(data)

    def files(self, key: str) -> Iterator[Path]:
        """Every checked file of entry ``key`` (those with a checksum record)."""
        for record in sorted(self.entry(key).rglob("*.sha256")):
            yield record.with_name(record.name[: -len(".sha256")])

    def verify(self) -> dict[Path, str]:
        """Every checked file of the store, read whole: ``"ok"`` or ``"corrupt"`` (files without a record are
        incomplete writes and are listed by `stale_files`)."""
        return {path: verify_checked(path) for key in self.keys() for path in self.files(key)}

    def stale_files(self) -> list[Path]:
        """Temporary files of killed writers, files never completed, and lock files no process holds."""
        out: list[Path] = []
        for key in self.keys():
            folder = self.entry(key)
            out += sorted(folder.rglob(".*.tmp"))
            out += [
                p
                for p in sorted(folder.rglob("*"))
                if p.is_file()
                and not p.name.endswith(".sha256")
                and not p.name.startswith(".")
                and p.name not in (*LOG_FILES, "checkpoint.pt")
                and not record_path(p).exists()
            ]
        locks = self.root / "locks"
        for lock in sorted(locks.glob("*.lock")) if locks.is_dir() else ():
            probe = FileLock(str(lock), timeout=0)
            try:
                probe.acquire()
            except Exception:  # held by a live process: not stale
                continue
            probe.release()
            out.append(lock)
        return out

    def remove(self, key: str) -> None:
        """Delete entry ``key`` (weights and results); removing an entry that is gone is fine. StoreError if the
        entry is still there afterwards (a read-only store): a removal never reports success it did not have."""
        folder = self.entry(key)
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise StoreError(
                f"cannot remove entry {key} ({err.strerror}: {err.filename}); the store at {self.root} is not "
                "writable. Make it writable, or set ADVLOGITS_HOME to a writable folder."
            ) from err
        if folder.exists():
            raise StoreError(f"entry {key} is still in {folder} after removing it; check the store's permissions.")

    # -- corrupt files --------------------------------------------------------------------------------------------
    def corrupt_files(self, paths: Iterable[Path]) -> list[Path]:
        """Those of the checked files ``paths`` whose bytes disagree with their checksum record (read whole)."""
        return [p for p in paths if not p.name.endswith(".sha256") and verify_checked(p) == "corrupt"]

    def move_aside(self, paths: Iterable[Path]) -> list[Path]:
        """Move checked files of the entries (each with its record, the record first, so that a file always reads
        as complete or absent) into ``corrupt/<time>-<pid>/`` under the root, where nothing reads them; returns
        the new places. What moved reads as missing, so a run or a chapter recomputes it."""
        folder = self.root / CORRUPT / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        moved = []
        for path in paths:
            for source in (record_path(path), path):
                if not source.exists():
                    continue
                target = folder / source.relative_to(self.root)
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(source, target)
                except OSError as err:
                    raise StoreError(
                        f"cannot move the corrupt file {source} aside ({err.strerror}); the store at {self.root} "
                        "is not writable. Make it writable and run `" + REPAIR + "` again."
                    ) from err
                if source == path:
                    moved.append(target)
        return moved

    def repair(self) -> list[Path]:
        """Move every corrupt file of the store aside (`move_aside`): a model's config, history and weights
        together, so that the model reads as missing and is trained again. Returns the files moved."""
        moved = []
        for key in self.keys():
            folder = self.entry(key)
            corrupt = self.corrupt_files(self.files(key))
            if any(p.parent == folder and p.name in MODEL_FILES for p in corrupt):
                corrupt = sorted({*corrupt, *(folder / name for name in MODEL_FILES)})
            moved += self.move_aside(corrupt)
        return moved
