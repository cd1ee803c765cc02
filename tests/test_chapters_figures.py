"""Tests for advlogits.chapters.figures: colours, smoothing, and figures that draw exactly what they are given,
with labelled axes."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from advlogits.chapters import figures  # noqa: E402
from advlogits.logits import logit_gap, max_logit  # noqa: E402


def test_colours_of_st_at_and_the_others():
    assert figures.COLORS == {"ST": "tab:blue", "AT": "tab:red"}
    assert figures.color("ST", 3) == "tab:blue" and figures.color("AT", 0) == "tab:red"
    assert [figures.color("ST'", i) for i in range(3)] == ["C2", "C3", "C4"]


def test_smooth_is_a_trailing_moving_average():
    np.testing.assert_allclose(figures.smooth(np.array([1.0, 2.0, 3.0, 4.0]), 2), [1.0, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(figures.smooth([2.0, 4.0, 6.0, 8.0, 10.0], 3), [2.0, 3.0, 4.0, 6.0, 8.0])
    np.testing.assert_allclose(figures.smooth([3.0, 1.0], 1), [3.0, 1.0])  # window 1: unchanged
    np.testing.assert_allclose(figures.smooth([3.0, 1.0], 10), [3.0, 2.0])  # a window longer than the data
    assert figures.smooth([], 5).shape == (0,)


def test_training_curves_draw_one_line_per_model_in_each_panel():
    histories = {"ST": {"batch_loss": [2.0, 1.0, 0.5, 0.25], "epoch": [1, 2], "val_acc": [0.5, 0.75]},
                 "AT": {"batch_loss": [3.0, 3.0, 2.0, 2.0], "epoch": [1, 2], "val_acc": [0.25, 0.5]}}
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
    assert ax_loss.lines[0].get_color() == "tab:blue" and ax_loss.lines[1].get_color() == "tab:red"
    assert (ax_loss.get_xlabel(), ax_loss.get_ylabel()) == ("epoch", "training loss (cross-entropy, nats)")
    assert (ax_acc.get_xlabel(), ax_acc.get_ylabel()) == ("epoch", "accuracy (%)")
    assert ax_acc.get_ylim() == (0, 100)
    plt.close(fig)


def test_accuracy_bars_draw_one_bar_per_model_and_column():
    table = {"ST": {"clean_acc": 0.9, "pgd_acc": 0.0, "autoattack_acc": 0.0},
             "AT": {"clean_acc": 0.8, "pgd_acc": 0.45}}
    columns = {"clean_acc": "clean", "pgd_acc": "PGD-20", "autoattack_acc": "AutoAttack"}
    fig = figures.accuracy_bars(table, columns=columns)
    (ax,) = fig.axes
    heights = [bar.get_height() for bar in ax.patches]
    assert len(heights) == 3 * 2
    assert heights[:4] == pytest.approx([90.0, 80.0, 0.0, 45.0]) and heights[4] == 0.0
    assert math.isnan(heights[5])  # AT has no AutoAttack accuracy: an empty bar, not a zero
    assert [t.get_text() for t in ax.get_xticklabels()] == ["ST", "AT"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["clean", "PGD-20", "AutoAttack"]
    assert ax.get_ylabel() == "accuracy (%)"
    assert [t.get_text() for t in ax.texts][:2] == ["90.0", "80.0"]  # the bars' labels
    plt.close(fig)


def test_histograms_draw_one_histogram_and_mean_line_per_model_and_statistic():
    g = torch.Generator().manual_seed(0)
    st = torch.randn(50, 10, generator=g) * 3
    logits = {"ST": st, "AT": st / 3}
    fig = figures.histograms(logits, {"max logit": max_logit, "logit gap": logit_gap})
    assert len(fig.axes) == 2
    for ax, (name, statistic) in zip(fig.axes, (("max logit", max_logit), ("logit gap", logit_gap))):
        assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == (name, f"{name} (logit units)", "test images")
        assert len(ax.patches) == 2 * 49  # 50 shared bin edges: 49 bars per model
        assert sum(bar.get_height() for bar in ax.patches[:49]) == 50  # every image of ST counted once
        means = [line.get_xdata()[0] for line in ax.lines]
        assert means == pytest.approx([statistic(st).mean().item(), statistic(st / 3).mean().item()], rel=1e-5)
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [
            f"ST (mean {statistic(st).mean().item():.2f})", f"AT (mean {statistic(st / 3).mean().item():.2f})"]
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
