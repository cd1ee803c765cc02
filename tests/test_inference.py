"""`advlogits.inference` against closed forms and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from advlogits.inference import (
    fieller_ratio,
    holm,
    minimal_detectable,
    paired_t_interval,
    percentile_p_values,
    quantile_mc_error,
    seed_image_interval,
    seed_image_parts,
    seeds_needed,
)


def test_without_an_image_part_it_is_the_t_interval_over_seeds():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(4, 50))
    values -= values.mean(axis=0, keepdims=True) - 0.7  # every image mean 0.7: no shared image part
    tested = seed_image_interval(values)
    seed_means = values.mean(axis=1)
    low, high = stats.t.interval(0.95, 3, loc=seed_means.mean(), scale=stats.sem(seed_means))
    assert seed_image_parts(values).images == 0
    assert tested.estimate == pytest.approx(0.7) and (tested.low, tested.high) == pytest.approx((low, high))


def test_the_image_part_is_what_every_seed_shares():
    rng = np.random.default_rng(1)
    shared = rng.normal(size=(1, 400))
    values = np.repeat(shared, 3, axis=0)  # seeds identical: no seed part, the images' variance of the mean
    parts = seed_image_parts(values)
    assert parts.seeds == pytest.approx(0, abs=1e-12)
    assert parts.images == pytest.approx(shared.var(ddof=1) / 400)


def test_p_values_invert_the_interval():
    rng = np.random.default_rng(2)
    values = rng.normal(0.2, 1, (5, 80)) + rng.normal(0, 0.3, (5, 1))
    tested = seed_image_interval(values)
    at_low = seed_image_interval(values, threshold=tested.low)
    assert at_low.p_above == pytest.approx(0.025, rel=1e-6)
    at_high = seed_image_interval(values, threshold=tested.high)
    assert at_high.p_below == pytest.approx(0.025, rel=1e-6)
    assert seed_image_interval(values, threshold=tested.estimate).p_above == pytest.approx(0.5)
    far = seed_image_interval(values, threshold=tested.estimate - 100)
    assert far.p_above < 1e-8 and far.p_below > 1 - 1e-8


def test_paired_t_matches_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=300), rng.normal(0.1, 1, 300)
    tested = paired_t_interval(a, b, threshold=0.0)
    reference = stats.ttest_rel(a, b, alternative="less")
    assert tested.p_below == pytest.approx(reference.pvalue, rel=1e-6)
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert (tested.low, tested.high) == pytest.approx((ci.low, ci.high))


def test_fieller_bounds_are_the_ratios_whose_contrast_covers_zero():
    rng = np.random.default_rng(4)
    shift = rng.normal(0, 0.05, (5, 1))
    den = rng.normal(0.3, 1, (5, 200)) + shift
    num = 0.5 * den + rng.normal(0.02, 1, (5, 200))
    ratio, low, high = fieller_ratio(num, den)
    assert ratio == pytest.approx(num.mean() / den.mean())
    assert low < ratio < high

    def covers_zero(r: float) -> bool:  # the contrast's interval, with the image part unclipped as Fieller's is
        parts = seed_image_parts(num - r * den)
        return abs(parts.mean) <= parts.half_width()

    assert covers_zero(low + 1e-3 * (high - low)) and covers_zero(high - 1e-3 * (high - low))
    assert not covers_zero(low - 0.05 * (high - low)) and not covers_zero(high + 0.05 * (high - low))


def test_fieller_is_unbounded_without_a_clear_denominator():
    rng = np.random.default_rng(5)
    den = rng.normal(0.0, 1, (3, 100))
    _, low, high = fieller_ratio(rng.normal(1, 1, (3, 100)), den)
    assert (low, high) == (-math.inf, math.inf)


def test_holm_by_hand():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5]) == [0.5]
    with pytest.raises(ValueError, match="p_values"):
        holm([1.5])


def test_minimal_detectable_is_the_two_half_widths():
    rng = np.random.default_rng(6)
    values = rng.normal(size=(5, 100))
    parts = seed_image_parts(values)
    assert minimal_detectable(values) == pytest.approx(parts.half_width(0.95) + parts.half_width(0.6))


def test_percentile_p_values_and_monte_carlo_error():
    rng = np.random.default_rng(7)
    replicates = rng.normal(size=20_000)
    p_above, p_below = percentile_p_values(replicates, np.quantile(replicates, 0.025))
    assert p_above == pytest.approx(0.025, abs=1e-4) and p_below == pytest.approx(0.975, abs=1e-4)
    z = stats.norm.ppf(0.025)
    asymptotic = math.sqrt(0.025 * 0.975 / 20_000) / stats.norm.pdf(z)
    assert quantile_mc_error(replicates, 0.025) == pytest.approx(asymptotic, rel=0.35)


def test_one_seed_gives_an_undefined_interval_not_an_error():
    one = seed_image_interval(np.array([[0.2, 0.4, 0.6]]), threshold=0.0)
    assert one.estimate == pytest.approx(0.4) and math.isnan(one.low) and math.isnan(one.p_above)
    assert math.isnan(minimal_detectable(np.array([[0.2, 0.4]]))) and seeds_needed(np.array([[0.2, 0.4]]), 0.0) is None
    assert fieller_ratio(np.array([[1.0, 2.0]]), np.array([[1.0, 1.0]]))[1:] == (-math.inf, math.inf)


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((1, 1)), np.full((3, 4), np.nan)])
def test_bad_arrays_are_refused(bad):
    with pytest.raises(ValueError, match="values"):
        seed_image_interval(bad)


def test_without_seed_variation_it_has_the_binomial_width():
    """Three identical seeds: only the images vary, so the interval is about +-1.96 sqrt(p (1 - p) / N)."""
    n, p = 1000, 0.3
    row = (np.arange(n) < p * n).astype(float)
    tested = seed_image_interval(np.stack([row] * 3))
    assert tested.estimate == pytest.approx(p)
    assert tested.high - tested.low == pytest.approx(2 * 1.96 * math.sqrt(p * (1 - p) / n), rel=0.02)


def test_it_widens_with_the_seeds_disagreement():
    n = 1000
    same = np.stack([(np.arange(n) < 300).astype(float)] * 3)
    differ = np.stack([(np.arange(n) < k).astype(float) for k in (150, 300, 450)])
    narrow, wide = seed_image_interval(same), seed_image_interval(differ)
    assert wide.estimate == pytest.approx(narrow.estimate) == pytest.approx(0.3)
    assert wide.high - wide.low > 10 * (narrow.high - narrow.low)
    # seeds dominate: the t interval on the three seed means, 0.15, 0.3, 0.45
    low, high = stats.t.interval(0.95, 2, loc=0.3, scale=0.15 / math.sqrt(3))
    assert (wide.low, wide.high) == pytest.approx((low, high), rel=0.01)


def test_a_difference_of_paired_students_is_exactly_zero_when_they_agree():
    rng = np.random.default_rng(3)
    outcomes = (rng.random((3, 400)) < 0.4).astype(float)
    tested = seed_image_interval(outcomes - outcomes.copy())
    assert (tested.estimate, tested.low, tested.high) == (0.0, 0.0, 0.0)
    shifted = outcomes.copy()
    shifted[:, :40] = 1.0  # b is a plus some images on every seed: the difference's interval lies above 0
    assert seed_image_interval(shifted - outcomes).low > 0


def test_seeds_needed_by_hand():
    """Seeds only (the images identical within a seed): S' seeds give (t(S'-1, 0.975) + t(S'-1, 0.8)) * sd / sqrt(S')
    as the smallest detectable difference, so the answer is the first S' where that falls below the distance."""
    seed_means = np.array([0.10, 0.14, 0.18])
    values = np.repeat(seed_means[:, None], 50, axis=1)
    sd = seed_means.std(ddof=1)

    def detectable(s: int) -> float:
        return (stats.t.ppf(0.975, s - 1) + stats.t.ppf(0.8, s - 1)) * sd / math.sqrt(s)

    distance = 0.14 - 0.10
    expected = next(s for s in range(2, 100) if detectable(s) <= distance)
    assert seeds_needed(values, 0.10) == expected
    assert seeds_needed(values, 0.14) is None, "an effect at the threshold is never decided"
    assert seeds_needed(values, 0.0) == next(s for s in range(2, 100) if detectable(s) <= 0.14) < expected


def test_a_paired_difference_of_one_image_is_undefined_not_an_error():
    one = paired_t_interval([1.0], [0.5], threshold=0.0)
    assert one.estimate == 0.5 and math.isnan(one.low) and math.isnan(one.p_above)
    with pytest.raises(ValueError, match="^a must be two 1-D arrays"):
        paired_t_interval(np.zeros((2, 2)), np.zeros((2, 2)))
