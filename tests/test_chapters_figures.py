"""Tests for advlogits.chapters.figures: colours, smoothing, and figures that draw exactly what they are given,
with labelled axes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from advlogits.chapters import figures  # noqa: E402
from advlogits.logits import logit_gap, max_logit  # noqa: E402


def test_colours_of_st_at_and_the_others():
    assert figures.color("ST", 3) == "#0072B2" and figures.color("AT", 0) == "#D55E00"
    assert figures.color("ST'", 0) == "#56B4E9" and figures.color("AT'", 0) == "#E69F00"
    others = [figures.color("KD-AT", i) for i in range(3)]
    assert len(set(others)) == 3 and not set(others) & {"#0072B2", "#D55E00"}


def test_smooth_is_a_trailing_moving_average():
    np.testing.assert_allclose(figures.smooth(np.array([1.0, 2.0, 3.0, 4.0]), 2), [1.0, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(figures.smooth([2.0, 4.0, 6.0, 8.0, 10.0], 3), [2.0, 3.0, 4.0, 6.0, 8.0])
    np.testing.assert_allclose(figures.smooth([3.0, 1.0], 1), [3.0, 1.0])  # window 1: unchanged
    np.testing.assert_allclose(figures.smooth([3.0, 1.0], 10), [3.0, 2.0])  # a window longer than the data
    assert figures.smooth([], 5).shape == (0,)


def test_training_curves_draw_one_line_per_model_in_each_panel():
    histories = {
        "ST": {"batch_loss": [2.0, 1.0, 0.5, 0.25], "epoch": [1, 2], "val_acc": [0.5, 0.75]},
        "AT": {"batch_loss": [3.0, 3.0, 2.0, 2.0], "epoch": [1, 2], "val_acc": [0.25, 0.5]},
    }
    fig = figures.training_curves(histories)
    ax_loss, ax_acc = fig.axes
    assert len(ax_loss.lines) == 2 and len(ax_acc.lines) == 2
    assert [line.get_label() for line in ax_loss.lines] == ["ST", "AT"]
    assert [line.get_label() for line in ax_acc.lines] == ["ST (clean)", "AT (clean)"]
    # 2 batches per epoch: x in epochs; a window of max(1, 2 // 10) = 1 batch, so no smoothing
    np.testing.assert_allclose(ax_loss.lines[0].get_xdata(), [0.5, 1.0, 1.5, 2.0])
    np.testing.assert_allclose(ax_loss.lines[0].get_ydata(), [2.0, 1.0, 0.5, 0.25])
    np.testing.assert_allclose(ax_acc.lines[0].get_ydata(), [50.0, 75.0])  # percent
    np.testing.assert_allclose(ax_acc.lines[1].get_xdata(), [1, 2])
    assert ax_loss.lines[0].get_color() == "#0072B2" and ax_loss.lines[1].get_color() == "#D55E00"
    assert (ax_loss.get_xlabel(), ax_loss.get_ylabel()) == ("epoch", "training loss (nats)")
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["ST", "AT"], "one legend, outside the panels"
    assert (ax_acc.get_xlabel(), ax_acc.get_ylabel()) == ("epoch", "accuracy (%)")
    assert ax_acc.get_ylim() == (0, 100)
    plt.close(fig)


def test_accuracy_dots_draw_each_model_with_its_interval_on_each_measure():
    table = {
        "ST": {"clean": (0.9, 0.85, 0.95), "PGD-CE": (0.0, 0.0, 0.02)},
        "AT": {"clean": (0.8, 0.75, 0.85), "PGD-CE": (0.45, 0.4, 0.5), "AutoAttack": (0.42, 0.37, 0.47)},
    }
    fig = figures.accuracy_dots(table)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["clean", "PGD-CE", "AutoAttack"]
    st, at = ax.containers
    assert st.lines[0].get_xdata().tolist() == pytest.approx([90.0, 0.0]), "percent; ST has no AutoAttack row"
    assert at.lines[0].get_xdata().tolist() == pytest.approx([80.0, 45.0, 42.0])
    (bars,) = at.lines[2]
    np.testing.assert_allclose([seg[:, 0] for seg in bars.get_segments()], [[75, 85], [40, 50], [37, 47]])
    assert st.lines[0].get_ydata()[0] < at.lines[0].get_ydata()[0], "the models sit side by side in a row"
    assert ax.get_xlabel() == "accuracy on the same images (%)"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["ST", "AT"]
    plt.close(fig)


def test_histograms_draw_one_histogram_and_mean_line_per_model_and_statistic():
    g = torch.Generator().manual_seed(0)
    st = torch.randn(50, 10, generator=g) * 3
    logits = {"ST": st, "AT": st / 3}
    fig = figures.histograms(logits, {"max logit": max_logit, "logit gap": logit_gap})
    assert len(fig.axes) == 2
    for ax, (name, statistic) in zip(fig.axes, (("max logit", max_logit), ("logit gap", logit_gap))):
        legend = ax.get_legend()
        assert (legend.get_title().get_text(), ax.get_xlabel(), ax.get_ylabel()) == (
            name,
            f"{name} (logit units)",
            "test images",
        )
        assert len(ax.patches) == 2 * 49  # 50 shared bin edges: 49 bars per model
        assert sum(bar.get_height() for bar in ax.patches[:49]) == 50  # every image of ST counted once
        means = [line.get_xdata()[0] for line in ax.lines]
        assert means == pytest.approx([statistic(st).mean().item(), statistic(st / 3).mean().item()], rel=1e-5)
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [
            f"ST (mean {statistic(st).mean().item():.2f})",
            f"AT (mean {statistic(st / 3).mean().item():.2f})",
        ]
    plt.close(fig)
    fig = figures.histograms({"ST": st}, {"max logit": max_logit}, units="pixels")
    assert fig.axes[0].get_xlabel() == "max logit (pixels)"
    plt.close(fig)


def test_errorbar_draws_estimates_with_asymmetric_bars():
    fig, ax = plt.subplots()
    figures.errorbar(ax, [0.0, 0.1], [(2.0, 1.5, 2.25), (1.0, 0.0, 3.0)], color="C0", label="net")
    (container,) = ax.containers
    data_line = container.lines[0]
    assert data_line.get_xdata().tolist() == [0.0, 0.1] and data_line.get_ydata().tolist() == [2.0, 1.0]
    assert container.get_label() == "net"
    (bars,) = container.lines[2]
    segments = [seg[:, 1].tolist() for seg in bars.get_segments()]
    assert segments == [[1.5, 2.25], [0.0, 3.0]]  # from low to high
    plt.close(fig)


def test_interval_dots_draw_one_row_per_label_with_its_interval_and_the_threshold():
    fig = figures.interval_dots(
        {"a": (0.5, 0.25, 0.75), "b": (-0.1, -0.3, 0.2)},
        xlabel="share (%)",
        scale=100,
        threshold=0.5,
        threshold_label="half the gain",
        colors={"b": "#009E73"},
    )
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    a, b = ax.containers
    assert a.lines[0].get_xdata().tolist() == [50.0] and b.lines[0].get_color() == "#009E73"
    np.testing.assert_allclose(b.lines[2][0].get_segments()[0][:, 0], [-30.0, 20.0])
    (threshold,) = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert threshold.get_xdata()[0] == 50.0 and threshold.get_label() == "half the gain"
    assert ax.get_xlabel() == "share (%)" and fig.legends
    plt.close(fig)


def test_interval_panels_share_their_rows_and_draw_the_threshold_in_each():
    panels = {"max logit": {"a": (-1.0, -1.5, -0.5), "b": (-0.2, -0.4, 0.1)}, "logit gap": {"b": (-0.3, -0.5, -0.1)}}
    fig = figures.interval_panels(panels, xlabel="AT - ST (logit units)", threshold=0.0)
    left, right = fig.axes
    assert [t.get_text() for t in left.get_yticklabels()] == ["a", "b"]
    assert (left.get_title(), right.get_title()) == ("max logit", "logit gap")
    assert fig.get_supxlabel() == "AT - ST (logit units)" and left.get_xlabel() == "", "one label under the panels"
    assert right.containers[0].lines[0].get_ydata().tolist() == [1], "b stays on its row in every panel"
    assert all(
        [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--"] == [0.0] for ax in (left, right)
    )
    plt.close(fig)
