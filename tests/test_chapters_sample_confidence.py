"""Tests for advlogits.chapters.sample_confidence (chapter 3): rank correlations and overlaps of per-image values,
the images whose rank moves most, class counts, the image grids' data and the chapter's figures.

The decisions of claims C4 and C5 on these numbers are tested with the claims registry
(tests/test_chapters_claims.py); the confidence log-odds with advlogits.logits (tests/test_logits.py).
"""

from __future__ import annotations

import functools
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from scipy import stats

from advlogits.chapters import sample_confidence
from advlogits.chapters.claims import C5_FRACTION
from advlogits.chapters.sample_confidence import (
    class_counts,
    jaccard_overlaps,
    largest_rank_differences,
    spearman_intervals,
    tiles,
)
from advlogits.inference import percentile_tested
from advlogits.stats import bootstrap_ci, image_bootstrap_replicates, resampled_spearman, resampled_top_jaccard

# ---------------------------------------------------------------------------------------------------------
# C4's numbers: rank correlations with intervals
# ---------------------------------------------------------------------------------------------------------


def test_spearman_intervals_by_hand_and_equal_to_bootstrap_ci() -> None:
    a = np.arange(10.0)
    values = {"A": a, "B": a**3, "C": -a}
    out = spearman_intervals(values, {"same ranks": ("A", "B"), "reversed": ("A", "C")}, n_resamples=200)
    assert out["same ranks"] == pytest.approx((1.0, 1.0, 1.0))
    assert out["reversed"] == pytest.approx((-1.0, -1.0, -1.0))
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=100), rng.normal(size=100)
    got = spearman_intervals({"x": x, "w": x + w}, {"p": ("x", "w")}, n_resamples=300, seed=4)["p"]
    assert got == bootstrap_ci("spearman", x, x + w, n_resamples=300, seed=4)
    assert got[0] == pytest.approx(stats.spearmanr(x, x + w).statistic)
    assert got[1] < got[0] < got[2]


def test_spearman_intervals_name_a_missing_model() -> None:
    with pytest.raises(ValueError, match=r"pairs\['p'\] must be names of models in values \(A\) \(got 'Z'\)"):
        spearman_intervals({"A": [1.0, 2.0]}, {"p": ("A", "Z")})
    with pytest.raises(ValueError, match="pairs must be a mapping of at least one label"):
        spearman_intervals({"A": [1.0, 2.0]}, {})
    with pytest.raises(ValueError, match=r"pairs\['p'\] must be a \(model, model\) tuple of two names"):
        spearman_intervals({"A": [1.0, 2.0]}, {"p": ["A", "A"]})


# ---------------------------------------------------------------------------------------------------------
# C5's numbers: overlaps of the most-confident sets
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
    with pytest.raises(ValueError, match=r"pairs\['ab'\] must be names of models in values \(a\) \(got 'b'\)"):
        jaccard_overlaps({"a": a}, {"ab": ("a", "b")})


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
    with pytest.raises(ValueError, match=r"k must be an integer >= 1 \(got 0\); k is the number of images to select"):
        largest_rank_differences(a, b, k=0)


def test_class_counts_by_hand() -> None:
    y = torch.tensor([0, 1, 1, 2, 2, 2])
    table = class_counts(y, {"A": [1, 2, 3], "B": np.array([], dtype=int)}, class_names=("a", "b", "c"))
    assert list(table.columns) == ["A", "B", "evaluation subset"]
    assert list(table.index) == ["a", "b", "c"]
    assert table["A"].tolist() == [0, 2, 1]
    assert table["B"].tolist() == [0, 0, 0]
    assert table["evaluation subset"].tolist() == [1, 2, 3]
    assert class_counts(y.numpy(), {"A": [3, 4]}, class_names=("a", "b", "c"))["A"].tolist() == [0, 0, 2]
    with pytest.raises(ValueError, match=r"selections\['A'\] must be indices in \[0, 6\) \(got values in \[6, 6\]\)"):
        class_counts(y, {"A": [6]}, class_names=("a", "b", "c"))
    with pytest.raises(ValueError, match=r"y must be class indices in \[0, 2\) \(got values in \[0, 2\]\)"):
        class_counts(y, {"A": [0]}, class_names=("a", "b"))
    with pytest.raises(ValueError, match=r"y must be 1-D, one true class per evaluation image \(got shape \(2, 3\)\)"):
        class_counts(y.reshape(2, 3), {"A": [0]}, class_names=("a", "b", "c"))


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
    assert grid[0].predictions == (
        ("ST", "dog", pytest.approx(e**3 / (e**3 + 2))),
        ("AT", "emu", pytest.approx(e**2 / (e**2 + 2))),
    )
    assert grid[1].predictions == (("ST", "cat", pytest.approx(e**2 / (e**2 + 2))), ("AT", "cat", pytest.approx(1 / 3)))
    assert [t.difference for t in grid] == [0.3, 0.1]
    colour = tiles(torch.rand(2, 3, 4, 5), torch.tensor([0, 1]), {"m": torch.zeros(2, 2)}, [1], class_names=("a", "b"))
    assert colour[0].image.shape == (4, 5, 3) and math.isnan(colour[0].difference)


def test_tiles_validate_shapes_before_selecting() -> None:
    x, y = torch.zeros(3, 1, 2, 2), torch.tensor([0, 1, 2])
    names = ("a", "b", "c")
    with pytest.raises(
        ValueError,
        match=r"logits\['AT'\] must be of shape \(3, 3\), one row per image of x .*"
        r"\(got \(2, 3\)\)",
    ):
        tiles(x, y, {"AT": torch.zeros(2, 3)}, [0], class_names=names)
    with pytest.raises(ValueError, match=r"index must be indices in \[0, 3\) \(got values in \[3, 3\]\)"):
        tiles(x, y, {"AT": torch.zeros(3, 3)}, [3], class_names=names)
    with pytest.raises(
        ValueError,
        match=r"x must be a tensor of images \(N, C, H, W\) with C = 1 or 3 "
        r"\(got \(3, 2, 2\)\)",
    ):
        tiles(torch.zeros(3, 2, 2), y, {"AT": torch.zeros(3, 3)}, [0], class_names=names)
    with pytest.raises(ValueError, match="logits must be a mapping of at least one model name"):
        tiles(x, y, {}, [0], class_names=names)
    with pytest.raises(ValueError, match=r"difference must be one value per image of x \(3\) \(got 2 values\)"):
        tiles(x, y, {"AT": torch.zeros(3, 3)}, [0], class_names=names, difference=[1.0, 2.0])


# ---------------------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------------------


def test_figures_draw_what_they_are_given() -> None:
    a = np.arange(10.0)
    fig = sample_confidence.rank_scatter({"A": a, "B": -a}, {"A vs B": ("A", "B"), "A vs A": ("A", "A")})
    assert [ax.get_title() for ax in fig.axes] == ["A vs B: -1.00", "A vs A: 1.00"]
    np.testing.assert_allclose(fig.axes[0].collections[0].get_offsets()[:, 1], 1 - a / 9)
    assert (fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()) == ("rank under A", "rank under B")
    assert any("Spearman" in t.get_text() for t in fig.texts), "the titles' number is named once, below the panels"
    plt.close(fig)

    x, y = torch.rand(5, 1, 3, 3), torch.tensor([0, 1, 0, 1, 0])
    grid = tiles(x, y, {"ST": torch.randn(5, 2)}, [4, 1, 2], class_names=("a", "b"))
    fig = sample_confidence.tile_grid(grid, title="t", ncols=2)
    assert sum(len(ax.images) for ax in fig.axes) == 3 and len(fig.axes) == 4
    assert fig.axes[0].get_title(loc="left").startswith("#4, true: a\nST: ")
    assert [t.get_text() for t in fig.texts] == ["t"]
    plt.close(fig)
    fig = sample_confidence.tile_grid([], title="t")
    assert [t.get_text() for t in fig.texts] == ["t (no image qualifies)"]
    plt.close(fig)
    with pytest.raises(ValueError, match=r"ncols must be an integer >= 1 \(got 0\)"):
        sample_confidence.tile_grid(grid, title="t", ncols=0)

    table = class_counts(y, {"S": [0, 2]}, class_names=("a", "b"))
    fig = sample_confidence.class_count_bars(table)
    widths = [bar.get_width() for bar in fig.axes[0].patches]
    assert widths == pytest.approx([100.0, 0.0, 60.0, 40.0])  # S: a, b; then the evaluation subset: a, b
    assert fig.axes[0].get_xlabel() == "share of the images (%)"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["S (2 images)", "evaluation subset (5 images)"]
    plt.close(fig)


@pytest.mark.parametrize("statistic", ["spearman", "jaccard"])
def test_baseline_distances_rank_each_model_once_and_give_the_per_pair_numbers_bit_for_bit(statistic):
    """Each model's ranks (or top set) in a resample are computed once, whatever pairs it is in: the distances are
    those of the statistic computed pair by pair on the same resamples, exactly."""
    rng = np.random.default_rng(4)
    base = rng.normal(size=400)
    values = {name: np.round(base + s * rng.normal(size=400), 1) for name, s in (("ST", 0.5), ("AT", 2), ("ST'", 0.6))}
    values["AT'"] = torch.tensor(np.round(base + 2 * rng.normal(size=400), 1))  # ties, and a tensor
    baselines = {"ST vs ST'": ("ST", "ST'"), "AT vs AT'": ("AT", "AT'")}
    per_pair = {"spearman": resampled_spearman, "jaccard": functools.partial(resampled_top_jaccard, fraction=0.2)}
    pairs = {**baselines, "pair": ("ST", "AT")}
    pair_of = {name: per_pair[statistic](values[a], values[b]) for name, (a, b) in pairs.items()}

    def distances(idx):
        each = np.stack([pair_of[name](idx) for name in baselines], axis=1)
        return np.concatenate([each, each.min(axis=1, keepdims=True)], axis=1) - pair_of["pair"](idx)[:, None]

    estimate, replicates = image_bootstrap_replicates(distances, 400, n_resamples=3000, seed=5)
    shared = sample_confidence.baseline_distances(
        values, ("ST", "AT"), baselines, statistic=statistic, threshold=0.1, fraction=0.2, n_resamples=3000, seed=5
    )
    for k, name in enumerate([*baselines, "closest"]):
        assert shared[name] == percentile_tested(float(estimate[k]), replicates[:, k], threshold=0.1), name


def test_baseline_distances_are_paired_and_the_closest_is_their_minimum():
    rng = np.random.default_rng(0)
    a = rng.normal(size=600)
    values = {
        "ST": a,
        "AT": a + 2.0 * rng.normal(size=600),
        "ST'": a + 0.3 * rng.normal(size=600),
        "AT'": a + 2.0 * rng.normal(size=600),
    }
    baselines = {"ST vs ST'": ("ST", "ST'"), "AT vs AT'": ("AT", "AT'")}
    rho = sample_confidence.baseline_distances(
        values, ("ST", "AT"), baselines, statistic="spearman", threshold=0.1, n_resamples=2000
    )
    assert rho["ST vs ST'"].estimate == pytest.approx(
        stats.spearmanr(a, values["ST'"]).statistic - stats.spearmanr(a, values["AT"]).statistic
    )
    assert rho["closest"].estimate == pytest.approx(min(rho["ST vs ST'"].estimate, rho["AT vs AT'"].estimate))
    assert rho["ST vs ST'"].low > 0.3, "ST' agrees with ST far more than AT does"
    assert rho["closest"].high <= rho["ST vs ST'"].high
    assert rho["ST vs ST'"].p_above == 0.0 and rho["ST vs ST'"].n_resamples == 2000  # no replicate at or below 0.1
    assert 0 < rho["ST vs ST'"].mc_low < 0.01 and 0 < rho["ST vs ST'"].mc_high < 0.01
    again = sample_confidence.baseline_distances(
        values, ("ST", "AT"), baselines, statistic="spearman", threshold=0.1, n_resamples=2000, seed=1
    )
    assert abs(again["ST vs ST'"].low - rho["ST vs ST'"].low) < 4 * rho["ST vs ST'"].mc_low, "another bootstrap seed"
    jac = sample_confidence.baseline_distances(
        values, ("ST", "AT"), baselines, statistic="jaccard", threshold=0.05, fraction=C5_FRACTION, n_resamples=400
    )
    assert jac["closest"].estimate == pytest.approx(min(jac["ST vs ST'"].estimate, jac["AT vs AT'"].estimate))
    with pytest.raises(ValueError, match=r"^statistic must be one of 'spearman', 'jaccard' \(got 'pearson'\)"):
        sample_confidence.baseline_distances(values, ("ST", "AT"), baselines, statistic="pearson", threshold=0.1)
    with pytest.raises(ValueError, match=r"^pairs\[\"AT vs AT'\"\] must be names of models in values \(AT, ST, ST'\)"):
        sample_confidence.baseline_distances(
            {k: v for k, v in values.items() if k != "AT'"},
            ("ST", "AT"),
            baselines,
            statistic="spearman",
            threshold=0.1,
        )
