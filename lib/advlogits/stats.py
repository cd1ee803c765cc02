"""Statistics the book reports: paired bootstrap intervals, ranks, Spearman correlation, Jaccard overlap.

Functions take 1-D NumPy arrays or tensors of per-sample values (one value per image) and return NumPy
values or floats, since they feed tables and figures. Per-image statistics of logits are in
`advlogits.logits`; this module only summarises them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats
from torch import Tensor

from .checks import check_choice, check_int, check_number, check_same_length, check_vector, fail

Interval = tuple[float, float, float]
"""``(estimate, low, high)``: a statistic and its confidence interval."""


class Estimate(NamedTuple):
    """A statistic, its percentile-bootstrap interval, and the bootstrap standard error."""

    estimate: float
    low: float
    high: float
    se: float  # standard deviation of the bootstrap replicates

    @property
    def interval(self) -> Interval:
        return self.estimate, self.low, self.high


StatisticName = Literal["mean", "mean_difference", "spearman"]
"""Statistics :func:`bootstrap_ci` computes vectorised over resamples, by name."""

STATISTIC_NAMES: tuple[str, ...] = get_args(StatisticName)

# Elements of the (resamples x N) index matrix drawn at once; bounds bootstrap memory to a few 100 MB.
_BOOTSTRAP_CHUNK_ELEMENTS = 2_000_000


# ---------------------------------------------------------------------------------------------------------
# Ranks (claims C4, C5)
# ---------------------------------------------------------------------------------------------------------


def spearman(a: ArrayLike | Tensor, b: ArrayLike | Tensor) -> float:
    """Spearman rank correlation of two equal-length 1-D arrays (``scipy.stats.spearmanr``); in [-1, 1]."""
    a_arr = check_vector(a, "a", min_len=2)
    b_arr = check_vector(b, "b", min_len=2)
    check_same_length(a_arr, b_arr)
    return float(stats.spearmanr(a_arr, b_arr).statistic)


def rank_normalise(values: ArrayLike | Tensor) -> NDArray[np.float64]:
    """Ranks scaled to [0, 1]: smallest -> 0, largest -> 1, ties get their average rank (N,) -> (N,).

    Puts per-sample statistics of differently calibrated models on one scale (claim C5). A single value or an
    all-tied array maps to 0.5.
    """
    arr = check_vector(values, "values")
    n = arr.shape[0]
    if n == 1:
        return np.array([0.5])
    return (stats.rankdata(arr, method="average") - 1.0) / (n - 1)


def rank_difference(a: ArrayLike | Tensor, b: ArrayLike | Tensor) -> NDArray[np.float64]:
    """``rank_normalise(a) - rank_normalise(b)``, in [-1, 1]: (N,), (N,) -> (N,). Large where a ranks far above b."""
    a_arr = check_vector(a, "a")
    b_arr = check_vector(b, "b")
    check_same_length(a_arr, b_arr)
    return rank_normalise(a_arr) - rank_normalise(b_arr)


def top_fraction_jaccard(a: ArrayLike | Tensor, b: ArrayLike | Tensor, *, fraction: float) -> float:
    """Jaccard overlap ``|A & B| / |A | B|`` of the indices of the top ``fraction`` of samples by ``a`` and by ``b``.

    Each set holds ``k = max(1, floor(fraction * N + 1/2))`` indices (nearest integer); ties at the cut are
    broken towards lower indices. 1 when both arrays select the same samples, 0 when they select disjoint ones.
    """
    check_number("fraction", fraction, above=0, at_most=1, hint="e.g. 0.05 for the top 5%")
    a_arr = check_vector(a, "a")
    b_arr = check_vector(b, "b")
    check_same_length(a_arr, b_arr)
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
    ranks_a, ranks_b = (resampled_ranks(sample, name=f"samples[{i}]") for i, sample in enumerate(samples[:2]))
    return lambda idx: rank_correlation(ranks_a(idx), ranks_b(idx))


def bootstrap_ci(
    statistic: StatisticName | Callable[..., float],
    *samples: ArrayLike | Tensor,
    n_resamples: int = 20_000,
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
        check_choice("statistic", statistic, STATISTIC_NAMES, hint="or pass a callable")
        if vectorized:
            fail("vectorized", "False for a named statistic (named statistics are always vectorised)", vectorized)
        needed = 1 if statistic == "mean" else 2
        if len(samples) != needed:
            fail("samples", f"{needed} array(s) for statistic {statistic!r}", len(samples), shown=f"{len(samples)}")
    elif not callable(statistic):
        fail(
            "statistic", f"one of {', '.join(STATISTIC_NAMES)} or a callable", statistic, shown=type(statistic).__name__
        )
    if not samples:
        fail("samples", "at least one 1-D array of per-sample values after the statistic", 0, shown="none")
    check_int("n_resamples", n_resamples, at_least=1, hint="20,000 keeps the bounds' Monte-Carlo error small")
    check_number("level", level, above=0, below=1, hint="e.g. 0.95")
    check_int("seed", seed)
    min_len = 2 if statistic == "spearman" else 1
    arrays = tuple(check_vector(s, f"samples[{i}]", min_len=min_len) for i, s in enumerate(samples))
    lengths = {a.shape[0] for a in arrays}
    if len(lengths) != 1:
        fail(
            "samples",
            "of one length (paired values on the same test images)",
            None,
            shown=f"lengths {[a.shape[0] for a in arrays]}",
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
    return estimate, *_percentile_bounds(replicates, level)


def spearman_bootstraps(
    values: Mapping[str, ArrayLike | Tensor],
    pairs: Mapping[str, tuple[str, str]],
    *,
    n_resamples: int = 20_000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Interval]:
    """``bootstrap_ci("spearman", values[a], values[b], ...)`` for every ``label: (a, b)`` of ``pairs``, the same
    numbers bit for bit, in one pass over the resamples: every pair uses the same ``seed``, hence the same resampled
    images, so each model's ranks in a resample are computed once and shared by the pairs it is in."""
    check_number("level", level, above=0, below=1, hint="e.g. 0.95")
    names = sorted({name for pair in pairs.values() for name in pair})
    arrays = {name: check_vector(values[name], f"values[{name!r}]", min_len=2) for name in names}
    if len({a.shape[0] for a in arrays.values()}) != 1:
        fail("values", "of one length (paired values on the same test images)", None, shown="lengths differ")
    rankers = {name: resampled_ranks(a, name=f"values[{name!r}]") for name, a in arrays.items()}

    def correlations(idx: NDArray[np.intp]) -> NDArray[np.float64]:
        ranks = {name: ranks_of(idx) for name, ranks_of in rankers.items()}
        return np.stack([rank_correlation(ranks[a], ranks[b]) for a, b in pairs.values()], axis=1)

    n = next(iter(arrays.values())).shape[0]
    # the draws of bootstrap_ci: one generator seeded with ``seed``, the same chunks of resamples
    estimate, replicates = image_bootstrap_replicates(correlations, n, n_resamples=n_resamples, seed=seed)
    return {label: (float(estimate[k]), *_percentile_bounds(replicates[:, k], level)) for k, label in enumerate(pairs)}


def accuracy_interval(correct: ArrayLike | Tensor, *, seed: int = 0) -> Interval:
    """Accuracy and its bootstrap 95% interval, in percent, from per-image correctness (N,) booleans."""
    values = check_vector(
        np.asarray(correct.cpu() if isinstance(correct, Tensor) else correct, dtype=np.float64), "correct"
    )
    estimate, low, high = bootstrap_ci("mean", values, seed=seed)
    return 100 * estimate, 100 * low, 100 * high


# ---------------------------------------------------------------------------------------------------------
# Bootstraps of statistics computed from resampled indices
# ---------------------------------------------------------------------------------------------------------


def _percentile_bounds(replicates: NDArray[np.float64], level: float) -> tuple[float, float]:
    """The ``(1 - level)/2`` and ``(1 + level)/2`` quantiles of ``replicates``: a percentile interval's bounds."""
    alpha = 1.0 - level
    low, high = np.quantile(replicates, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def _percentile(replicates: NDArray[np.float64], estimate: float, level: float) -> Estimate:
    finite = replicates[np.isfinite(replicates)]
    if len(finite) < len(replicates):  # an undefined replicate makes the interval undefined
        return Estimate(estimate, math.nan, math.nan, math.nan)
    low, high = _percentile_bounds(replicates, level)
    return Estimate(estimate, low, high, float(replicates.std(ddof=1)) if len(replicates) > 1 else 0.0)


def image_bootstrap_replicates(
    statistic: Callable[[NDArray[np.intp]], NDArray[np.float64]], n: int, *, n_resamples: int = 20_000, seed: int = 0
) -> tuple[Any, NDArray[np.float64]]:
    """The statistic on the data and on ``n_resamples`` paired resamples of its ``n`` images: ``(estimate,
    replicates)``. ``statistic`` maps an (R, n) array of indices (one resample per row; row ``arange(n)`` is the data
    itself) to (R,) values, or (R, K) for K statistics on the same resamples, so any statistic of any number of
    per-image arrays of the same images is resampled jointly (paired). The estimate is a float, or (K,) values."""
    check_int("n", n, at_least=1)
    check_int("n_resamples", n_resamples, at_least=2)
    first = np.asarray(statistic(np.arange(n)[None, :]), dtype=np.float64)
    estimate = float(first[0]) if first.ndim == 1 else first[0]
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_resamples, _BOOTSTRAP_CHUNK_ELEMENTS // n))
    replicates = np.empty((n_resamples, *first.shape[1:]))
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        replicates[start:stop] = statistic(rng.integers(0, n, size=(stop - start, n)))
    return estimate, replicates


def image_bootstrap(
    statistic: Callable[[NDArray[np.intp]], NDArray[np.float64]],
    n: int,
    *,
    n_resamples: int = 20_000,
    level: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """Paired percentile bootstrap over ``n`` images of a statistic given resampled image indices (see
    `image_bootstrap_replicates`)."""
    check_number("level", level, above=0, below=1)
    estimate, replicates = image_bootstrap_replicates(statistic, n, n_resamples=n_resamples, seed=seed)
    return _percentile(replicates, estimate, level)


Resampler = Callable[[NDArray[np.intp]], NDArray[Any]]  # (R, N) resample indices -> per-resample values


def resampled_spearman(a: ArrayLike | Tensor, b: ArrayLike | Tensor) -> Resampler:
    """Spearman(a, b) on resampled indices: (R, N) -> (R,), with average ranks within each resample (for
    `image_bootstrap`)."""
    a_arr, b_arr = check_vector(a, "a", min_len=2), check_vector(b, "b", min_len=2)
    check_same_length(a_arr, b_arr)
    return _named_statistic("spearman", (a_arr, b_arr))


def resampled_ranks(values: ArrayLike | Tensor, *, name: str = "values") -> Resampler:
    """The average ranks of ``values`` within each resample: (R, N) indices -> (R, N) ranks. With `rank_correlation`,
    `resampled_spearman` in two steps, so that a sample in several pairs is ranked once per resample."""
    unique, dense = np.unique(check_vector(values, name, min_len=2), return_inverse=True)
    return lambda idx: _resampled_ranks(dense, unique.shape[0], idx)


def rank_correlation(ranks_a: NDArray[np.float64], ranks_b: NDArray[np.float64]) -> NDArray[np.float64]:
    """Spearman's correlation of each resample from the two samples' ranks in it (the Pearson correlation of each
    row pair): (R, N), (R, N) -> (R,); NaN for a constant row."""
    x = ranks_a - ranks_a.mean(axis=1, keepdims=True)
    y = ranks_b - ranks_b.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x * y).sum(axis=1) / np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))


def resampled_top_jaccard(a: ArrayLike | Tensor, b: ArrayLike | Tensor, *, fraction: float) -> Resampler:
    """`top_fraction_jaccard` of a and b on resampled indices: (R, N) -> (R,); the top sets hold positions of the
    resample (an image drawn twice can be selected twice), ties broken towards lower positions."""
    check_number("fraction", fraction, above=0, at_most=1)
    a_arr, b_arr = check_vector(a, "a"), check_vector(b, "b")
    check_same_length(a_arr, b_arr)
    top_a, top_b = (resampled_top(arr, fraction=fraction, name=name) for arr, name in ((a_arr, "a"), (b_arr, "b")))
    return lambda idx: top_jaccard(top_a(idx), top_b(idx))


def resampled_top(values: ArrayLike | Tensor, *, fraction: float, name: str = "values") -> Resampler:
    """Which positions of each resample hold its top ``fraction`` of ``values``: (R, N) indices -> (R, N) bool (see
    `top_positions`). With `top_jaccard`, `resampled_top_jaccard` in two steps, so that a sample in several pairs
    is selected once per resample."""
    check_number("fraction", fraction, above=0, at_most=1)
    array = check_vector(values, name)

    def top(idx: NDArray[np.intp]) -> NDArray[np.bool_]:
        return top_positions(array[idx], max(1, math.floor(fraction * idx.shape[1] + 0.5)))

    return top


def top_jaccard(in_a: NDArray[np.bool_], in_b: NDArray[np.bool_]) -> NDArray[np.float64]:
    """The Jaccard index of two top sets in each resample: (R, N) bool, (R, N) bool -> (R,)."""
    return (in_a & in_b).sum(axis=1) / (in_a | in_b).sum(axis=1)


def top_positions(values: NDArray[np.float64], k: int) -> NDArray[np.bool_]:
    """Which positions of each row of ``values`` (R, N) are among its ``k`` largest, ties broken towards lower
    positions: (R, N) bool, the first ``k`` of a stable descending sort of each row. Found by selection, not
    sorting: a row's k-th largest value is its threshold, every larger value is in, and so are the first of the
    values equal to it, as many as are left. A row holding NaN (after every number in that sort) is sorted."""
    r, n = values.shape
    check_int("k", k, at_least=1, at_most=n)
    if np.isnan(values).any():
        top = np.zeros((r, n), dtype=bool)
        top[np.arange(r)[:, None], np.argsort(-values, axis=1, kind="stable")[:, :k]] = True
        return top
    threshold = -np.partition(-values, k - 1, axis=1)[:, k - 1 : k]
    above = values > threshold
    at = values == threshold
    left = k - above.sum(axis=1, keepdims=True)
    return above | (at & (np.cumsum(at, axis=1) <= left))
