"""Tests for advlogits.agreement: claim criteria C4/C5 on hand-made numbers, rank selections, counts, grid data."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from scipy import stats

from advlogits import agreement
from advlogits.agreement import (
    C4_MIN_GAP,
    C5_FRACTION,
    c4_verdict,
    c5_verdict,
    class_counts,
    confidence_log_odds,
    jaccard_overlaps,
    largest_rank_differences,
    spearman_intervals,
    tiles,
)
from advlogits.logits import bootstrap_ci, confidence

# ---------------------------------------------------------------------------------------------------------
# confidence_log_odds
# ---------------------------------------------------------------------------------------------------------


def test_log_odds_is_the_logit_of_the_softmax_confidence() -> None:
    torch.manual_seed(0)
    z = torch.randn(50, 10) * 3
    y = torch.randint(0, 10, (50,))
    for labels in (None, y):
        p = confidence(z.double(), labels)
        expected = torch.log(p / (1 - p))
        torch.testing.assert_close(confidence_log_odds(z, labels), expected, rtol=1e-9, atol=1e-9)
    assert confidence_log_odds(z).dtype == torch.float64


def test_log_odds_separates_images_whose_float32_confidence_rounds_to_one() -> None:
    z = torch.tensor([[50.0, 0.0, 0.0], [40.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert confidence(z)[:2].tolist() == [1.0, 1.0]  # tied after rounding
    # z_top - log(e^0 + e^0) = z_top - log 2; uniform row: 0 - log 2 (p = 1/3, odds 1/2)
    expected = torch.tensor([50 - math.log(2), 40 - math.log(2), -math.log(2)], dtype=torch.float64)
    torch.testing.assert_close(confidence_log_odds(z), expected)


def test_log_odds_of_a_tied_top_and_of_a_given_class_by_hand() -> None:
    z = torch.tensor([[1.0, 1.0, 0.0]])
    # predicted class 0 (first maximum): 1 - log(e^1 + e^0)
    assert confidence_log_odds(z).item() == pytest.approx(1 - math.log(math.e + 1))
    # true class 2: 0 - log(2 e)
    assert confidence_log_odds(z, torch.tensor([2])).item() == pytest.approx(-math.log(2 * math.e))


def test_log_odds_validates_its_inputs() -> None:
    with pytest.raises(ValueError, match="logits must have shape"):
        confidence_log_odds(torch.zeros(3))
    with pytest.raises(ValueError, match=r"y must hold class indices in \[0, 3\)"):
        confidence_log_odds(torch.zeros(2, 3), torch.tensor([0, 3]))


# ---------------------------------------------------------------------------------------------------------
# C4
# ---------------------------------------------------------------------------------------------------------


def test_spearman_intervals_by_hand_and_equal_to_bootstrap_ci() -> None:
    a = np.arange(10.0)
    values = {"A": a, "B": a ** 3, "C": -a}
    out = spearman_intervals(values, {"same ranks": ("A", "B"), "reversed": ("A", "C")}, n_resamples=200)
    assert out["same ranks"] == pytest.approx((1.0, 1.0, 1.0))
    assert out["reversed"] == pytest.approx((-1.0, -1.0, -1.0))
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=100), rng.normal(size=100)
    got = spearman_intervals({"x": x, "w": x + w}, {"p": ("x", "w")}, n_resamples=300, seed=4)["p"]
    assert got == bootstrap_ci("spearman", x, x + w, n_resamples=300, seed=4)
    assert got[0] == pytest.approx(stats.spearmanr(x, x + w).statistic)


def test_spearman_intervals_name_a_missing_model() -> None:
    with pytest.raises(ValueError, match=r"pairs\['p'\] names model 'Z', which is not in values; values holds \['A'\]"):
        spearman_intervals({"A": [1.0, 2.0]}, {"p": ("A", "Z")})
    with pytest.raises(ValueError, match="pairs must map at least one label"):
        spearman_intervals({"A": [1.0, 2.0]}, {})


BASE_ST = (0.80, 0.75, 0.85)
BASE_AT = (0.70, 0.60, 0.75)


def test_c4_holds_when_clearly_below_both_baselines() -> None:
    verdict = c4_verdict((0.50, 0.45, 0.55), {"ST": BASE_ST, "AT": BASE_AT})
    assert verdict["holds"] is True
    assert verdict["checks"]["ST"]["gap"] == pytest.approx(0.30)
    assert verdict["checks"]["AT"]["gap"] == pytest.approx(0.20)
    assert verdict["checks"]["AT"]["ci_below"] is True


def test_c4_fails_on_a_small_gap_even_with_separated_intervals() -> None:
    verdict = c4_verdict((0.62, 0.55, 0.59), {"AT": BASE_AT})  # gap 0.08, interval 0.59 < 0.60
    assert verdict["checks"]["AT"] == {"gap": pytest.approx(0.08), "gap_ok": False, "ci_below": True}
    assert verdict["holds"] is False


def test_c4_fails_on_overlapping_intervals_even_with_a_large_gap() -> None:
    verdict = c4_verdict((0.40, 0.20, 0.76), {"ST": BASE_ST})  # gap 0.4, but 0.76 >= 0.75
    assert verdict["checks"]["ST"]["gap_ok"] is True
    assert verdict["checks"]["ST"]["ci_below"] is False
    assert verdict["holds"] is False


def test_c4_needs_every_baseline() -> None:
    # clearly below the ST baseline, not below the AT one (gap 0.05)
    verdict = c4_verdict((0.65, 0.62, 0.68), {"ST": BASE_ST, "AT": BASE_AT})
    assert verdict["checks"]["ST"]["gap_ok"] and verdict["checks"]["ST"]["ci_below"]
    assert verdict["holds"] is False


def test_c4_boundaries_gap_of_exactly_the_minimum_holds_touching_intervals_fail() -> None:
    assert C4_MIN_GAP == 0.1
    assert c4_verdict((0.8, 0.7, 0.74), {"b": (0.9, 0.75, 0.95)})["holds"] is True  # 0.9 - 0.8 in floats
    assert c4_verdict((0.81, 0.7, 0.74), {"b": (0.9, 0.75, 0.95)})["holds"] is False  # gap 0.09
    assert c4_verdict((0.5, 0.4, 0.75), {"b": (0.9, 0.75, 0.95)})["holds"] is False  # high == low


def test_c4_nan_fails_and_bad_intervals_raise() -> None:
    assert c4_verdict((math.nan, math.nan, math.nan), {"b": BASE_ST})["holds"] is False
    assert c4_verdict((0.1, 0.0, 0.2), {"b": (math.nan, math.nan, math.nan)})["holds"] is False
    with pytest.raises(ValueError, match=r"pair must be an \(estimate, low, high\) tuple"):
        c4_verdict((0.1, 0.2), {"b": BASE_ST})
    with pytest.raises(ValueError, match=r"baselines\['b'\] must have low <= high; got low=0.9, high=0.8"):
        c4_verdict((0.1, 0.0, 0.2), {"b": (0.85, 0.9, 0.8)})
    with pytest.raises(ValueError, match="baselines must hold at least one"):
        c4_verdict((0.1, 0.0, 0.2), {})


# ---------------------------------------------------------------------------------------------------------
# C5
# ---------------------------------------------------------------------------------------------------------


def test_jaccard_overlaps_by_hand() -> None:
    a = np.arange(20.0)  # top 10% (2 images): {19, 18}
    b = a.copy()
    b[18] = -1.0  # top: {19, 17}
    c = -a  # top: {0, 1}
    out = jaccard_overlaps({"a": a, "b": b, "c": c}, {"ab": ("a", "b"), "ac": ("a", "c"), "aa": ("a", "a")})
    assert C5_FRACTION == 0.1
    assert out == {"ab": pytest.approx(1 / 3), "ac": 0.0, "aa": 1.0}
    assert jaccard_overlaps({"a": a, "b": b}, {"ab": ("a", "b")}, fraction=0.5)["ab"] == pytest.approx(9 / 11)


def test_c5_holds_only_when_strictly_below_every_baseline() -> None:
    assert c5_verdict(0.2, {"ST": 0.5, "AT": 0.4}) == {"holds": True, "below": {"ST": True, "AT": True}}
    assert c5_verdict(0.4, {"ST": 0.5, "AT": 0.4}) == {"holds": False, "below": {"ST": True, "AT": False}}
    assert c5_verdict(0.6, {"ST": 0.5, "AT": 0.4})["holds"] is False
    assert c5_verdict(math.nan, {"ST": 0.5})["holds"] is False
    with pytest.raises(ValueError, match=r"baselines\['ST'\] must be a Jaccard overlap"):
        c5_verdict(0.2, {"ST": "0.5"})
    with pytest.raises(ValueError, match="baselines must hold at least one"):
        c5_verdict(0.2, {})


# ---------------------------------------------------------------------------------------------------------
# Selections, counts, grid data
# ---------------------------------------------------------------------------------------------------------


def test_largest_rank_differences_by_hand() -> None:
    a = [0.0, 1.0, 2.0, 3.0, 4.0]
    b = [4.0, 3.0, 2.0, 1.0, 0.0]  # rank differences a - b: -1, -0.5, 0, 0.5, 1
    assert largest_rank_differences(a, b, k=2).tolist() == [4, 3]
    assert largest_rank_differences(b, a, k=2).tolist() == [0, 1]
    assert largest_rank_differences(a, b, k=5).tolist() == [4, 3]  # only positive differences qualify
    assert largest_rank_differences(a, a, k=3).tolist() == []


def test_largest_rank_differences_ties_go_to_the_lower_index_and_directions_are_disjoint() -> None:
    assert largest_rank_differences([1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0], k=1).tolist() == [0]
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=200), rng.normal(size=200)
    up, down = largest_rank_differences(a, b, k=150), largest_rank_differences(b, a, k=150)
    assert not set(up.tolist()) & set(down.tolist())
    d = stats.rankdata(a) - stats.rankdata(b)
    assert np.all(np.diff(d[up]) <= 0) and d[up[0]] == d.max()
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        largest_rank_differences(a, b, k=0)


def test_class_counts_by_hand() -> None:
    y = torch.tensor([0, 1, 1, 2, 2, 2])
    table = class_counts(y, {"A": [1, 2, 3], "B": np.array([], dtype=int)}, class_names=("a", "b", "c"))
    assert list(table.columns) == ["A", "B", "evaluation subset"]
    assert list(table.index) == ["a", "b", "c"]
    assert table["A"].tolist() == [0, 2, 1]
    assert table["B"].tolist() == [0, 0, 0]
    assert table["evaluation subset"].tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match=r"selections\['A'\] must hold indices in \[0, 6\)"):
        class_counts(y, {"A": [6]}, class_names=("a", "b", "c"))
    with pytest.raises(ValueError, match=r"y must hold class indices in \[0, 2\)"):
        class_counts(y, {"A": [0]}, class_names=("a", "b"))


def test_tiles_carry_the_selected_images_labels_and_predictions() -> None:
    x = torch.arange(12, dtype=torch.float32).reshape(3, 1, 2, 2) / 12
    y = torch.tensor([0, 1, 2])
    st = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 3.0, 0.0]])
    at = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]])
    grid = tiles(x, y, {"ST": st, "AT": at}, [2, 0], class_names=("cat", "dog", "emu"), difference=[0.1, 0.2, 0.3])
    assert [t.index for t in grid] == [2, 0]
    np.testing.assert_array_equal(grid[0].image, x[2, 0].double().numpy())
    assert [t.label for t in grid] == ["emu", "cat"]
    e = math.e
    assert grid[0].predictions == (("ST", "dog", pytest.approx(e**3 / (e**3 + 2))),
                                   ("AT", "emu", pytest.approx(e**2 / (e**2 + 2))))
    assert grid[1].predictions == (("ST", "cat", pytest.approx(e**2 / (e**2 + 2))), ("AT", "cat", pytest.approx(1 / 3)))
    assert [t.difference for t in grid] == [0.3, 0.1]
    colour = tiles(torch.rand(2, 3, 4, 5), torch.tensor([0, 1]), {"m": torch.zeros(2, 2)}, [1], class_names=("a", "b"))
    assert colour[0].image.shape == (4, 5, 3) and math.isnan(colour[0].difference)


def test_tiles_validate_shapes_before_selecting() -> None:
    x, y = torch.zeros(3, 1, 2, 2), torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match=r"logits\['AT'\] must have shape \(3, 3\)"):
        tiles(x, y, {"AT": torch.zeros(2, 3)}, [0], class_names=("a", "b", "c"))
    with pytest.raises(ValueError, match=r"index must hold indices in \[0, 3\)"):
        tiles(x, y, {"AT": torch.zeros(3, 3)}, [3], class_names=("a", "b", "c"))
    with pytest.raises(ValueError, match=r"x must be a tensor of images \(N, C, H, W\)"):
        tiles(torch.zeros(3, 2, 2), y, {"AT": torch.zeros(3, 3)}, [0], class_names=("a", "b", "c"))


# ---------------------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------------------


def test_figures_draw_what_they_are_given() -> None:
    a = np.arange(10.0)
    fig = agreement.rank_scatter({"A": a, "B": -a}, {"A vs B": ("A", "B"), "A vs A": ("A", "A")})
    assert [ax.get_title() for ax in fig.axes] == ["A vs B: Spearman -1.00", "A vs A: Spearman 1.00"]
    np.testing.assert_allclose(fig.axes[0].collections[0].get_offsets()[:, 1], 1 - a / 9)
    plt.close(fig)

    x, y = torch.rand(5, 1, 3, 3), torch.tensor([0, 1, 0, 1, 0])
    grid = tiles(x, y, {"ST": torch.randn(5, 2)}, [4, 1, 2], class_names=("a", "b"))
    fig = agreement.tile_grid(grid, title="t", ncols=2)
    assert sum(len(ax.images) for ax in fig.axes) == 3 and len(fig.axes) == 4
    assert fig.axes[0].get_title(loc="left").startswith("#4 true: a\nST: ")
    plt.close(fig)

    table = class_counts(y, {"S": [0, 2]}, class_names=("a", "b"))
    fig = agreement.class_count_bars(table)
    heights = [bar.get_height() for bar in fig.axes[0].patches]
    assert heights == pytest.approx([100.0, 0.0, 60.0, 40.0])  # S: a, b; then the evaluation subset: a, b
    plt.close(fig)
