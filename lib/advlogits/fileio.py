"""Files that are never half-written and never run code: atomic writes, checksummed files, safe tensor loads.

* `atomic_write_bytes` writes through a temporary file, fsync and a rename: readers see the old file or the whole
  new one.
* `write_checked` / `read_checked` add a checksum record beside a file; a file whose record is missing was never
  completed (it reads as absent), one that disagrees with its record is refused.
* Tensors are always read with ``torch.load(..., weights_only=True)``: a checkpoint cannot run code.
* `process_folder` makes a temporary folder named after the process that owns it, so that when that process is
  killed before it can remove the folder, `remove_process_folders` finds and removes it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

REPAIR = "advlogits store repair"  # the command that moves corrupt stored files aside, to be recomputed


class StoreError(RuntimeError):
    """A stored file cannot be used (unwritable folder, corrupt or unsafe file); the message says what to do."""


def repair_hint(path: Path) -> str:
    """What fixes a corrupt stored file: the one command that moves it aside, so that it is recomputed."""
    return f"Run `{REPAIR}`: it moves {path.name} aside (with the rest of its model), and what needs it recomputes it."


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def process_folder(prefix: str, *, parent: str | Path | None = None) -> tempfile.TemporaryDirectory:
    """A temporary folder ``<prefix><this process's id>-<random>`` in ``parent`` (default: the temporary folder),
    removed when its context ends: a context manager, as `tempfile.TemporaryDirectory`."""
    return tempfile.TemporaryDirectory(prefix=f"{prefix}{os.getpid()}-", dir=parent)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_process_folders(prefix: str, *, parent: str | Path | None = None, only_dead: bool) -> list[Path]:
    """Remove the `process_folder` folders of ``prefix`` in ``parent`` (default: the temporary folder), with
    ``only_dead`` only those whose process no longer exists (one killed before it could remove its folder); return
    what was removed."""
    removed = []
    for folder in Path(parent if parent is not None else tempfile.gettempdir()).glob(f"{prefix}*"):
        pid = folder.name[len(prefix) :].split("-", 1)[0]
        if only_dead and (not pid.isdigit() or _alive(int(pid))):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


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


def tensor_bytes(obj: Any) -> bytes:
    """``torch.save`` of ``obj`` into bytes."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through a temporary file and a rename (training checkpoints)."""
    atomic_write_bytes(tensor_bytes(obj), path)


def safe_torch_load(source: str | Path | bytes, *, name: str | Path | None = None) -> Any:
    """Load tensors and containers with ``weights_only=True`` from a path or bytes; anything else is refused.

    ``name`` labels bytes in the error message (default: the path).
    """
    label = name if name is not None else (source if not isinstance(source, bytes) else "stored bytes")
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else Path(source)
        return torch.load(handle, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle.UnpicklingError, RuntimeError (truncated zip), EOFError, ...
        first = str(err).splitlines()[0] if str(err) else ""
        raise StoreError(
            f"refusing to load {label}: it is not a plain tensor checkpoint or it is corrupt ({type(err).__name__}: "
            f"{first}). Delete it to recompute it; never load a checkpoint you do not trust with "
            f"weights_only=False."
        ) from err


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record_path(path: Path) -> Path:
    """The checksum record of ``path``: ``<name>.sha256`` beside it."""
    return path.with_name(path.name + ".sha256")


def write_checked(path: Path, data: bytes) -> None:
    """Atomically write ``data`` then its checksum record; the record's presence marks the file complete."""
    record = record_path(path)
    record.unlink(missing_ok=True)
    atomic_write_bytes(data, path)
    atomic_write_bytes(json.dumps({"sha256": _sha256(data), "size": len(data)}).encode(), record)


def read_checked(path: Path) -> bytes | None:
    """The bytes of a complete file, None if it was never completed; StoreError if it is corrupt."""
    record = record_path(path)
    if not record.exists() or not path.exists():
        return None
    try:
        expected = json.loads(record.read_text())
        data = path.read_bytes()
    except (OSError, ValueError) as err:
        raise StoreError(f"cannot read {path} ({err}). {repair_hint(path)}") from err
    if len(data) != expected.get("size") or _sha256(data) != expected.get("sha256"):
        raise StoreError(
            f"stored file {path} is corrupt (size or checksum differs from its record). {repair_hint(path)}"
        )
    return data


def verify_checked(path: Path) -> str:
    """``"ok"``, ``"incomplete"`` (no record) or ``"corrupt"`` for one checked file, reading it whole."""
    try:
        return "ok" if read_checked(path) is not None else "incomplete"
    except StoreError:
        return "corrupt"


def load_state_dict_checked(model: nn.Module, state: Any, *, source: str | Path, assign: bool = False) -> None:
    """Load ``state`` into ``model``, refusing missing, unexpected or mis-shaped keys and naming them.

    ``assign=True`` makes the state's tensors the model's own instead of copying them (a model built on the meta
    device has no memory to copy into); a tensor whose layout or dtype differs from the model's is first copied into
    the model's, so that the model ends as a copy would leave it."""
    if not isinstance(state, dict):
        raise StoreError(f"{source} does not hold a state dict (got {type(state).__name__}).")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    shapes = sorted(
        k
        for k in set(expected) & set(state)
        if not isinstance(state[k], torch.Tensor) or state[k].shape != expected[k].shape
    )
    if missing or extra or shapes:
        parts = [
            f"{label}: {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}"
            for label, keys in (("missing keys", missing), ("unexpected keys", extra), ("mis-shaped keys", shapes))
            if keys
        ]
        raise StoreError(
            f"weights in {source} do not fit {type(model).__name__}: "
            + "; ".join(parts)
            + ". They were saved from another architecture or are corrupt: delete the file to recompute "
            "it, or load it into the model it was saved from."
        )
    if assign:
        state = {k: _in_layout_of(expected[k], v) for k, v in state.items()}
    model.load_state_dict(state, assign=assign)


def _in_layout_of(like: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` itself when it has the strides and dtype of ``like``, else a copy of it that has them."""
    if value.stride() == like.stride() and value.dtype == like.dtype:
        return value
    return torch.empty_strided(like.shape, like.stride(), dtype=like.dtype, device=value.device).copy_(value)
