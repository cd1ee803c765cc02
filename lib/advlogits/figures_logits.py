"""Figures of chapter 2 (logit distributions, the eps sweep, the linear-model check): labelled matplotlib
figures, returned (not shown) so the chapter can glue them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from torch import Tensor

from .plots import COLORS

Interval = tuple[float, float, float]  # (estimate, low, high)


def _color(label: str, i: int) -> str:
    return COLORS.get(label, f"C{i + 2}")


def sorted_profiles(profiles: Mapping[str, Mapping[str, np.ndarray]]) -> Figure:
    """Mean k-th largest logit against k, one line per model with its 95% CI band (``theory.sorted_profile``)."""
    fig, ax = plt.subplots(figsize=(6, 3.6), constrained_layout=True)
    for i, (label, prof) in enumerate(profiles.items()):
        k = np.arange(1, len(prof["mean"]) + 1)
        ax.plot(k, prof["mean"], marker="o", color=_color(label, i), label=label)
        ax.fill_between(k, prof["low"], prof["high"], color=_color(label, i), alpha=0.25)
    ax.set(xlabel="rank k of the logit within its image (1 = largest)", ylabel="mean k-th largest logit (logit units)",
           title="Mean sorted-logit profile")
    ax.set_xticks(k)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def _errorbar(ax, xs: Sequence[float], intervals: Sequence[Interval], **kw) -> None:
    est = np.array([iv[0] for iv in intervals])
    low = np.array([iv[1] for iv in intervals])
    high = np.array([iv[2] for iv in intervals])
    ax.errorbar(xs, est, yerr=[est - low, high - est], capsize=3, marker="o", **kw)


def eps_sweep(series: Mapping[str, Mapping[float, Mapping[str, Interval]]],
              norms: Mapping[str, Mapping[float, float]]) -> Figure:
    """Three panels against the training radius eps: mean max logit and mean logit gap with 95% CIs (one line
    per model family in ``series``: eps -> statistic -> interval), and the mean weight difference
    ``||w_i - w_j||_1`` relative to its value at eps = 0 (one line per entry of ``norms``: eps -> value)."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6), constrained_layout=True)
    for i, (label, by_eps) in enumerate(series.items()):
        xs = sorted(by_eps)
        for ax, stat in zip(axes[:2], ("max logit", "logit gap")):
            _errorbar(ax, xs, [by_eps[e][stat] for e in xs], color=f"C{i}", label=label)
    for ax, stat in zip(axes[:2], ("max logit", "logit gap")):
        ax.set(xlabel="training radius eps (pixel units; 0 = standard training)",
               ylabel=f"mean {stat} (logit units)", title=f"Mean {stat} against eps")
    for i, (label, by_eps) in enumerate(norms.items()):
        xs = sorted(by_eps)
        base = by_eps[xs[0]]
        axes[2].plot(xs, [by_eps[e] / base for e in xs], marker="s", color=f"C{i}", label=label)
    axes[2].set(xlabel="training radius eps (pixel units; 0 = standard training)",
                ylabel=r"mean $\|w_i - w_j\|_1$ relative to eps = 0", title="Weight differences against eps")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def closed_form_check(checks: Mapping[str, Mapping[str, Tensor]]) -> Figure:
    """PGD's worst-case pairwise margin against the closed form, one panel per check (``theory.linear_check``
    results); every point on the diagonal means PGD reached the exact minimum."""
    cols = min(2, len(checks))
    rows = -(-len(checks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4 * rows), constrained_layout=True, squeeze=False)
    for ax in axes.flat[len(checks):]:
        ax.set_visible(False)
    for ax, (label, check) in zip(axes.flat, checks.items()):
        finite = check["closed_form"].isfinite()
        closed, found = check["closed_form"][finite].numpy(), check["pgd"][finite].numpy()
        lo, hi = min(closed.min(), found.min()), max(closed.max(), found.max())
        ax.plot([lo, hi], [lo, hi], color="grey", linewidth=0.8, label="y = x")
        ax.scatter(closed, found, s=4, alpha=0.4, color="tab:purple", label="(image, class j) pairs")
        ax.set(xlabel="closed-form worst-case margin (logit units)", ylabel="PGD worst-case margin (logit units)",
               title=f"{label}\nmax |difference| = {check['error'].max().item():.1e}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def margin_drops(drops: Mapping[str, Mapping[str, Sequence[float]]]) -> Figure:
    """Observed (PGD) against first-order margin drop per image, one panel per model, with the diagonal."""
    fig, axes = plt.subplots(1, len(drops), figsize=(4.6 * len(drops), 3.8), constrained_layout=True,
                             squeeze=False)
    for i, (ax, (label, d)) in enumerate(zip(axes[0], drops.items())):
        clean = np.asarray(d["clean"], dtype=float)
        predicted = clean - np.asarray(d["first_order"], dtype=float)
        observed = clean - np.asarray(d["pgd"], dtype=float)
        hi = max(predicted.max(), observed.max())
        ax.plot([0, hi], [0, hi], color="grey", linewidth=0.8, label="y = x (linear model)")
        ax.scatter(predicted, observed, s=5, alpha=0.4, color=_color(label, i), label="test images")
        ax.set(xlabel="first-order drop (logit units)", ylabel="PGD drop (logit units)", title=label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig
