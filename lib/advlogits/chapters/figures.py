"""Figure code shared by the chapters: colours, smoothing, training curves, accuracy dots, histograms.

Every function returns a labelled matplotlib figure (not shown), so a chapter can glue it into its prose.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from matplotlib.figure import Figure
from torch import Tensor

from . import style

COLORS = style.MODEL_COLORS


def color(label: str, i: int) -> str:
    """The colour of model ``label`` (`style.color`): ST blue, AT vermillion, ST' sky blue, AT' orange."""
    return style.color(label, i)


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
    fig, (ax_loss, ax_acc) = style.figure(3.0, ncols=2)
    for i, (label, history) in enumerate(histories.items()):
        losses = np.asarray(history["batch_loss"], dtype=float)
        epochs = len(history["epoch"])
        steps_per_epoch = max(1, len(losses) // max(1, epochs))
        x = np.arange(1, len(losses) + 1) / steps_per_epoch
        ax_loss.plot(x, smooth(losses, max(1, steps_per_epoch // 10)), color=color(label, i), label=label)
        ax_acc.plot(
            history["epoch"],
            100 * np.asarray(history["val_acc"]),
            marker="o",
            color=color(label, i),
            label=f"{label} (clean)",
        )
    ax_loss.set(xlabel="epoch", ylabel="training loss (nats)", title="Training loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Clean held-out accuracy", ylim=(0, 100))
    handles, labels = ax_loss.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=len(labels))
    return fig


def accuracy_dots(table: Mapping[str, Mapping[str, tuple[float, float, float]]]) -> Figure:
    """Dot-and-whisker: one row per measure (clean, each attack, the worst case), one dot per model with its
    95% interval; ``table`` maps a model to {measure: (estimate, low, high)} as fractions, shown in %."""
    models = list(table)
    measures = list(dict.fromkeys(m for row in table.values() for m in row))
    fig, ax = style.figure(0.9 + 0.42 * len(measures))
    offsets = np.linspace(-0.15, 0.15, len(models)) if len(models) > 1 else [0.0]
    for i, (model, offset) in enumerate(zip(models, offsets)):
        rows = [(j, table[model][m]) for j, m in enumerate(measures) if m in table[model]]
        est = np.array([100 * v[0] for _, v in rows])
        low, high = np.array([100 * v[1] for _, v in rows]), np.array([100 * v[2] for _, v in rows])
        ax.errorbar(
            est,
            [j + offset for j, _ in rows],
            xerr=[est - low, high - est],
            fmt="o",
            capsize=3,
            color=color(model, i),
            label=model,
        )
    ax.set_yticks(range(len(measures)), measures)
    ax.invert_yaxis()
    ax.set(xlabel="accuracy on the same images (%)", xlim=(-2, 102))
    ax.grid(axis="y", visible=False)
    fig.legend(loc="outside upper center", ncols=len(models))
    return fig


def histograms(
    logits: Mapping[str, Tensor], statistics: Mapping[str, Callable[[Tensor], Tensor]], *, units: str = "logit units"
) -> Figure:
    """One panel per statistic (e.g. max logit, logit gap): overlaid histograms, one per model, means dashed."""
    fig, axes = style.figure(3.0, ncols=len(statistics), squeeze=False)
    for ax, (name, statistic) in zip(axes[0], statistics.items()):
        values = {label: statistic(z).numpy() for label, z in logits.items()}
        lo = min(v.min() for v in values.values())
        hi = max(v.max() for v in values.values())
        bins = np.linspace(lo, hi, 50)
        for i, (label, v) in enumerate(values.items()):
            ax.hist(v, bins=bins, alpha=0.5, color=color(label, i), label=f"{label} (mean {v.mean():.2f})")
            ax.axvline(v.mean(), color=color(label, i), linestyle="--")
        ax.set(xlabel=f"{name} ({units})", ylabel="test images")
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), title=name, alignment="left")  # above the data
    return fig


def errorbar(ax, xs, intervals, **kw) -> None:  # noqa: ANN001
    """Points with error bars from ``(estimate, low, high)`` intervals at positions ``xs``."""
    est = np.array([iv[0] for iv in intervals])
    low = np.array([iv[1] for iv in intervals])
    high = np.array([iv[2] for iv in intervals])
    ax.errorbar(xs, est, yerr=[est - low, high - est], capsize=3, marker="o", **kw)


def interval_dots(
    intervals: Mapping[str, tuple[float, float, float]],
    *,
    xlabel: str,
    scale: float = 1.0,
    threshold: float | None = None,
    threshold_label: str = "threshold",
    colors: Mapping[str, str] | None = None,
) -> Figure:
    """Dot-and-whisker: one row per label, its estimate with its 95% interval (``(estimate, low, high, ...)``, times
    ``scale``); an optional dashed ``threshold`` line (in the same units before scaling)."""
    labels = list(intervals)
    fig, ax = style.figure(0.9 + 0.36 * len(labels))
    for row, label in enumerate(labels):
        e, lo, hi = (scale * v for v in intervals[label][:3])
        c = (colors or {}).get(label, style.OKABE_ITO["black"])
        ax.errorbar([e], [row], xerr=[[e - lo], [hi - e]], fmt="o", color=c, capsize=3)
    if threshold is not None:
        ax.axvline(scale * threshold, color="black", linestyle="--", linewidth=1, label=threshold_label)
        fig.legend(loc="outside upper right")
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.grid(axis="y", visible=False)
    ax.set(xlabel=xlabel)
    return fig


def interval_panels(
    panels: Mapping[str, Mapping[str, tuple[float, float, float]]],
    *,
    xlabel: str,
    threshold: float | None = None,
    colors: Mapping[str, str] | None = None,
) -> Figure:
    """`interval_dots` side by side, one panel per entry of ``panels`` (its title), rows shared: e.g. the same
    comparisons for two statistics, or the same students of two teachers, each with the dashed ``threshold``; a
    row's colour from ``colors`` (default black)."""
    labels = list(dict.fromkeys(label for rows in panels.values() for label in rows))
    fig, axes = style.figure(1.0 + 0.36 * len(labels), ncols=len(panels), sharey=True, squeeze=False)
    for ax, (title, rows) in zip(axes[0], panels.items()):
        for row, label in enumerate(labels):
            if label in rows:
                e, lo, hi = rows[label][:3]
                c = (colors or {}).get(label, style.OKABE_ITO["black"])
                ax.errorbar([e], [row], xerr=[[e - lo], [hi - e]], fmt="o", color=c, capsize=3)
        if threshold is not None:
            ax.axvline(threshold, color="black", linestyle="--", linewidth=1)
        ax.set(title=title, xlabel=xlabel if len(panels) == 1 else "")
        ax.locator_params(axis="x", nbins=4)  # side-by-side panels are narrow: few ticks, none overlapping
        ax.grid(axis="y", visible=False)
    if len(panels) > 1:  # one label under the panels: a label each would overlap its neighbour's
        fig.supxlabel(xlabel, fontsize=style.FONT_PT)
    axes[0][0].set_yticks(range(len(labels)), labels)
    axes[0][0].invert_yaxis()
    return fig
