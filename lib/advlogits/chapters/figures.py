"""Figure code shared by the chapters: colours, smoothing, training curves, accuracy bars, histograms.

Every function returns a labelled matplotlib figure (not shown), so a chapter can glue it into its prose.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from torch import Tensor

COLORS = {"ST": "tab:blue", "AT": "tab:red"}


def color(label: str, i: int) -> str:
    """The colour of model ``label`` (ST blue, AT red), or the ``i``-th colour of the cycle after those two."""
    return COLORS.get(label, f"C{i + 2}")


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (same length; the first points average what exists so far)."""
    values = np.asarray(values, dtype=float)
    if window <= 1 or len(values) == 0:
        return values
    cumsum = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(0, idx - window)
    return (cumsum[idx] - cumsum[lo]) / (idx - lo)


def training_curves(histories: Mapping[str, dict]) -> Figure:
    """Training loss per batch (smoothed) and clean validation accuracy per epoch, one line per model."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    for i, (label, history) in enumerate(histories.items()):
        losses = np.asarray(history["batch_loss"], dtype=float)
        epochs = len(history["epoch"])
        steps_per_epoch = max(1, len(losses) // max(1, epochs))
        x = np.arange(1, len(losses) + 1) / steps_per_epoch
        ax_loss.plot(x, smooth(losses, max(1, steps_per_epoch // 10)), color=color(label, i), label=label)
        ax_acc.plot(history["epoch"], 100 * np.asarray(history["val_acc"]), marker="o", color=color(label, i),
                    label=f"{label} (clean)")
    ax_loss.set(xlabel="epoch", ylabel="training loss (cross-entropy, nats)",
                title="Training loss (AT: on its PGD examples)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Clean accuracy on held-out test images", ylim=(0, 100))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    return fig


def accuracy_bars(table: Mapping[str, Mapping[str, float]], *, columns: Mapping[str, str]) -> Figure:
    """Grouped bars: one group per model (rows of ``table``), one bar per accuracy column (fractions -> %)."""
    models = list(table)
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(models), 3.4), constrained_layout=True)
    width = 0.8 / len(columns)
    for j, (key, label) in enumerate(columns.items()):
        values = [100 * table[m].get(key, np.nan) for m in models]
        bars = ax.bar(np.arange(len(models)) + (j - (len(columns) - 1) / 2) * width, values, width, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(np.arange(len(models)), models)
    ax.set(ylabel="accuracy (%)", ylim=(0, 105))
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def histograms(logits: Mapping[str, Tensor], statistics: Mapping[str, Callable[[Tensor], Tensor]], *,
               units: str = "logit units") -> Figure:
    """One panel per statistic (e.g. max logit, logit gap): overlaid histograms, one per model, means dashed."""
    fig, axes = plt.subplots(1, len(statistics), figsize=(5 * len(statistics), 3.4), constrained_layout=True,
                             squeeze=False)
    for ax, (name, statistic) in zip(axes[0], statistics.items()):
        values = {label: statistic(z).numpy() for label, z in logits.items()}
        lo = min(v.min() for v in values.values())
        hi = max(v.max() for v in values.values())
        bins = np.linspace(lo, hi, 50)
        for i, (label, v) in enumerate(values.items()):
            ax.hist(v, bins=bins, alpha=0.5, color=color(label, i), label=f"{label} (mean {v.mean():.2f})")
            ax.axvline(v.mean(), color=color(label, i), linestyle="--")
        ax.set(xlabel=f"{name} ({units})", ylabel="test images", title=name)
        ax.legend()
        ax.grid(alpha=0.3)
    return fig


def errorbar(ax, xs, intervals, **kw) -> None:  # noqa: ANN001
    """Points with error bars from ``(estimate, low, high)`` intervals at positions ``xs``."""
    est = np.array([iv[0] for iv in intervals])
    low = np.array([iv[1] for iv in intervals])
    high = np.array([iv[2] for iv in intervals])
    ax.errorbar(xs, est, yerr=[est - low, high - est], capsize=3, marker="o", **kw)
