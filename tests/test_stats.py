"""Tests for advlogits.stats: rank helpers, Spearman and Jaccard by hand and against scipy, the paired
bootstrap, and the accuracy interval."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from scipy import stats

from advlogits.stats import (
    Estimate,
    accuracy_interval,
    bootstrap_ci,
    image_bootstrap,
    rank_difference,
    rank_normalise,
    resampled_spearman,
    resampled_top_jaccard,
    spearman,
    spearman_bootstraps,
    top_fraction_jaccard,
    top_positions,
)

# ---------------------------------------------------------------------------------------------------------
# ranks, Spearman, Jaccard
# ---------------------------------------------------------------------------------------------------------


def test_spearman_hand_cases_and_scipy() -> None:
    a = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert spearman(a, [10.0, 20.0, 25.0, 100.0, 1000.0]) == pytest.approx(1.0)
    assert spearman(a, [5.0, 4.0, 3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    rng = np.random.default_rng(2)
    x = rng.normal(size=300)
    y = x + rng.normal(size=300)
    assert spearman(torch.from_numpy(x), y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    with pytest.raises(ValueError, match=r"b must be as long as a \(paired samples: 3 values\) \(got 2 values\)"):
        spearman([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"a must be at least 2 value\(s\) long \(got 1 values\)"):
        spearman([1.0], [1.0])


def test_rank_normalise_by_hand() -> None:
    # ranks of [3, 1, 2, 2] with average ties: 4, 1, 2.5, 2.5 -> (r - 1) / 3
    np.testing.assert_allclose(rank_normalise([3.0, 1.0, 2.0, 2.0]), [1.0, 0.0, 0.5, 0.5])
    np.testing.assert_allclose(rank_normalise(torch.tensor([7.0, 7.0, 7.0])), [0.5, 0.5, 0.5])
    np.testing.assert_allclose(rank_normalise([42.0]), [0.5])


def test_rank_difference_by_hand() -> None:
    # [1, 0, 1/2, 1/2] - [0, 1/3, 2/3, 1]
    np.testing.assert_allclose(
        rank_difference([3.0, 1.0, 2.0, 2.0], [1.0, 2.0, 3.0, 4.0]), [1.0, -1.0 / 3, -1.0 / 6, -0.5]
    )
    with pytest.raises(ValueError, match=r"b must be as long as a \(paired samples: 2 values\) \(got 1 values\)"):
        rank_difference([1.0, 2.0], [1.0])


def test_top_fraction_jaccard_hand_cases() -> None:
    a = np.arange(10.0)
    assert top_fraction_jaccard(a, a.copy(), fraction=0.3) == 1.0
    assert top_fraction_jaccard(a, -a, fraction=0.3) == 0.0  # {7, 8, 9} vs {0, 1, 2}
    # 0.3 * 10 must give k = 3 (not 4 through 3.0000000000000004): tops {0, 1, 2} and {0, 1, 5}, 2 / 4.
    b = np.array([10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    c = np.array([10.0, 9.0, 0.0, 0.0, 0.0, 8.0, 0.0, 0.0, 0.0, 0.0])
    assert top_fraction_jaccard(b, c, fraction=0.3) == pytest.approx(0.5)
    assert top_fraction_jaccard(b, c, fraction=1.0) == 1.0
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=rf"fraction must be a finite number > 0 and <= 1 \(got {bad}\)"):
            top_fraction_jaccard(b, c, fraction=bad)
    with pytest.raises(ValueError, match=r"b must be as long as a \(paired samples: 10 values\) \(got 9 values\)"):
        top_fraction_jaccard(b, c[:9], fraction=0.3)


# ---------------------------------------------------------------------------------------------------------
# the paired bootstrap
# ---------------------------------------------------------------------------------------------------------


def test_bootstrap_mean_ci_covers_truth_with_normal_width() -> None:
    rng = np.random.default_rng(3)
    mu, sigma, n = 5.0, 2.0, 2000
    x = rng.normal(mu, sigma, size=n)
    estimate, low, high = bootstrap_ci("mean", x)
    assert estimate == pytest.approx(x.mean())
    assert low < mu < high
    assert low < estimate < high
    assert high - low == pytest.approx(2 * 1.96 * sigma / math.sqrt(n), rel=0.15)


def test_bootstrap_is_seeded() -> None:
    x = np.random.default_rng(4).normal(size=500)
    assert bootstrap_ci("mean", x, seed=7) == bootstrap_ci("mean", x, seed=7)
    assert bootstrap_ci("mean", x, seed=7) != bootstrap_ci("mean", x, seed=8)


def test_bootstrap_paired_difference_centres_on_shift() -> None:
    rng = np.random.default_rng(5)
    n, shift, noise = 1000, 0.3, 0.05
    st = rng.normal(0.0, 1.0, size=n)
    at = st + shift + rng.normal(0.0, noise, size=n)
    estimate, low, high = bootstrap_ci("mean_difference", at, st)
    assert estimate == pytest.approx(at.mean() - st.mean())
    assert 0.0 < low < shift < high
    # Paired resampling: the width reflects only the noise of the difference (an unpaired bootstrap would
    # give about sqrt(2) * 1 / 0.05 = 28 times more).
    assert high - low == pytest.approx(2 * 1.96 * noise / math.sqrt(n), rel=0.2)
    # A constant shift has no sampling variability at all when paired.
    estimate, low, high = bootstrap_ci("mean_difference", st + shift, st, n_resamples=200)
    assert estimate == pytest.approx(shift) and low == pytest.approx(shift) and high == pytest.approx(shift)


def test_bootstrap_vectorised_paths_equal_the_loop() -> None:
    rng = np.random.default_rng(6)
    a = rng.normal(size=200)
    b = a + rng.normal(size=200)
    b[::10] = b[0]  # ties in b
    loop = bootstrap_ci(lambda u, v: stats.spearmanr(u, v).statistic, a, b, n_resamples=200, seed=1)
    named = bootstrap_ci("spearman", a, b, n_resamples=200, seed=1)
    assert named[0] == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
    np.testing.assert_allclose(named, loop, atol=1e-12)
    mean_loop = bootstrap_ci(np.mean, a, n_resamples=300, seed=2)
    mean_vec = bootstrap_ci(lambda x: x.mean(axis=1), a, n_resamples=300, seed=2, vectorized=True)
    np.testing.assert_allclose(bootstrap_ci("mean", a, n_resamples=300, seed=2), mean_loop, atol=1e-12)
    np.testing.assert_allclose(mean_vec, mean_loop, atol=1e-12)


def test_bootstrap_validation_names_the_parameter() -> None:
    x = np.arange(10.0)
    for level in (0.0, 1.0, 1.5, -0.2):
        with pytest.raises(
            ValueError, match=rf"level must be a finite number > 0 and < 1 \(got {re.escape(repr(level))}\)"
        ):
            bootstrap_ci("mean", x, level=level)
    with pytest.raises(ValueError, match=r"n_resamples must be an integer >= 1 \(got 0\)"):
        bootstrap_ci("mean", x, n_resamples=0)
    with pytest.raises(
        ValueError,
        match=r"samples must be of one length \(paired values on the same test images\) "
        r"\(got lengths \[10, 5\]\)",
    ):
        bootstrap_ci("mean_difference", x, x[:5])
    with pytest.raises(ValueError, match=r"samples\[0\] must be at least 1 value\(s\) long \(got 0 values\)"):
        bootstrap_ci("mean", np.array([]))
    with pytest.raises(ValueError, match=r"samples must be 2 array\(s\) for statistic 'spearman' \(got 1\)"):
        bootstrap_ci("spearman", x)
    with pytest.raises(
        ValueError,
        match=r"statistic must be one of 'mean', 'mean_difference', 'spearman' "
        r"\(got 'median'\)",
    ):
        bootstrap_ci("median", x)
    with pytest.raises(
        ValueError,
        match=r"samples must be at least one 1-D array of per-sample values after the "
        r"statistic \(got none\)",
    ):
        bootstrap_ci(np.mean)
    with pytest.raises(
        ValueError,
        match=r"statistic must be one of mean, mean_difference, spearman or a callable "
        r"\(got int\)",
    ):
        bootstrap_ci(3, x)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"vectorized must be False for a named statistic"):
        bootstrap_ci("mean", x, vectorized=True)


def test_bootstrap_spearman_at_book_scale_covers_the_population_value() -> None:
    """10,000 paired images, 2,000 resamples (C4's scale): the interval is narrow and covers the known truth.

    For a bivariate normal of correlation r, Spearman's correlation is (6 / pi) arcsin(r / 2); here r = 1 / sqrt(2).
    """
    rng = np.random.default_rng(7)
    a = rng.normal(size=10_000)
    b = a + rng.normal(size=10_000)
    truth = 6 / math.pi * math.asin(1 / math.sqrt(2) / 2)
    estimate, low, high = bootstrap_ci("spearman", a, b, n_resamples=2000)
    assert low < truth < high and low < estimate < high
    assert high - low < 0.05, "the standard error at N = 10,000 is about 0.006"


# ---------------------------------------------------------------------------------------------------------
# accuracy_interval
# ---------------------------------------------------------------------------------------------------------


def test_accuracy_interval_by_hand() -> None:
    # 7 of 10 correct; the percentile bootstrap written out: 2000 resamples of 10 indices drawn from
    # numpy.random.default_rng(seed), the mean of each, its 2.5% and 97.5% quantiles, all in percent.
    correct = [True] * 7 + [False] * 3
    rng = np.random.default_rng(5)
    means = np.array(correct, dtype=np.float64)[rng.integers(0, 10, size=(2000, 10))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    estimate, got_low, got_high = accuracy_interval(correct, seed=5)
    assert estimate == pytest.approx(70.0)
    assert got_low == pytest.approx(100 * low, abs=1e-9) and got_high == pytest.approx(100 * high, abs=1e-9)
    assert got_low < 70.0 < got_high
    # a bool tensor is the same per-image outcome
    assert accuracy_interval(torch.tensor(correct), seed=5) == (estimate, got_low, got_high)


def test_accuracy_interval_width_and_degenerate_cases() -> None:
    estimate, low, high = accuracy_interval([True] * 500 + [False] * 500)
    half_width = 1.96 * 100 * (0.25 / 1000) ** 0.5  # normal approximation: 3.1 points
    assert estimate == 50 and abs((high - low) / 2 - half_width) < 0.5
    assert accuracy_interval([True] * 20) == (100.0, 100.0, 100.0)  # no variability to resample
    assert accuracy_interval(np.zeros(20, dtype=bool)) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"correct must be 1-D \(one value per sample\) \(got shape \(1, 2\)\)"):
        accuracy_interval([[True, False]])
    with pytest.raises(ValueError, match=r"correct must be at least 1 value\(s\) long \(got 0 values\)"):
        accuracy_interval([])


# ---------------------------------------------------------------------------------------------------------
# Bootstraps from resampled indices: images only, and seeds then images
# ---------------------------------------------------------------------------------------------------------


def test_image_bootstrap_of_a_mean_is_bootstrap_ci_with_a_standard_error() -> None:
    values = np.random.default_rng(1).normal(size=300)
    e = image_bootstrap(lambda idx: values[idx].mean(axis=1), 300, n_resamples=1000, seed=5)
    assert e.interval == pytest.approx(bootstrap_ci("mean", values, n_resamples=1000, seed=5))
    assert e.se == pytest.approx(values.std(ddof=1) / math.sqrt(300), rel=0.15)
    assert isinstance(e, Estimate) and e.interval == (e.estimate, e.low, e.high)


def test_top_positions_are_the_first_k_of_a_stable_descending_sort() -> None:
    """Selection gives the sort's top k exactly: ties (the rule in a resample, which repeats images) broken
    towards lower positions, infinite values, NaN, every k from 1 to N."""
    rng = np.random.default_rng(4)
    values = rng.integers(0, 6, size=(40, 30)).astype(np.float64)  # six distinct values: ties everywhere
    values[3, :4] = np.inf
    values[5, 10:] = -np.inf
    values[7] = 2.0  # one value throughout
    nan_row = values[8].copy()
    nan_row[[2, 9, 20]] = np.nan  # after every number in the sort, in position order
    for k in range(1, 31):
        top = np.argsort(-values, axis=1, kind="stable")[:, :k]
        expected = np.zeros_like(values, dtype=bool)
        expected[np.arange(40)[:, None], top] = True
        assert np.array_equal(top_positions(values, k), expected), k
        with_nan = np.vstack([values, nan_row])
        expected = np.zeros_like(with_nan, dtype=bool)
        expected[np.arange(41)[:, None], np.argsort(-with_nan, axis=1, kind="stable")[:, :k]] = True
        assert np.array_equal(top_positions(with_nan, k), expected), k
    for bad in (0, 31):
        with pytest.raises(ValueError, match=rf"^k must be an integer >= 1 and <= 30 \(got {bad}\)"):
            top_positions(values, bad)


def test_spearman_bootstraps_are_bootstrap_ci_of_each_pair_bit_for_bit() -> None:
    rng = np.random.default_rng(6)
    base = rng.normal(size=300)
    values = {name: np.round(base + rng.normal(size=300) * s, 1) for name, s in (("A", 1), ("B", 2), ("C", 0.5))}
    values["D"] = torch.tensor(values["A"] * 2)  # a tensor, ranked as A is
    pairs = {"A-B": ("A", "B"), "B-C": ("B", "C"), "A-D": ("A", "D"), "C-A": ("C", "A")}
    shared = spearman_bootstraps(values, pairs, n_resamples=7000, level=0.9, seed=3)  # more than one chunk
    for label, (a, b) in pairs.items():
        assert shared[label] == bootstrap_ci("spearman", values[a], values[b], n_resamples=7000, level=0.9, seed=3)
    assert shared["A-D"][0] == 1.0
    with pytest.raises(ValueError, match=r"^values must be of one length"):
        spearman_bootstraps({"A": values["A"], "B": values["B"][:10]}, {"A-B": ("A", "B")})


def test_resampled_statistics_equal_the_plain_ones_row_by_row() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(size=50)
    b = a + rng.normal(size=50)
    b[:5] = b[5]  # ties
    idx = rng.integers(0, 50, size=(6, 50))
    idx[0] = np.arange(50)
    rho = resampled_spearman(a, b)(idx)
    jac = resampled_top_jaccard(a, b, fraction=0.2)(idx)
    for r, row in enumerate(idx):
        assert rho[r] == pytest.approx(stats.spearmanr(a[row], b[row]).statistic)
        assert jac[r] == pytest.approx(top_fraction_jaccard(a[row], b[row], fraction=0.2))
    assert rho[0] == pytest.approx(spearman(a, b))
    with pytest.raises(ValueError, match=r"^fraction must be a finite number > 0 and <= 1 \(got 0\)"):
        resampled_top_jaccard(a, b, fraction=0)
    with pytest.raises(ValueError, match=r"^b must be as long as a"):
        resampled_spearman(a, b[:10])
