"""Argument checks with one message format, used by every module before any compute.

Every refusal is a ``ValueError`` whose message reads ``<name> must be <requirement> (got <value>)``, optionally
followed by ``; <what to do>``. The checks return the value they accepted (converted where that is safe, e.g. a
NumPy integer to ``int``), so a caller can write ``steps = check_int("steps", steps, at_least=1)``. `coerce` turns
the text of an override (a papermill parameter, a command-line ``--set``) into the kind its type hint names.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable
from typing import Any, NoReturn

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor

SEED_MAX = 2**32 - 1  # largest seed: training generators multiply a seed by ~1e6, torch takes seeds below 2**64
RANGE_TOLERANCE = 1e-6  # how far outside [0, 1] an image may stray (float rounding) before it is refused


def message(name: str, requirement: str, got: object, hint: str | None = None) -> str:
    """The one message format: ``<name> must be <requirement> (got <got>)[; <hint>]``."""
    text = f"{name} must be {requirement} (got {got})"
    return f"{text}; {hint}" if hint else text


def fail(name: str, requirement: str, value: object, *, hint: str | None = None, shown: str | None = None) -> NoReturn:
    """Raise the ``ValueError`` for ``name``; ``shown`` replaces ``repr(value)`` (e.g. a tensor's shape)."""
    raise ValueError(message(name, requirement, repr(value) if shown is None else shown, hint))


def describe(value: object) -> str:
    """A short description of a value for messages: a tensor's dtype and shape, otherwise its repr."""
    if isinstance(value, Tensor):
        return f"{value.dtype} tensor of shape {tuple(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return repr(value)


# ------------------------------------------------------------------------------------------------------------
# scalars


def check_choice(name: str, value: Any, allowed: Iterable[Any], *, hint: str | None = None) -> Any:
    """``value`` if it is one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        fail(name, f"one of {', '.join(repr(a) for a in allowed)}", value, hint=hint)
    return value


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is True or False (not 0, 1 or a string)."""
    if not isinstance(value, bool):
        fail(name, "True or False", value)
    return value


def is_int(value: object) -> bool:
    """True for Python and NumPy integers, False for bools."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(
    name: str, value: Any, *, at_least: int | None = None, at_most: int | None = None, hint: str | None = None
) -> int:
    """``value`` as an ``int`` if it is an integer within the bounds given."""
    if not is_int(value) or (at_least is not None and value < at_least) or (at_most is not None and value > at_most):
        fail(name, "an integer" + _bounds(at_least=at_least, at_most=at_most), value, hint=hint)
    return int(value)


def check_number(
    name: str,
    value: Any,
    *,
    above: float | None = None,
    at_least: float | None = None,
    below: float | None = None,
    at_most: float | None = None,
    hint: str | None = None,
) -> float:
    """``value`` as a ``float`` if it is a finite real number (not a bool) within the bounds given."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    try:
        ok = ok and math.isfinite(value)
    except OverflowError:  # an integer too large for a float is not a finite float
        ok = False
    if ok:
        v = float(value)
        ok = (
            (above is None or v > above)
            and (at_least is None or v >= at_least)
            and (below is None or v < below)
            and (at_most is None or v <= at_most)
        )
    if not ok:
        fail(
            name,
            "a finite number" + _bounds(above=above, at_least=at_least, below=below, at_most=at_most),
            value,
            hint=hint,
        )
    return float(value)


def check_seed(name: str, value: Any) -> int:
    """``value`` if it is an integer seed in [0, `SEED_MAX`]."""
    return check_int(name, value, at_least=0, at_most=SEED_MAX)


def _bounds(**bounds: float | None) -> str:
    words = {"above": ">", "at_least": ">=", "below": "<", "at_most": "<="}
    parts = [
        f"{words[k]} {v:g}" if isinstance(v, float) else f"{words[k]} {v}" for k, v in bounds.items() if v is not None
    ]
    return (" " + " and ".join(parts)) if parts else ""


def coerce(name: str, value: Any, hint: Any) -> Any:
    """``value`` as the kind the type ``hint`` names (a tuple, a bool, an int, a float or a string), converted from
    a string where needed (a papermill parameter, a command-line override; a tuple from "0.05, 0.1"); ``None``
    where the hint allows it. Anything else is refused naming ``name``."""
    text = str(hint)
    if value is None and "None" in text:
        return None
    if "tuple" in text:
        items = value if isinstance(value, (list, tuple)) else [v for v in re.split(r"[,\s]+", str(value)) if v]
        inner = float if "float" in text else int
        return tuple(coerce(name, v, inner) for v in items)
    if "bool" in text:
        words = {"true": True, "1": True, "false": False, "0": False}
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in words:
            return words[value.strip().lower()]
        fail(name, "True or False", value)
    kind = int if "int" in text else float if "float" in text else str
    if kind is str:
        if not isinstance(value, str):
            fail(name, "a string", value)
        return value
    if isinstance(value, bool):
        fail(name, "a number", value)
    try:
        number = float(value) if isinstance(value, str) else value
    except ValueError:
        fail(name, "a number", value)
    if not isinstance(number, (int, float)):
        fail(name, "a number", value)
    if kind is int:
        if not math.isfinite(float(number)) or float(number) != int(number):
            fail(name, "an integer", value)
        return int(number)
    return float(number)


# ------------------------------------------------------------------------------------------------------------
# tensors


def check_images(x: Any, name: str = "x") -> Tensor:
    """``x`` if it is a float tensor (N, ...) with values in [0, 1] (pixel units; normalisation is in the model)."""
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() < 2:
        fail(
            name,
            "a floating-point tensor of shape (N, C, H, W)",
            x,
            shown=describe(x) if isinstance(x, Tensor) else type(x).__name__,
        )
    if x.numel() > 0:
        lo, hi = x.min().item(), x.max().item()
        if not (lo >= -RANGE_TOLERANCE and hi <= 1 + RANGE_TOLERANCE):  # also catches NaN
            fail(
                name,
                "in [0, 1]",
                x,
                shown=f"min {lo:.4g}, max {hi:.4g}",
                hint="pass raw pixel values and put any normalisation inside the model",
            )
    return x


def check_labels(y: Any, n: int, k: int | None = None, name: str = "y") -> Tensor:
    """``y`` if it is an integer tensor of ``n`` class indices (in [0, k) when ``k`` is given)."""
    if not isinstance(y, Tensor):
        fail(name, f"a tensor of {n} class indices", y, shown=type(y).__name__)
    if y.ndim != 1 or y.shape[0] != n:
        fail(name, f"of shape ({n},), one class index per sample", y, shown=describe(y))
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        fail(name, "an integer tensor of class indices", y, shown=describe(y), hint="cast it with .long()")
    if k is not None and n and (int(y.min()) < 0 or int(y.max()) >= k):
        fail(name, f"class indices in [0, {k})", y, shown=f"values in [{int(y.min())}, {int(y.max())}]")
    return y


def check_batch(x: Any, y: Any) -> None:
    """Images ``x`` (N, ...) in [0, 1] and their labels ``y``: an integer (N,) tensor on x's device."""
    check_images(x)
    if not isinstance(y, Tensor) or y.dim() != 1 or y.is_floating_point() or y.is_complex():
        fail("y", "an integer tensor of shape (N,) holding class indices", y, shown=describe(y))
    if y.device != x.device:
        fail("y", f"on x's device ({x.device})", y, shown=str(y.device), hint="move both with .to(device)")
    if y.shape[0] != x.shape[0]:
        fail("y", f"one label per row of x ({x.shape[0]} samples)", y, shown=f"{y.shape[0]} labels")


def check_logits(logits: Any, name: str = "logits") -> Tensor:
    """``logits`` if it is a finite float tensor of shape (N, K) with N >= 1 and K >= 2."""
    if not isinstance(logits, Tensor):
        fail(name, "a tensor of shape (N, K)", logits, shown=type(logits).__name__)
    if logits.ndim != 2 or logits.shape[0] < 1 or logits.shape[1] < 2:
        fail(name, "of shape (N, K) with N >= 1 samples and K >= 2 classes", logits, shown=describe(logits))
    if not logits.is_floating_point():
        fail(name, "a floating-point tensor", logits, shown=describe(logits), hint="cast it with .float()")
    if not bool(torch.isfinite(logits).all()):
        fail(name, "finite", logits, shown="NaN or infinite values")
    return logits


def check_vector(values: ArrayLike | Tensor, name: str, *, min_len: int = 1) -> NDArray[np.float64]:
    """``values`` as a 1-D float64 NumPy array of at least ``min_len`` values (one per sample)."""
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        fail(name, "1-D (one value per sample)", values, shown=f"shape {arr.shape}")
    if arr.shape[0] < min_len:
        fail(name, f"at least {min_len} value(s) long", values, shown=f"{arr.shape[0]} values")
    return arr


def check_same_length(a: NDArray[np.float64], b: NDArray[np.float64], names: tuple[str, str] = ("a", "b")) -> None:
    """Refuse two per-sample arrays of different lengths (values of the same samples are paired)."""
    if a.shape != b.shape:
        fail(names[1], f"as long as {names[0]} (paired samples: {a.shape[0]} values)", b, shown=f"{b.shape[0]} values")


def check_index(index: ArrayLike | Tensor, n: int, name: str = "index") -> NDArray[np.intp]:
    """``index`` as a 1-D array of integer positions in [0, n)."""
    arr = np.asarray(index.detach().cpu().numpy() if isinstance(index, Tensor) else index)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        fail(name, "a 1-D array of integer indices", index, shown=f"shape {arr.shape}, dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        fail(name, f"indices in [0, {n})", index, shown=f"values in [{arr.min()}, {arr.max()}]")
    return arr.astype(np.intp)
