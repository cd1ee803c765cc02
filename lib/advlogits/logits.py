"""Logit statistics (claims C1, C2, C4, C5) and the bootstrap confidence intervals the book reports.

Tensor functions take ``logits`` of shape ``(N, K)`` (N samples, K classes, raw pre-softmax scores) and
return one value per sample, shape ``(N,)``, on the input's device. Rank and bootstrap helpers work on 1-D
NumPy arrays or tensors and return NumPy values, since they feed tables and figures.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Literal, get_args

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from scipy import stats
from torch import Tensor

StatisticName = Literal["mean", "mean_difference", "spearman"]
"""Statistics :func:`bootstrap_ci` computes vectorised over resamples, by name."""

STATISTIC_NAMES: tuple[str, ...] = get_args(StatisticName)

# Elements of the (resamples x N) index matrix drawn at once; bounds bootstrap memory to a few 100 MB.
_BOOTSTRAP_CHUNK_ELEMENTS = 2_000_000


# ---------------------------------------------------------------------------------------------------------
# Validation shared with advlogits.distill
# ---------------------------------------------------------------------------------------------------------


def _check_logits(logits: object, name: str = "logits") -> None:
    """Raise ValueError unless ``logits`` is a finite floating tensor of shape (N, K), N >= 1, K >= 2."""
    if not isinstance(logits, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (N, K); got {type(logits).__name__}.")
    if logits.ndim != 2 or logits.shape[0] < 1 or logits.shape[1] < 2:
        raise ValueError(
            f"{name} must have shape (N, K) with N >= 1 samples and K >= 2 classes; got {tuple(logits.shape)}."
        )
    if not logits.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor; got dtype {logits.dtype}. Cast it with .float().")
    if not bool(torch.isfinite(logits).all()):
        raise ValueError(f"{name} must be finite; it contains NaN or infinite values.")


def _check_labels(y: object, n: int, k: int, name: str = "y") -> None:
    """Raise ValueError unless ``y`` is an integer tensor of shape (n,) with values in [0, k)."""
    if not isinstance(y, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of class indices, shape ({n},); got {type(y).__name__}.")
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), one class index per row of the logits; got {tuple(y.shape)}.")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class indices; got dtype {y.dtype}. Cast it with .long().")
    if n and (int(y.min()) < 0 or int(y.max()) >= k):
        raise ValueError(f"{name} must hold class indices in [0, {k}); got values in [{int(y.min())}, {int(y.max())}].")


def _as_1d(values: ArrayLike | Tensor, name: str, *, min_len: int = 1) -> NDArray[np.float64]:
    """Return ``values`` as a 1-D float64 NumPy array of length >= min_len, or raise ValueError naming it."""
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per sample); got shape {arr.shape}.")
    if arr.shape[0] < min_len:
        raise ValueError(f"{name} must hold at least {min_len} value(s); got {arr.shape[0]}.")
    return arr


def _check_paired(a: NDArray[np.float64], b: NDArray[np.float64]) -> None:
    """Raise ValueError unless ``a`` and ``b`` have the same length (values of the same samples)."""
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same length (paired samples); got {a.shape[0]} and {b.shape[0]}.")


# ---------------------------------------------------------------------------------------------------------
# Per-sample logit statistics
# ---------------------------------------------------------------------------------------------------------


def max_logit(logits: Tensor) -> Tensor:
    """Largest logit per sample, ``max_k z_k``: (N, K) -> (N,). Claim C1."""
    _check_logits(logits)
    return logits.amax(dim=1)


def logit_gap(logits: Tensor) -> Tensor:
    """Top logit minus runner-up, ``z_(1) - z_(2)``: (N, K) -> (N,), >= 0 (0 when the top is tied). Claim C2."""
    _check_logits(logits)
    top2 = logits.topk(2, dim=1).values
    return top2[:, 0] - top2[:, 1]


def sorted_logits(logits: Tensor) -> Tensor:
    """Each row sorted in descending order: (N, K) -> (N, K); column j is the (j+1)-th largest logit (C2 profile)."""
    _check_logits(logits)
    return logits.sort(dim=1, descending=True).values


def confidence(logits: Tensor, y: Tensor | None = None) -> Tensor:
    """Softmax probability of the predicted class, or of class ``y`` when given: (N, K), (N,) -> (N,) in (0, 1]."""
    _check_logits(logits)
    probs = logits.softmax(dim=1)
    if y is None:
        return probs.amax(dim=1)
    _check_labels(y, logits.shape[0], logits.shape[1])
    return probs.gather(1, y.to(logits.device).long().unsqueeze(1)).squeeze(1)


def margins(logits: Tensor, y: Tensor) -> Tensor:
    """Margin of the true class, ``z_y - max_{j != y} z_j``: (N, K), (N,) -> (N,).

    Positive when the sample is classified correctly, negative when misclassified, 0 on a tie at the top.
    """
    _check_logits(logits)
    _check_labels(y, logits.shape[0], logits.shape[1])
    y = y.to(logits.device).long().unsqueeze(1)
    is_y = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, y, True)
    best_other = logits.masked_fill(is_y, -torch.inf).amax(dim=1)
    return logits.gather(1, y).squeeze(1) - best_other


# ---------------------------------------------------------------------------------------------------------
# Ranks (claims C4, C5)
# ---------------------------------------------------------------------------------------------------------


def spearman(a: ArrayLike | Tensor, b: ArrayLike | Tensor) -> float:
    """Spearman rank correlation of two equal-length 1-D arrays (``scipy.stats.spearmanr``); in [-1, 1]."""
    a_arr = _as_1d(a, "a", min_len=2)
    b_arr = _as_1d(b, "b", min_len=2)
    _check_paired(a_arr, b_arr)
    return float(stats.spearmanr(a_arr, b_arr).statistic)


def rank_normalise(values: ArrayLike | Tensor) -> NDArray[np.float64]:
    """Ranks scaled to [0, 1]: smallest -> 0, largest -> 1, ties get their average rank (N,) -> (N,).

    Puts per-sample statistics of differently calibrated models on one scale (claim C5). A single value or an
    all-tied array maps to 0.5.
    """
    arr = _as_1d(values, "values")
    n = arr.shape[0]
    if n == 1:
        return np.array([0.5])
    return (stats.rankdata(arr, method="average") - 1.0) / (n - 1)


def rank_difference(a: ArrayLike | Tensor, b: ArrayLike | Tensor) -> NDArray[np.float64]:
    """``rank_normalise(a) - rank_normalise(b)``, in [-1, 1]: (N,), (N,) -> (N,). Large where a ranks far above b."""
    a_arr = _as_1d(a, "a")
    b_arr = _as_1d(b, "b")
    _check_paired(a_arr, b_arr)
    return rank_normalise(a_arr) - rank_normalise(b_arr)


def top_fraction_jaccard(a: ArrayLike | Tensor, b: ArrayLike | Tensor, *, fraction: float) -> float:
    """Jaccard overlap ``|A & B| / |A | B|`` of the indices of the top ``fraction`` of samples by ``a`` and by ``b``.

    Each set holds ``k = max(1, floor(fraction * N + 1/2))`` indices (nearest integer); ties at the cut are
    broken towards lower indices. 1 when both arrays select the same samples, 0 when they select disjoint ones.
    """
    if isinstance(fraction, bool) or not (isinstance(fraction, numbers.Real) and 0.0 < fraction <= 1.0):
        raise ValueError(f"fraction must be a number in (0, 1], e.g. 0.05 for the top 5%; got {fraction!r}.")
    a_arr = _as_1d(a, "a")
    b_arr = _as_1d(b, "b")
    _check_paired(a_arr, b_arr)
    n = a_arr.shape[0]
    k = max(1, math.floor(fraction * n + 0.5))
    top_a = set(np.argsort(-a_arr, kind="stable")[:k].tolist())
    top_b = set(np.argsort(-b_arr, kind="stable")[:k].tolist())
    return len(top_a & top_b) / len(top_a | top_b)


# ---------------------------------------------------------------------------------------------------------
# Paired bootstrap
# ---------------------------------------------------------------------------------------------------------


def _resampled_ranks(dense: NDArray[np.intp], n_unique: int, idx: NDArray[np.intp]) -> NDArray[np.float64]:
    """Average ranks within each resample, without sorting: (R, N) indices -> (R, N) ranks.

    ``dense`` maps each original sample to the rank of its value among the ``n_unique`` distinct values. In a
    resample the rank of a value is (count of smaller values) + (count of equal values + 1) / 2, which counts
    give directly; resamples repeat samples, so ties are the rule and must get average ranks.
    """
    d = dense[idx]
    r = idx.shape[0]
    flat = (d + n_unique * np.arange(r)[:, None]).ravel()
    counts = np.bincount(flat, minlength=r * n_unique).reshape(r, n_unique)
    average = np.cumsum(counts, axis=1) - counts + (counts + 1) / 2.0
    return np.take_along_axis(average, d, axis=1)


def _row_pearson(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    """Pearson correlation of each row pair: (R, N), (R, N) -> (R,); NaN for a constant row."""
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x * y).sum(axis=1) / np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))


def _named_statistic(
    name: str, samples: tuple[NDArray[np.float64], ...]
) -> Callable[[NDArray[np.intp]], NDArray[np.float64]]:
    """Vectorised statistic: (R, N) resample indices -> (R,) values, for one of STATISTIC_NAMES."""
    if name == "mean":
        (x,) = samples
        return lambda idx: x[idx].mean(axis=1)
    if name == "mean_difference":
        diff = samples[0] - samples[1]  # mean(a) - mean(b) over the same resampled indices = mean(a - b)
        return lambda idx: diff[idx].mean(axis=1)
    a_unique, a_dense = np.unique(samples[0], return_inverse=True)
    b_unique, b_dense = np.unique(samples[1], return_inverse=True)
    return lambda idx: _row_pearson(
        _resampled_ranks(a_dense, a_unique.shape[0], idx), _resampled_ranks(b_dense, b_unique.shape[0], idx)
    )


def bootstrap_ci(
    statistic: StatisticName | Callable[..., float],
    *samples: ArrayLike | Tensor,
    n_resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    vectorized: bool = False,
) -> tuple[float, float, float]:
    """Paired percentile-bootstrap confidence interval: returns ``(estimate, low, high)``.

    ``samples`` are equal-length 1-D arrays (or tensors) of per-sample values on the SAME test images, so one
    resample draws N indices with replacement and applies them to every sample jointly (paired bootstrap).
    ``low``/``high`` are the ``(1 - level)/2`` and ``(1 + level)/2`` quantiles of the statistic over
    ``n_resamples`` resamples; ``estimate`` is the statistic on the original samples. Resample indices come
    from ``numpy.random.default_rng(seed)``, so a seed fixes the interval.

    ``statistic`` is either a name, computed vectorised over resamples:

    - ``"mean"`` (one sample): the mean, e.g. mean max logit (C1);
    - ``"mean_difference"`` (two samples a, b): ``mean(a) - mean(b)``, e.g. AT minus ST (C1, C2);
    - ``"spearman"`` (two samples): Spearman rank correlation (C4);

    or a callable taking one 1-D float64 array per sample and returning a float (evaluated in a loop), or, with
    ``vectorized=True``, taking ``(R, N)`` arrays (one resample per row) and returning ``(R,)``. A statistic
    that is undefined on some resample (e.g. correlation of a constant resample) yields NaN bounds.
    """
    if isinstance(statistic, str):
        if statistic not in STATISTIC_NAMES:
            raise ValueError(f"statistic must be one of {STATISTIC_NAMES} or a callable; got {statistic!r}.")
        if vectorized:
            raise ValueError("vectorized applies only to callable statistics; named statistics are always vectorised.")
        needed = 1 if statistic == "mean" else 2
        if len(samples) != needed:
            raise ValueError(f"statistic {statistic!r} needs {needed} sample(s); got {len(samples)} samples.")
    elif not callable(statistic):
        raise ValueError(f"statistic must be one of {STATISTIC_NAMES} or a callable; got {type(statistic).__name__}.")
    if not samples:
        raise ValueError("samples: pass at least one 1-D array of per-sample values after the statistic.")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"n_resamples must be an integer >= 1 (2000 is usual); got {n_resamples!r}.")
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0.0 < level < 1.0:
        raise ValueError(f"level must be in the open interval (0, 1), e.g. 0.95; got {level!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer; got {seed!r}.")
    min_len = 2 if statistic == "spearman" else 1
    arrays = tuple(_as_1d(s, f"samples[{i}]", min_len=min_len) for i, s in enumerate(samples))
    lengths = {a.shape[0] for a in arrays}
    if len(lengths) != 1:
        raise ValueError(
            f"samples must all have the same length (paired values on the same test images); "
            f"got lengths {[a.shape[0] for a in arrays]}."
        )
    n = arrays[0].shape[0]

    if isinstance(statistic, str):
        on_indices = _named_statistic(statistic, arrays)
    else:
        user_statistic = statistic

        def on_indices(idx: NDArray[np.intp]) -> NDArray[np.float64]:
            if vectorized:
                return np.asarray(user_statistic(*(a[idx] for a in arrays)), dtype=np.float64).reshape(idx.shape[0])
            return np.array([float(user_statistic(*(a[row] for a in arrays))) for row in idx])

    estimate = float(on_indices(np.arange(n)[None, :])[0])
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_resamples, _BOOTSTRAP_CHUNK_ELEMENTS // n))
    replicates = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        replicates[start:stop] = on_indices(rng.integers(0, n, size=(stop - start, n)))
    alpha = 1.0 - level
    low, high = np.quantile(replicates, [alpha / 2.0, 1.0 - alpha / 2.0])
    return estimate, float(low), float(high)
