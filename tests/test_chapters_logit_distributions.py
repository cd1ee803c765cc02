"""Tests for advlogits.chapters.logit_distributions (chapter 2): the logit statistics with bootstrap intervals, the
sorted-logit curve, the margin-drop summary, the RobustBench model list, and the chapter's figures."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from scipy import stats

from advlogits import margins, profiles
from advlogits.chapters import claims
from advlogits.chapters import logit_distributions as chapter
from advlogits.chapters.verdicts import side_verdict
from advlogits.logits import logit_gap, max_logit

RB_NAME = "Ding2020MMA"  # smallest CIFAR-10 Linf zoo entry (WRN-28-4)


# ---------------------------------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------------------------------


def test_summarise_and_compare_on_hand_made_logits():
    g = torch.Generator().manual_seed(0)
    st = torch.randn(200, 10, generator=g) * 3
    at = st - 1.0  # every logit one lower: max logit lower by exactly 1, gaps unchanged
    assert set(chapter.STATISTICS) == {"max logit", "logit gap"} and chapter.N_RESAMPLES == 20_000
    s = chapter.summarise(st, n_resamples=500)
    assert set(s) == {"max logit", "logit gap"}
    assert s["max logit"][0] == pytest.approx(max_logit(st).mean().item(), rel=1e-6)
    assert s["logit gap"][0] == pytest.approx(logit_gap(st).mean().item(), rel=1e-6)
    assert s["logit gap"][1] < s["logit gap"][0] < s["logit gap"][2]
    assert chapter.summarise(st, n_resamples=500) == s  # seeded: the same interval again
    diff = chapter.compare(at, st, n_resamples=500)
    assert diff["max logit"] == pytest.approx((-1.0, -1.0, -1.0), abs=1e-5)
    assert diff["logit gap"] == pytest.approx((0.0, 0.0, 0.0), abs=1e-5)
    assert side_verdict(*diff["max logit"][1:], 0.0, "below") == "reproduced"
    assert side_verdict(*diff["logit gap"][1:], 0.0, "below") != "reproduced"
    assert side_verdict(-1.0, 0.1, 0.0, "below") == "inconclusive"  # CI includes 0
    with pytest.raises(
        ValueError,
        match=r"logits_b must be the same images' logits as logits_a, of shape "
        r"\(10, 10\) \(got \(200, 10\)\)",
    ):
        chapter.compare(at[:10], st)


def test_compare_is_paired():
    # every logit of image i moves by the same shift s_i (mean -1, sd 0.05), on images whose max logits spread
    # over tens of logit units: the paired interval reflects the spread of the shifts only
    g = torch.Generator().manual_seed(1)
    a = torch.randn(100, 5, generator=g) * 10
    shift = -1.0 + 0.05 * torch.randn(100, 1, generator=g)
    diff = chapter.compare(a + shift, a, n_resamples=300)
    estimate, low, high = diff["max logit"]
    assert estimate == pytest.approx(shift.mean().item(), abs=1e-5)
    assert low < estimate < high and high - low < 0.05
    assert diff["logit gap"] == pytest.approx((0.0, 0.0, 0.0), abs=1e-4)
    own = chapter.summarise(a, n_resamples=300)["max logit"]
    assert own[2] - own[1] > 1.0  # each model's own interval is far wider


def test_sorted_logit_curve_by_hand():
    z = torch.tensor([[3.0, 1.0, 2.0], [0.0, 6.0, 3.0]])
    curve = chapter.sorted_logit_curve(z, n_resamples=200)
    assert set(curve) == {"mean", "low", "high"}
    np.testing.assert_allclose(curve["mean"], [4.5, 2.5, 0.5])
    assert (curve["low"] <= curve["mean"]).all() and (curve["mean"] <= curve["high"]).all()
    # two images: every resample is one of (a, a), (a, b), (b, b), so the bounds are the images' own values
    np.testing.assert_allclose(curve["low"], [3.0, 2.0, 0.0])
    np.testing.assert_allclose(curve["high"], [6.0, 3.0, 1.0])


def test_drop_summary_by_hand():
    s = chapter.drop_summary({"clean": [1.0, 2.0], "first_order": [0.5, 1.0], "pgd": [0.0, 1.5], "grad_l1": [1, 3]})
    assert s["observed"] == pytest.approx(0.75) and s["predicted"] == pytest.approx(0.75)
    assert s["ratio"] == pytest.approx(1.0) and s["beyond_first_order"] == 0.5
    assert s["correlation"] == pytest.approx(-1.0) and s["grad_l1"] == 2.0
    one = chapter.drop_summary({"clean": [1.0], "first_order": [1.5], "pgd": [0.5], "grad_l1": [2.0]})
    assert one["observed"] == 0.5 and one["predicted"] == -0.5
    assert math.isnan(one["ratio"]) and math.isnan(one["correlation"])  # no positive predicted drop, one image
    assert one["beyond_first_order"] == 1.0


def test_drop_summary_of_a_linear_model_has_ratio_one():
    """On a linear model the first-order drop is exact, and PGD reaches it: the observed/predicted ratio is 1."""
    g = torch.Generator().manual_seed(6)
    w, b = torch.randn(4, 20, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)
    x = torch.rand(30, 20, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    x[:, :3] = torch.tensor([0.0, 1.0, 0.03], dtype=torch.float64)  # pixels on and near the box's faces
    x, y = x.reshape(30, 1, 4, 5), torch.arange(30) % 4
    drops = margins.margin_drops(
        margins.linear_model_from(w, b),
        x,
        y,
        eps=0.1,
        alpha=0.025,
        steps=20,
        generator=torch.Generator().manual_seed(0),
        batch_size=7,
    )
    summary = chapter.drop_summary({k: v.tolist() for k, v in drops.items()})
    assert summary["ratio"] == pytest.approx(1.0, abs=1e-4)
    assert summary["correlation"] == pytest.approx(1.0, abs=1e-4)
    assert summary["observed"] > 0


# ---------------------------------------------------------------------------------------------------------
# RobustBench models
# ---------------------------------------------------------------------------------------------------------


def test_robustbench_model_list():
    smoke, paper = profiles.resolve("smoke", device="cpu"), profiles.resolve("paper", device="cpu")
    assert chapter.robustbench_models(smoke, None) == ()
    assert chapter.robustbench_models(paper, None) == chapter.PAPER_ROBUSTBENCH_MODELS
    assert len(chapter.PAPER_ROBUSTBENCH_MODELS) == 4
    assert chapter.robustbench_models(paper, []) == ()
    assert chapter.robustbench_models(smoke, []) == ()
    assert chapter.robustbench_models(paper, [RB_NAME]) == (RB_NAME,)
    with pytest.raises(
        ValueError,
        match=r"robustbench_models must be empty for profile 'smoke' \(they are CIFAR-10 "
        r"models and it uses fashion-mnist\) \(got \['Ding2020MMA'\]\); "
        r"pass robustbench_models=\[\]",
    ):
        chapter.robustbench_models(smoke, [RB_NAME])
    with pytest.raises(
        ValueError,
        match=r"robustbench_models must be a list of RobustBench model names.*"
        r"\(got 'Ding2020MMA'\)",
    ):
        chapter.robustbench_models(paper, RB_NAME)
    with pytest.raises(ValueError, match="robustbench_models must be a list of RobustBench model names"):
        chapter.robustbench_models(paper, [RB_NAME, 3])


# ---------------------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------------------


def test_figures_are_labelled():
    iv = {"max logit": (2.0, 1.8, 2.2), "logit gap": (1.0, 0.9, 1.1)}
    figs = [
        chapter.sorted_logit_curves({"ST": chapter.sorted_logit_curve(torch.randn(20, 4), n_resamples=50)}),
        chapter.eps_sweep({"net": {0.0: iv, 0.1: iv}}),
        chapter.weight_differences({"net": {0.0: 2.0, 0.1: 1.0}}),
        chapter.closed_form_check(
            {
                "a": {
                    "closed_form": torch.tensor([[math.inf, 1.0]]),
                    "pgd": torch.tensor([[math.inf, 1.0]]),
                    "error": torch.zeros(1, 2),
                }
            }
        ),
        chapter.margin_drop_figure({"ST": {"clean": [1.0, 2.0], "first_order": [0.5, 1.0], "pgd": [0.2, 1.2]}}),
    ]
    for fig in figs:
        for ax in fig.axes:
            if ax.get_visible():
                assert ax.get_xlabel() and ax.get_ylabel()
        plt.close(fig)
    assert figs[2].axes[0].lines[0].get_ydata().tolist() == [1.0, 0.5]  # relative to eps = 0


def test_sorted_logit_curves_draw_one_line_and_band_per_model():
    z = torch.tensor([[3.0, 1.0, 2.0], [0.0, 6.0, 3.0]])
    curves = {
        "ST": chapter.sorted_logit_curve(z, n_resamples=50),
        "AT": chapter.sorted_logit_curve(z - 1.0, n_resamples=50),
    }
    fig = chapter.sorted_logit_curves(curves)
    (ax,) = fig.axes
    model_lines = [line for line in ax.lines if line.get_label() in curves]
    assert [line.get_label() for line in model_lines] == ["ST", "AT"]
    assert model_lines[0].get_xdata().tolist() == [1, 2, 3]
    np.testing.assert_allclose(model_lines[0].get_ydata(), [4.5, 2.5, 0.5])
    np.testing.assert_allclose(model_lines[1].get_ydata(), [3.5, 1.5, -0.5])
    assert len(ax.collections) == 2  # one CI band per model
    assert ax.get_xlabel() == "rank k of the logit within its image (1 = largest)"
    assert ax.get_ylabel() == "mean k-th logit (logit units)"
    plt.close(fig)


def test_eps_sweep_draws_every_family_and_norm():
    iv = {"max logit": (2.0, 1.8, 2.2), "logit gap": (1.0, 0.9, 1.1)}
    small = {"max logit": (1.0, 0.8, 1.2), "logit gap": (0.5, 0.4, 0.6)}
    series = {"network": {0.0: iv, 0.1: small, 0.05: iv}, "linear": {0.0: iv, 0.1: small}}
    norms = {"network": {0.1: 1.0, 0.0: 4.0}, "linear": {0.0: 2.0, 0.1: 2.0}}
    fig = chapter.eps_sweep(series)
    assert len(fig.axes) == 2
    for ax, stat in zip(fig.axes, ("max logit", "logit gap")):
        assert len(ax.containers) == 2  # one errorbar series per family
        assert ax.get_ylabel() == f"mean {stat} (logit units)"
        assert ax.get_xlabel() == "training eps (pixel units)"
    network = fig.axes[1].containers[0].lines[0]
    assert network.get_xdata().tolist() == [0.0, 0.05, 0.1]  # sorted by eps
    assert network.get_ydata().tolist() == [1.0, 1.0, 0.5]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["network", "linear"]
    plt.close(fig)
    fig = chapter.weight_differences(norms)
    model_lines = [line for line in fig.axes[0].lines if line.get_label() in norms]
    assert [line.get_ydata().tolist() for line in model_lines] == [[1.0, 0.25], [1.0, 1.0]]
    plt.close(fig)


def test_closed_form_check_has_one_panel_per_check_and_skips_infinite_pairs():
    check = {
        "closed_form": torch.tensor([[math.inf, 1.0, -0.5]]),
        "pgd": torch.tensor([[math.inf, 1.0, -0.4]]),
        "error": torch.tensor([[0.0, 0.0, 0.1]]),
    }
    fig = chapter.closed_form_check({"a": check, "b": check, "c": check})
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(fig.axes) == 4 and len(visible) == 3  # a 2 x 2 grid, the fourth panel hidden
    for ax in visible:
        assert len(ax.lines) == 1 and len(ax.collections) == 1  # the diagonal and the pairs
        np.testing.assert_allclose(ax.collections[0].get_offsets(), [[1.0, 1.0], [-0.5, -0.4]])
        assert ax.get_xlabel() == "closed form (logit units)"
    assert visible[0].get_title() == "a: max |diff.| 1e-01"
    plt.close(fig)


def test_margin_drop_figure_plots_predicted_against_observed_drops():
    drops = {
        "ST": {"clean": [1.0, 2.0], "first_order": [0.5, 1.0], "pgd": [0.2, 1.2]},
        "AT": {"clean": [3.0, 2.0], "first_order": [2.0, 1.0], "pgd": [1.0, 0.5]},
    }
    fig = chapter.margin_drop_figure(drops)
    assert [ax.get_title() for ax in fig.axes] == ["ST", "AT"]
    st = fig.axes[0]
    np.testing.assert_allclose(st.collections[0].get_offsets(), [[0.5, 0.8], [1.0, 0.8]])
    assert st.lines[0].get_xdata().tolist() == [0, 1.0]  # the diagonal up to the largest drop
    assert (st.get_xlabel(), st.get_ylabel()) == ("first-order drop (logit units)", "PGD drop (logit units)")
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------
# The comparisons of C1 and C2, and the statistic of C3
# ---------------------------------------------------------------------------------------------------------


def test_paired_differences_cover_both_pairs_the_correct_images_and_the_budget_matched_pair():
    g = torch.Generator().manual_seed(0)
    st = 3 * torch.randn(300, 10, generator=g)
    y = st.argmax(1)
    y[:60] = (y[:60] + 1) % 10  # ST is wrong on the first 60 images
    z = {"ST": st, "AT": st / 2, "ST'": st + 0.1, "AT'": st / 2 + 0.1}
    out = chapter.paired_differences(z, y, budget_matched=(st, st / 3))
    assert list(out) == ["max logit", "logit gap"]
    names = list(out["max logit"])
    assert names[:2] == ["ST/AT, all images", "ST'/AT', all images"]
    assert names[2] == "ST/AT, both correct (240 images)" and names[-1] == "budget-matched pair (eps sweep)"
    for stat, f in chapter.STATISTICS.items():
        assert out[stat]["ST/AT, all images"][0] == pytest.approx((f(st / 2) - f(st)).mean().item(), rel=1e-5)
        both = slice(60, None)
        assert out[stat][names[2]][0] == pytest.approx((f(st[both] / 2) - f(st[both])).mean().item(), rel=1e-5)
        assert out[stat]["budget-matched pair (eps sweep)"][0] == pytest.approx(
            (f(st / 3) - f(st)).mean().item(), rel=1e-5
        )
        assert all(t.high < 0 and t.p_below < 0.025 for t in out[stat].values())
    main = out["logit gap"]["ST/AT, all images"]
    reference = stats.ttest_rel(logit_gap(st / 2).numpy(), logit_gap(st).numpy()).confidence_interval(0.95)
    assert (main.low, main.high) == pytest.approx((reference.low, reference.high), rel=1e-5)
    assert "budget-matched pair (eps sweep)" not in chapter.paired_differences(z, y, budget_matched=None)["logit gap"]


def _sweep(rng, shrink, seeds=(0, 1, 2), radii=(0.05, 0.1, 0.2), n=400):
    """Per seed: per-image gaps by radius (eps 0 the standard model) with the gap shrinking by ``shrink(eps, P)``
    (P the seed's per-image penalty times eps), and the seed's per-image penalty per unit eps."""
    gaps, penalty = {}, {}
    for s in seeds:
        penalty[s] = rng.uniform(1, 3, size=n) * (1 + 0.1 * s)
        base = rng.uniform(2, 6, size=n)
        gaps[s] = {0.0: base, **{e: base - shrink(e, e * penalty[s]) for e in radii}}
    return gaps, penalty


def test_the_proportionality_fit_recovers_a_planted_constant_and_can_fail():
    """Shrinkage exactly 0.5 times the penalty: slope 0.5, intercept 0, every ratio 0.5. Shrinkage with an offset
    (0.3 + 0.2 P, still growing with the penalty, so C2 and a positive slope hold): the intercept excludes 0."""
    rng = np.random.default_rng(0)
    gaps, penalty = _sweep(rng, lambda e, p: 0.5 * p)
    fit = chapter.proportionality_fit(gaps, penalty)
    assert fit["slope"].estimate == pytest.approx(0.5) and fit["constant"] == pytest.approx(0.5)
    assert fit["intercept"].estimate == pytest.approx(0.0, abs=1e-9)
    assert all(t.estimate == pytest.approx(0.5) for t in fit["ratios"].values())
    assert fit["per_seed"]["seeds"] == [0, 1, 2] and fit["per_seed"]["slope"] == [pytest.approx(0.5)] * 3
    decided = claims.decide_c3(0.0, {"networks": fit}, n_seeds=3, n_images=400)
    assert decided["verdict"] == "reproduced"
    offset_gaps, offset_penalty = _sweep(
        rng, lambda e, p: 0.3 + 0.2 * p + rng.normal(scale=0.05, size=p.shape), radii=(0.05, 0.1, 0.15, 0.2)
    )
    offset = chapter.proportionality_fit(offset_gaps, offset_penalty)
    assert offset["slope"].low > 0 and offset["intercept"].low > 0.2
    assert claims.decide_c3(0.0, {"networks": offset}, n_seeds=3, n_images=400)["verdict"] == "not reproduced"
    table = chapter.shrinkage_table(gaps, penalty)
    assert list(table) == [0.05, 0.1, 0.2]
    assert table[0.1]["ratio"].estimate == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"^gaps must be gaps at eps 0 and at two or more radii above 0"):
        chapter.proportionality_fit(
            {0: {0.0: gaps[0][0.0], 0.1: gaps[0][0.1]}, 1: gaps[1]}, {0: penalty[0], 1: penalty[1]}
        )


def test_robustbench_note_says_how_many_models_or_why_none():
    assert chapter.robustbench_note({"a": 1, "b": 2}, "paper").startswith("2 published AT models")
    none = chapter.robustbench_note({}, "cpu")
    assert "the cpu profile it analyses none" in none and "robustbench_models" in none and "`" not in none
    assert set(chapter.LAST_LAYER_COLUMNS) == {"weight_diff_l1", "weight_diff_l2", "feature_l2", "boundary_distance"}
