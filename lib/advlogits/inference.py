"""Intervals and tests that decide the book's claims (docs/protocol.md, amendment of 2026-12-04).

* `seed_image_interval`: a mean over seeds and images of per-seed, per-image values, with a 95% interval whose
  coverage is tested on simulated data (``tests/test_stats_coverage.py``) for 3 to 10 seeds whatever the share of
  seed and image variance;
* `paired_t_interval`: a mean of per-image differences of one pair of models;
* `fieller_ratio`: a ratio of two such means (a share of a gain), bounded only when its denominator clearly is not 0;
* `holm`: Holm's step-down adjustment of a family's p-values.

Every interval here is deterministic (no resampling), and each `Tested` value carries its one-sided p-values, read
off the interval itself: the level at which its bound reaches the threshold.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, stats

from .checks import check_number, fail

LEVEL = 0.95
_P_FLOOR = 1e-15  # the smallest p-value resolved; smaller ones are reported as 0


class Tested(NamedTuple):
    """A statistic, its interval at `LEVEL`, and its one-sided p-values against a threshold: ``p_above`` for
    "the statistic exceeds the threshold", ``p_below`` for "it falls below" (NaN when no threshold was given)."""

    estimate: float
    low: float
    high: float
    p_above: float
    p_below: float

    @property
    def interval(self) -> tuple[float, float, float]:
        return self.estimate, self.low, self.high


class SeedImageParts(NamedTuple):
    """The grand mean of an (S, N) array and the two variance parts of the seed-and-image interval."""

    mean: float
    seeds: float  # A = MS_seeds / (S N): variance of the mean of the per-seed means (S - 1 degrees of freedom)
    images: float  # B = max(MS_images - MS_residual, 0) / (S N): the images every seed shares (N - 1)
    n_seeds: int
    n_images: int

    def half_width(self, level: float = LEVEL) -> float:
        """Half-width of the two-sided interval at ``level`` (NaN with one seed)."""
        if self.n_seeds < 2:
            return math.nan
        q = (1 + level) / 2
        return math.sqrt(_t2(q, self.n_seeds - 1) * self.seeds + _t2(q, self.n_images - 1) * self.images)


def _t2(q: float, df: int) -> float:
    return float(stats.t.ppf(q, df)) ** 2 if df > 0 else math.inf


def _matrix(values: ArrayLike, name: str) -> NDArray[np.float64]:
    c = np.asarray(values, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] < 1 or c.shape[1] < 2:
        fail(name, "an (S, N) array of per-seed, per-image values with S >= 1 seeds and N >= 2 images", c.shape)
    if not np.isfinite(c).all():
        fail(name, "finite values", "non-finite entries")
    return c


def _cross_mean_squares(x: NDArray, y: NDArray) -> tuple[float, float, float]:
    """Mean cross-products (seeds, images, residual) of the two-way layouts x and y; x = y gives mean squares."""
    s, n = x.shape
    gx, gy = x.mean(), y.mean()
    rx, ry = x.mean(axis=1) - gx, y.mean(axis=1) - gy
    cx, cy = x.mean(axis=0) - gx, y.mean(axis=0) - gy
    ex = x - gx - rx[:, None] - cx[None, :]
    ey = y - gy - ry[:, None] - cy[None, :]
    seeds = n * float(rx @ ry) / (s - 1)
    images = s * float(cx @ cy) / (n - 1)
    residual = float((ex * ey).sum()) / ((s - 1) * (n - 1))
    return seeds, images, residual


def seed_image_parts(values: ArrayLike) -> SeedImageParts:
    """The grand mean of ``values`` (S seeds, N images) and its variance parts (see `SeedImageParts`)."""
    c = _matrix(values, "values")
    s, n = c.shape
    if s < 2:  # one seed: the seed level cannot be estimated, so no interval is defined
        return SeedImageParts(float(c.mean()), math.nan, math.nan, s, n)
    ms_seeds, ms_images, ms_residual = _cross_mean_squares(c, c)
    return SeedImageParts(float(c.mean()), ms_seeds / (s * n), max(ms_images - ms_residual, 0.0) / (s * n), s, n)


def _p_value(distance: float, width_at: Callable[[float], float]) -> float:
    """One-sided p-value: the tail level alpha at which the interval's half-width equals ``distance`` (> 0)."""
    if distance <= 0:
        return 1.0 - _p_value(-distance, width_at) if distance < 0 else 0.5
    if width_at(_P_FLOOR) <= distance:  # beyond what a float quantile resolves: report 0
        return 0.0
    return float(optimize.brentq(lambda a: width_at(a) - distance, _P_FLOOR, 0.5, xtol=1e-17, rtol=1e-12))


def _tested(
    estimate: float, half_width_at_level: Callable[[float], float], threshold: float | None, level: float
) -> Tested:
    h = half_width_at_level(level)
    if threshold is None or math.isnan(h):
        return Tested(estimate, estimate - h, estimate + h, math.nan, math.nan)

    def width_at(alpha: float) -> float:  # one-sided tail alpha = two-sided level 1 - 2 alpha
        return half_width_at_level(1 - 2 * alpha)

    p_above = _p_value(estimate - threshold, width_at)
    return Tested(estimate, estimate - h, estimate + h, p_above, 1.0 - p_above)


def seed_image_interval(values: ArrayLike, *, threshold: float | None = None, level: float = LEVEL) -> Tested:
    """The mean of ``values`` (S seeds x N images: one statistic's contribution per seed and image, models paired
    within a seed) with the seed-and-image interval: ``mean +- sqrt(t(S-1)^2 A + t(N-1)^2 B)``.

    ``A`` is exact for the seed level (the per-seed means' own variance) and ``B`` adds what the shared images
    contribute; each part carries its own t quantile, so the interval is the exact t interval over seeds when the
    seeds dominate and errs wide in between. With ``threshold``, the one-sided p-values against it."""
    check_number("level", level, above=0, below=1)
    parts = seed_image_parts(values)
    return _tested(parts.mean, parts.half_width, threshold, level)


def minimal_detectable(values: ArrayLike, *, power: float = 0.8, level: float = LEVEL) -> float:
    """The smallest true difference that the seed-and-image interval of ``values``' design detects with ``power`` at
    ``level`` (two-sided): the interval's half-width plus that of the interval at level ``2 power - 1``."""
    parts = seed_image_parts(values)
    return parts.half_width(level) + parts.half_width(2 * power - 1)


def paired_t_interval(a: ArrayLike, b: ArrayLike, *, threshold: float | None = None, level: float = LEVEL) -> Tested:
    """mean(a - b) over paired per-image values with its t interval on N - 1 degrees of freedom."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.ndim != 1:
        fail("a", "two 1-D arrays of one length (paired per-image values)", d.shape)
    if d.shape[0] < 2:  # no variance to estimate: an undefined interval decides nothing
        return Tested(float(d.mean()) if d.size else math.nan, math.nan, math.nan, math.nan, math.nan)
    se = float(d.std(ddof=1)) / math.sqrt(d.shape[0])
    df = d.shape[0] - 1
    return _tested(float(d.mean()), lambda lv: float(stats.t.ppf((1 + lv) / 2, df)) * se, threshold, level)


def fieller_ratio(numerator: ArrayLike, denominator: ArrayLike, *, level: float = LEVEL) -> tuple[float, float, float]:
    """``mean(numerator) / mean(denominator)`` (both S seeds x N images, paired) with a Fieller interval: the ratios
    r whose contrast ``numerator - r denominator`` has a seed-and-image interval containing 0.

    Bounded when the denominator's own interval excludes 0; otherwise ``(ratio, -inf, inf)``. The image part
    enters unclipped (the quadratic in r needs it so); the ratio is reported beside a decision, never decided on."""
    num, den = _matrix(numerator, "numerator"), _matrix(denominator, "denominator")
    if num.shape != den.shape:
        fail("denominator", f"the numerator's shape {num.shape}", den.shape)
    s, n = num.shape
    m_n, m_d = float(num.mean()), float(den.mean())
    ratio = m_n / m_d if m_d else math.nan
    if s < 2:  # one seed: the seed level cannot be estimated
        return ratio, -math.inf, math.inf
    q = (1 + level) / 2
    t_seeds, t_images = _t2(q, s - 1), _t2(q, n - 1)

    def parts(x: NDArray, y: NDArray) -> float:  # t-weighted variance (covariance) of the two means
        ms_s, ms_i, ms_r = _cross_mean_squares(x, y)
        return (t_seeds * ms_s + t_images * (ms_i - ms_r)) / (s * n)

    # (m_n - r m_d)^2 <= V(r), V quadratic in r: a r^2 + b r + c <= 0
    a = m_d**2 - parts(den, den)
    b = -2 * m_n * m_d + 2 * parts(num, den)
    c = m_n**2 - parts(num, num)
    disc = b * b - 4 * a * c
    if a <= 0 or disc < 0:
        return ratio, -math.inf, math.inf
    root = math.sqrt(disc)
    return ratio, (-b - root) / (2 * a), (-b + root) / (2 * a)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the given order: the k-th smallest is the largest of
    ``min(1, (m - j + 1) p_(j))`` over j <= k (reject where adjusted <= alpha)."""
    p = [float(v) for v in p_values]
    if any(not (0 <= v <= 1) for v in p):
        fail("p_values", "probabilities in [0, 1]", p_values)
    m = len(p)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: p[i])):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def percentile_p_values(replicates: ArrayLike, threshold: float) -> tuple[float, float]:
    """One-sided p-values of a percentile-bootstrap interval against ``threshold``: the share of replicates at or
    below it (against "above") and at or above it (against "below"), which the interval's bounds invert."""
    r = np.asarray(replicates, dtype=np.float64)
    return float((r <= threshold).mean()), float((r >= threshold).mean())


def quantile_mc_error(replicates: ArrayLike, q: float) -> float:
    """Monte-Carlo standard error of the ``q`` quantile of ``replicates``: half the spread of the order statistics
    one binomial standard deviation either side of it."""
    r = np.sort(np.asarray(replicates, dtype=np.float64))
    k = len(r)
    spread = math.sqrt(k * q * (1 - q))
    lo = min(max(int(math.floor(q * k - spread)), 0), k - 1)
    hi = min(max(int(math.ceil(q * k + spread)), 0), k - 1)
    return float(r[hi] - r[lo]) / 2


class BootstrapTested(NamedTuple):
    """A percentile-bootstrap `Tested`, with the Monte-Carlo standard error of each bound."""

    estimate: float
    low: float
    high: float
    p_above: float
    p_below: float
    mc_low: float
    mc_high: float
    n_resamples: int

    @property
    def interval(self) -> tuple[float, float, float]:
        return self.estimate, self.low, self.high


def percentile_tested(
    estimate: float, replicates: ArrayLike, *, threshold: float, level: float = LEVEL
) -> BootstrapTested:
    """The percentile interval of ``replicates`` at ``level``, its p-values against ``threshold`` and the
    Monte-Carlo error of each bound (NaN bounds if any replicate is undefined)."""
    r = np.asarray(replicates, dtype=np.float64)
    if not np.isfinite(r).all():
        return BootstrapTested(estimate, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, len(r))
    q = (1 - level) / 2
    low, high = np.quantile(r, [q, 1 - q])
    p_above, p_below = percentile_p_values(r, threshold)
    return BootstrapTested(
        float(estimate),
        float(low),
        float(high),
        p_above,
        p_below,
        quantile_mc_error(r, q),
        quantile_mc_error(r, 1 - q),
        len(r),
    )


def seeds_needed(
    values: ArrayLike, threshold: float, *, power: float = 0.8, level: float = LEVEL, max_seeds: int = 100
) -> int | None:
    """How many seeds the design of ``values`` (S seeds x N images) needs for its seed-and-image interval to decide
    the comparison against ``threshold`` with ``power``, if the true difference is the one seen: the smallest S' >= 2
    whose interval half-width at ``level`` plus that at ``2 power - 1`` is at most ``|mean - threshold|``. The seed
    part of the variance shrinks as 1/S', the images' does not; None when even ``max_seeds`` would not do (the
    effect seen lies at the threshold, or within what the images alone leave uncertain)."""
    parts = seed_image_parts(values)
    if parts.n_seeds < 2:
        return None
    distance = abs(parts.mean - threshold)
    for s in range(2, max_seeds + 1):
        scaled = parts._replace(seeds=parts.seeds * parts.n_seeds / s, n_seeds=s)
        if scaled.half_width(level) + scaled.half_width(2 * power - 1) <= distance:
            return s
    return None
