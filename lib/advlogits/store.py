"""A content-addressed store of trained models and computed results.

An entry is a folder named by the hash of the frozen config that produced it and of the source code that
matters (`code_version`), so a changed config or a changed training/attack code never serves stale results.
Every file is written atomically (temporary file, fsync, rename) and followed by a checksum record; a file
whose record is missing was never completed and is ignored, a file that disagrees with its record is refused.
Weights are always read with ``torch.load(..., weights_only=True)``: a checkpoint cannot run code.

Layout: ``entries/<key>/`` holds ``config.json``, ``history.json``, ``model.pt`` (each with a ``.sha256``
record), ``results/``, ``checkpoint.pt`` while training, and ``training.log`` (one JSON line per completed
training run: pid, time, whether it resumed from a checkpoint). Inter-process locks live apart, in
``locks/<key>.lock``, so a run that fails before writing anything leaves no entry behind and deleting an
entry never deletes a lock another process holds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from filelock import FileLock
from torch import nn

# Modules whose source decides what a trained model contains: their bytes are part of every entry's key.
# A stored result (get_or_compute_*) is keyed, in addition, by the source of the module that computes it, so
# editing an analysis module (theory, students, ...) recomputes its own results and never retrains a model.
# Modules not listed and computing nothing stored (figures, claim files, the profile table, whose values enter
# the keys through the configs) never invalidate anything.
_CORE_MODULES = ("accel.py", "attacks.py", "data.py", "distill.py", "experiments.py", "logits.py", "models.py", "train.py")


class StoreError(RuntimeError):
    """The store cannot be used (unwritable home) or an entry is corrupt; the message says what to do."""


def home() -> Path:
    """The store's root: ``$ADVLOGITS_HOME`` or ``~/.cache/advlogits``."""
    return Path(os.environ.get("ADVLOGITS_HOME") or Path.home() / ".cache" / "advlogits").expanduser()


def code_version(modules: tuple[str, ...] = _CORE_MODULES) -> str:
    """Hash of the sources of ``modules`` (file names in this package); by default those that train models."""
    digest = hashlib.sha256()
    package = Path(__file__).parent
    for name in sorted(modules):
        digest.update(name.encode())
        digest.update((package / name).read_bytes())
    return digest.hexdigest()[:12]


def _source_version(function: Callable) -> str:
    """Hash of the package module that defines ``function`` ('' for code outside the package, e.g. a notebook)."""
    module = sys.modules.get(getattr(function, "__module__", "") or "")
    path = Path(getattr(module, "__file__", "") or "")
    if path.parent != Path(__file__).parent or path.suffix != ".py":
        return ""
    return code_version((path.name,))


def _canonical(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__type__": type(value).__name__,
                **{f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, float):
        return repr(value)
    return value


def config_key(config: Any, *, code: str | None = None) -> str:
    """16 hex digits naming ``config`` (a frozen dataclass or JSON-able dict) under the current code version."""
    payload = json.dumps({"config": _canonical(config), "code": code or code_version()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(data: bytes, path: str | Path) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through a temporary file and a rename (used for training checkpoints)."""
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getvalue(), path)


def safe_torch_load(path: str | Path) -> Any:
    """Load tensors/containers with ``weights_only=True``; a file that is not a plain checkpoint is refused."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle.UnpicklingError, RuntimeError (truncated zip), EOFError, ...
        raise StoreError(
            f"refusing to load {path}: it is not a plain tensor checkpoint or it is corrupt ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}). Delete it to recompute it; never load a checkpoint "
            f"you do not trust with weights_only=False."
        ) from err


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Store:
    """Models and results keyed by config hash under ``root`` (default: `home()`)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else home()

    # -- layout ---------------------------------------------------------------------------------------------------
    def entry(self, config: Any) -> Path:
        """The folder of ``config``'s entry (not created)."""
        return self.root / "entries" / config_key(config)

    def _writable_entry(self, config: Any) -> Path:
        return self._writable(self.entry(config))

    def _writable(self, folder: Path) -> Path:
        """``folder``, created if needed; StoreError naming ADVLOGITS_HOME if it cannot be written."""
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

    def lock(self, config: Any) -> FileLock:
        """An inter-process lock on ``config``'s entry: two processes asking for one model train it once.

        One lock object per path (``is_singleton``), so it is re-entrant within a process: computing a result
        under the lock may itself ask for the model of the same entry. The lock file is ``locks/<key>.lock``,
        outside the entry (see the module docstring).
        """
        return FileLock(str(self._writable(self.root / "locks") / f"{config_key(config)}.lock"), is_singleton=True)

    # -- checked files --------------------------------------------------------------------------------------------
    def write_file(self, path: Path, data: bytes) -> None:
        """Atomically write ``data`` then its checksum record; the record's presence marks the file complete."""
        sum_path = path.with_name(path.name + ".sha256")
        sum_path.unlink(missing_ok=True)
        atomic_write_bytes(data, path)
        atomic_write_bytes(json.dumps({"sha256": _sha256(data), "size": len(data)}).encode(), sum_path)

    def read_file(self, path: Path) -> bytes | None:
        """The bytes of a complete file, None if it was never completed; StoreError if it is corrupt."""
        sum_path = path.with_name(path.name + ".sha256")
        if not sum_path.exists() or not path.exists():
            return None
        try:
            record = json.loads(sum_path.read_text())
            data = path.read_bytes()
        except (OSError, ValueError) as err:
            raise StoreError(f"cannot read {path} ({err}). Delete {path.parent} to recompute it.") from err
        if len(data) != record.get("size") or _sha256(data) != record.get("sha256"):
            raise StoreError(
                f"stored file {path} is corrupt (size or checksum differs from its record). "
                f"Delete the entry folder {path.parent} to recompute it."
            )
        return data

    # -- models ---------------------------------------------------------------------------------------------------
    def save_model(self, config: Any, model: nn.Module, history: dict) -> Path:
        """Store a trained model with its config and training history; returns the entry folder."""
        import io

        folder = self._writable_entry(config)
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
        self.write_file(folder / "config.json", json.dumps(_canonical(config), indent=1).encode())
        self.write_file(folder / "history.json", json.dumps(history).encode())
        self.write_file(folder / "model.pt", buffer.getvalue())
        return folder

    def has_model(self, config: Any) -> bool:
        folder = self.entry(config)
        return (folder / "model.pt.sha256").exists() and (folder / "history.json.sha256").exists()

    def load_model(self, config: Any, *, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
        """The stored (model in eval mode on ``device``, history) of ``config``; StoreError if absent or corrupt."""
        from .data import input_shape
        from .models import build_model

        folder = self.entry(config)
        weights = self.read_file(folder / "model.pt")
        history = self.read_file(folder / "history.json")
        if weights is None or history is None:
            raise StoreError(f"no stored model for this config in {folder}; call get_or_train(config) to train it.")
        import io

        try:
            state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
        except Exception as err:
            raise StoreError(f"refusing to load {folder / 'model.pt'}: {err}. Delete {folder} to retrain.") from err
        model = build_model(config.arch, num_classes=10, in_channels=input_shape(config.dataset)[0])
        load_state_dict_checked(model, state, source=folder / "model.pt")
        return model.to(device).eval(), json.loads(history)

    def get_or_train(self, config: Any, *, device: str | torch.device = "cpu", progress: bool = True
                     ) -> tuple[nn.Module, dict]:
        """The model of ``config`` from the store, or trained now (once, even across processes) and stored."""
        from .experiments import train_from_config

        if self.has_model(config):
            return self.load_model(config, device=device)
        with self.lock(config):
            if self.has_model(config):  # another process finished it while we waited
                return self.load_model(config, device=device)
            folder = self.entry(config)
            checkpoint = folder / "checkpoint.pt"
            # Under the lock no other writer is active in this entry: temporary files are from killed writers.
            for stale in folder.rglob(".*.tmp") if folder.is_dir() else ():
                stale.unlink(missing_ok=True)
            resumed = checkpoint.exists()
            model, history = train_from_config(config, device=device, checkpoint=checkpoint, progress=progress,
                                               store=self)
            self.save_model(config, model, history)
            self._log_training(folder, resumed=resumed)
            checkpoint.unlink(missing_ok=True)
        return model.eval(), history

    @staticmethod
    def _log_training(folder: Path, *, resumed: bool) -> None:
        """Append one JSON line to the entry's ``training.log``: which process trained it, when, and whether it
        resumed from a checkpoint (so one can see that concurrent runs trained a model once)."""
        line = json.dumps({"pid": os.getpid(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "resumed": resumed})
        with open(folder / "training.log", "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    # -- results --------------------------------------------------------------------------------------------------
    def result_path(self, config: Any, name: str, params: dict, suffix: str, compute: Callable | None = None
                    ) -> Path:
        """Where a result of ``config`` lives: keyed by ``params`` and the source of ``compute``'s module."""
        code = _source_version(compute) if compute is not None else ""
        return self.entry(config) / "results" / f"{name}-{config_key(params, code=code)}{suffix}"

    def get_or_compute_json(self, config: Any, name: str, params: dict, compute: Callable[[], dict]) -> dict:
        """A JSON result of ``config`` (e.g. metrics), keyed by ``name`` and ``params``; computed once and stored."""
        path = self.result_path(config, name, params, ".json", compute)
        data = self.read_file(path)
        if data is not None:
            return json.loads(data)
        with self.lock(config):
            data = self.read_file(path)
            if data is not None:
                return json.loads(data)
            result = compute()
            self.write_file(path, json.dumps(result, indent=1).encode())
        return result

    def get_or_compute_tensors(self, config: Any, name: str, params: dict,
                               compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Tensors derived from ``config`` (e.g. teacher logits on the training set); computed once and stored."""
        import io

        path = self.result_path(config, name, params, ".pt", compute)
        data = self.read_file(path)
        if data is None:
            with self.lock(config):
                data = self.read_file(path)
                if data is None:
                    result = {k: v.detach().cpu() for k, v in compute().items()}
                    buffer = io.BytesIO()
                    torch.save(result, buffer)
                    self.write_file(path, buffer.getvalue())
                    return result
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)

    def remove(self, config: Any) -> None:
        """Delete ``config``'s entry (model and results), e.g. after a corruption error."""
        shutil.rmtree(self.entry(config), ignore_errors=True)


def load_state_dict_checked(model: nn.Module, state: dict, *, source: str | Path) -> None:
    """Load ``state`` into ``model``, refusing missing, unexpected or mis-shaped keys and naming them."""
    if not isinstance(state, dict):
        raise StoreError(f"{source} does not hold a state dict (got {type(state).__name__}).")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    shapes = sorted(k for k in set(expected) & set(state)
                    if not isinstance(state[k], torch.Tensor) or state[k].shape != expected[k].shape)
    if missing or extra or shapes:
        parts = [f"{label}: {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}"
                 for label, keys in (("missing keys", missing), ("unexpected keys", extra),
                                     ("mis-shaped keys", shapes)) if keys]
        raise StoreError(f"weights in {source} do not fit {type(model).__name__}: " + "; ".join(parts)
                         + ". They were saved from another architecture or are corrupt: delete the file to recompute "
                           "it, or load it into the model it was saved from.")
    model.load_state_dict(state)


def get_or_train(config: Any, *, device: str | torch.device = "cpu", progress: bool = True) -> tuple[nn.Module, dict]:
    """`Store.get_or_train` on the default store (``$ADVLOGITS_HOME``)."""
    return Store().get_or_train(config, device=device, progress=progress)
