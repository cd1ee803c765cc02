"""Tests for advlogits.logits: hand-computed statistics, rank helpers and the paired bootstrap."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from scipy import stats

from advlogits.logits import (
    bootstrap_ci,
    confidence,
    logit_gap,
    margins,
    max_logit,
    rank_difference,
    rank_normalise,
    sorted_logits,
    spearman,
    top_fraction_jaccard,
)

# Row 0: unique max at class 1; row 1: max tied between classes 0 and 1; row 2: max at class 2.
Z = torch.tensor(
    [
        [1.0, 3.0, 0.0, 2.0],
        [4.0, 4.0, 1.0, 0.0],
        [-1.0, 0.0, 2.0, -3.0],
    ]
)
Y = torch.tensor([1, 0, 3])  # row 0 correct, row 1 tied on top, row 2 wrong


def test_max_logit_by_hand() -> None:
    assert max_logit(Z).tolist() == [3.0, 4.0, 2.0]


def test_logit_gap_by_hand_and_zero_on_ties() -> None:
    # 3 - 2, 4 - 4 (tie), 2 - 0
    assert logit_gap(Z).tolist() == [1.0, 0.0, 2.0]


def test_sorted_logits_by_hand() -> None:
    expected = [[3.0, 2.0, 1.0, 0.0], [4.0, 4.0, 1.0, 0.0], [2.0, 0.0, -1.0, -3.0]]
    assert sorted_logits(Z).tolist() == expected


def test_confidence_of_prediction_by_hand() -> None:
    # e^3 / (e^1 + e^3 + e^0 + e^2) = 20.0855 / 31.1929
    # e^4 / (2 e^4 + e^1 + e^0)       = 54.5982 / 112.9146
    # e^2 / (e^-1 + e^0 + e^2 + e^-3) = 7.38906 / 8.80675
    expected = torch.tensor([0.6439142599, 0.4835349794, 0.8390245075])
    torch.testing.assert_close(confidence(Z), expected)


def test_confidence_of_given_class_by_hand() -> None:
    # class 1 of row 0 = its prediction; class 0 of row 1 = one of the tied maxima; class 3 of row 2:
    # e^-3 / (e^-1 + e^0 + e^2 + e^-3) = 0.049787 / 8.80675
    expected = torch.tensor([0.6439142599, 0.4835349794, 0.0056533027])
    torch.testing.assert_close(confidence(Z, Y), expected)


def test_confidence_matches_manual_softmax_on_random_logits() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(50, 7, generator=g) * 3
    y = torch.randint(0, 7, (50,), generator=g)
    p = torch.exp(z) / torch.exp(z).sum(dim=1, keepdim=True)
    torch.testing.assert_close(confidence(z), p.max(dim=1).values)
    torch.testing.assert_close(confidence(z, y), p[torch.arange(50), y])


def test_margins_by_hand_and_sign() -> None:
    # z_y - max_{j != y} z_j: 3 - 2 = 1 (correct), 4 - 4 = 0 (tie), -3 - 2 = -5 (wrong)
    assert margins(Z, Y).tolist() == [1.0, 0.0, -5.0]
    g = torch.Generator().manual_seed(1)
    z = torch.randn(200, 10, generator=g)
    y = torch.randint(0, 10, (200,), generator=g)
    m = margins(z, y)
    correct = z.argmax(dim=1) == y
    assert bool((m[correct] > 0).all()) and bool((m[~correct] < 0).all())


@pytest.mark.parametrize("bad", [torch.zeros(4), torch.zeros(3, 1), torch.zeros(3, 4, dtype=torch.long)])
def test_logit_functions_reject_bad_shapes_and_dtypes(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="logits must"):
        max_logit(bad)


def test_labels_validated() -> None:
    with pytest.raises(ValueError, match=r"y must have shape \(3,\)"):
        margins(Z, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"y must hold class indices in \[0, 4\)"):
        confidence(Z, torch.tensor([0, 1, 4]))


def test_spearman_hand_cases_and_scipy() -> None:
    a = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert spearman(a, [10.0, 20.0, 25.0, 100.0, 1000.0]) == pytest.approx(1.0)
    assert spearman(a, [5.0, 4.0, 3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    rng = np.random.default_rng(2)
    x = rng.normal(size=300)
    y = x + rng.normal(size=300)
    assert spearman(torch.from_numpy(x), y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    with pytest.raises(ValueError, match="same length"):
        spearman([1.0, 2.0, 3.0], [1.0, 2.0])


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
    with pytest.raises(ValueError, match="same length"):
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
        with pytest.raises(ValueError, match=r"fraction must be a number in \(0, 1\]"):
            top_fraction_jaccard(b, c, fraction=bad)


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
        with pytest.raises(ValueError, match=r"level must be in the open interval \(0, 1\)"):
            bootstrap_ci("mean", x, level=level)
    with pytest.raises(ValueError, match="n_resamples must be an integer >= 1"):
        bootstrap_ci("mean", x, n_resamples=0)
    with pytest.raises(ValueError, match="samples must all have the same length"):
        bootstrap_ci("mean_difference", x, x[:5])
    with pytest.raises(ValueError, match=r"samples\[0\] must hold at least 1 value"):
        bootstrap_ci("mean", np.array([]))
    with pytest.raises(ValueError, match="statistic 'spearman' needs 2 sample"):
        bootstrap_ci("spearman", x)
    with pytest.raises(ValueError, match="statistic must be one of"):
        bootstrap_ci("median", x)
    with pytest.raises(ValueError, match="samples: pass at least one"):
        bootstrap_ci(np.mean)


def test_bootstrap_spearman_is_fast_at_book_scale() -> None:
    rng = np.random.default_rng(7)
    a = rng.normal(size=10_000)
    b = a + rng.normal(size=10_000)
    start = time.perf_counter()
    estimate, low, high = bootstrap_ci("spearman", a, b, n_resamples=2000)
    elapsed = time.perf_counter() - start
    assert low < estimate < high
    assert elapsed < 10.0, f"spearman bootstrap took {elapsed:.1f} s"  # about 1.5 s on 2 CPU cores
