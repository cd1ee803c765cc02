"""Chapter 2, the logit distributions of ST and AT models (claims C1, C2, C3): the logit statistics with
bootstrap intervals, the sorted-logit curve, the margin drops, the RobustBench models, and the chapter's figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from torch import Tensor

from ..checks import fail
from ..logits import logit_gap, max_logit, sorted_logits
from ..pipeline.lineup import PAPER_ROBUSTBENCH_MODELS
from ..profiles import Profile
from ..stats import Estimate, Interval, bootstrap_ci, image_bootstrap
from . import style
from .figures import color, errorbar

STATISTICS = {"max logit": max_logit, "logit gap": logit_gap}  # the per-image statistics of claims C1, C2
N_RESAMPLES = 2000  # bootstrap resamples of every confidence interval of the chapter


# ----------------------------------------------------------------------------------------------------------
# statistics
# ----------------------------------------------------------------------------------------------------------


def summarise(logits: Tensor, *, n_resamples: int = N_RESAMPLES, seed: int = 0) -> dict[str, Interval]:
    """Mean max logit and mean logit gap of ``logits`` (N, K) with percentile-bootstrap 95% CIs."""
    return {name: bootstrap_ci("mean", f(logits), n_resamples=n_resamples, seed=seed) for name, f in STATISTICS.items()}


def compare(
    logits_a: Tensor, logits_b: Tensor, *, n_resamples: int = N_RESAMPLES, seed: int = 0
) -> dict[str, Interval]:
    """``mean(a) - mean(b)`` of each statistic with a paired bootstrap CI (both models on the same images)."""
    if logits_a.shape != logits_b.shape:
        fail(
            "logits_b",
            f"the same images' logits as logits_a, of shape {tuple(logits_a.shape)}",
            logits_b,
            shown=str(tuple(logits_b.shape)),
        )
    return {
        name: bootstrap_ci("mean_difference", f(logits_a), f(logits_b), n_resamples=n_resamples, seed=seed)
        for name, f in STATISTICS.items()
    }


def sorted_logit_curve(logits: Tensor, *, n_resamples: int = N_RESAMPLES, seed: int = 0) -> dict[str, np.ndarray]:
    """Mean of the k-th largest logit for k = 1..K, with bootstrap 95% CIs: arrays ``mean``, ``low``, ``high`` (K,).

    One seed for every rank, so every rank's interval is computed on the same resamples of the images."""
    ranked = sorted_logits(logits)
    rows = np.array(
        [bootstrap_ci("mean", ranked[:, k], n_resamples=n_resamples, seed=seed) for k in range(ranked.shape[1])]
    )
    return {"mean": rows[:, 0], "low": rows[:, 1], "high": rows[:, 2]}


def drop_summary(drops: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Means of the observed (PGD) and first-order margin drops, their ratio, the fraction of images whose
    PGD drop exceeds the first-order one, and the Pearson correlation of the two drops over images."""
    clean = np.asarray(drops["clean"], dtype=float)
    observed = clean - np.asarray(drops["pgd"], dtype=float)
    predicted = clean - np.asarray(drops["first_order"], dtype=float)
    return {
        "observed": float(observed.mean()),
        "predicted": float(predicted.mean()),
        "ratio": float(observed.mean() / predicted.mean()) if predicted.mean() > 0 else math.nan,
        "beyond_first_order": float((observed > predicted).mean()),
        "correlation": float(np.corrcoef(observed, predicted)[0, 1]) if len(clean) > 1 else math.nan,
        "grad_l1": float(np.mean(drops["grad_l1"])),
    }


LAST_LAYER_COLUMNS = {
    "weight_diff_l1": "weight difference, L1",
    "weight_diff_l2": "weight difference, L2",
    "feature_l2": "feature norm, L2",
    "boundary_distance": "distance to the boundary",
}
"""Readable headers for the columns of `advlogits.margins.last_layer_summary` (means over images or pairs)."""


def robustbench_note(rows: Mapping[str, object], profile_name: str) -> str:
    """One sentence for the notes: how many RobustBench models were analysed, or that none were at this profile."""
    if rows:
        return (
            f"{len(rows)} published AT models of the RobustBench zoo were analysed on the same images, each "
            "compared with our ST model (paired difference, model minus ST); the table below lists them."
        )
    return (
        f"at the `paper` profile the chapter also analyses published AT models of the RobustBench zoo; at "
        f"profile {profile_name} it analyses none (parameter `robustbench_models`)."
    )


def robustbench_models(profile: Profile, requested: Sequence[str] | None) -> tuple[str, ...]:
    """The RobustBench CIFAR-10 L-inf models to analyse: ``requested``, or when it is None the paper profile's
    default `PAPER_ROBUSTBENCH_MODELS` (none at other profiles). Refused for a non-CIFAR-10 profile."""
    if requested is None:
        return PAPER_ROBUSTBENCH_MODELS if profile.name == "paper" else ()
    if isinstance(requested, str) or not all(isinstance(n, str) for n in requested):
        fail(
            "robustbench_models",
            f"a list of RobustBench model names, e.g. {list(PAPER_ROBUSTBENCH_MODELS[:1])}",
            requested,
        )
    if requested and profile.dataset != "cifar10":
        fail(
            "robustbench_models",
            f"empty for profile {profile.name!r} (they are CIFAR-10 models and it uses {profile.dataset})",
            list(requested),
            hint="pass robustbench_models=[] or use the paper profile",
        )
    return tuple(requested)


def paired_differences(
    z: Mapping[str, Tensor],
    y: Tensor,
    *,
    budget_matched: tuple[Tensor, Tensor] | None,
    seed: int = 0,
    n_resamples: int = N_RESAMPLES,
) -> dict[str, dict[str, Interval]]:
    """The comparisons C1 and C2 are decided on, per statistic: mean(AT) - mean(ST) with a paired bootstrap
    interval for each seed pair (``z`` holds "ST", "AT", "ST'", "AT'" logits on the same images, true labels
    ``y``), on all images and on the images both models of the pair classify correctly, and for the
    ``budget_matched`` pair (standard, adversarial) of the eps sweep. Returns ``{statistic: {comparison: interval}}``,
    the main pair on all images first."""
    pairs = {"ST/AT": ("ST", "AT"), "ST'/AT'": ("ST'", "AT'")}
    out: dict[str, dict[str, Interval]] = {}
    for stat, f in STATISTICS.items():
        rows: dict[str, Interval] = {}
        for label, (st, at) in pairs.items():
            rows[f"{label}, all images"] = bootstrap_ci(
                "mean_difference", f(z[at]), f(z[st]), seed=seed, n_resamples=n_resamples
            )
        for label, (st, at) in pairs.items():
            both = (z[st].argmax(1) == y) & (z[at].argmax(1) == y)
            rows[f"{label}, both correct ({int(both.sum())} images)"] = bootstrap_ci(
                "mean_difference", f(z[at][both]), f(z[st][both]), seed=seed, n_resamples=n_resamples
            )
        if budget_matched is not None:
            st, at = budget_matched
            rows["budget-matched pair (eps sweep)"] = bootstrap_ci(
                "mean_difference", f(at), f(st), seed=seed, n_resamples=n_resamples
            )
        out[stat] = rows
    return out


def shrinkage_and_penalty(gaps: Mapping[float, np.ndarray], penalty: np.ndarray) -> dict[float, tuple]:
    """Per radius: the per-image shrinkage of the logit gap (standard model minus the model of that radius) and the
    proposition's per-image penalty ``eps * penalty`` (``penalty``: the standard model's per-image first-order drop
    per unit eps). ``gaps`` maps eps to the per-image gaps (N,), eps 0 being the standard model."""
    base = np.asarray(gaps[0.0], dtype=float)
    return {
        e: (base - np.asarray(g, dtype=float), e * np.asarray(penalty, dtype=float)) for e, g in gaps.items() if e > 0
    }


def penalty_slope(
    gaps: Mapping[float, np.ndarray], penalty: np.ndarray, *, seed: int = 0, n_resamples: int = N_RESAMPLES
) -> Estimate:
    """C3's statistic: the least-squares slope through the origin of the mean gap shrinkage S(eps) on the mean
    penalty P(eps) across the radii, ``sum S P / sum P^2``, with a paired bootstrap interval over images (one
    resample of the images for every radius)."""
    per_eps = shrinkage_and_penalty(gaps, penalty)
    if not per_eps:
        fail("gaps", "logit gaps at eps 0 and at least one radius above 0", sorted(gaps))
    shrink = np.stack([s for s, _ in per_eps.values()])  # (E, N)
    pen = np.stack([p for _, p in per_eps.values()])

    def statistic(idx: np.ndarray) -> np.ndarray:
        s_mean = shrink[:, idx].mean(axis=2)  # (E, R)
        p_mean = pen[:, idx].mean(axis=2)
        return (s_mean * p_mean).sum(axis=0) / (p_mean * p_mean).sum(axis=0)

    return image_bootstrap(statistic, shrink.shape[1], seed=seed, n_resamples=n_resamples)


def shrinkage_table(gaps: Mapping[float, np.ndarray], penalty: np.ndarray, *, seed: int = 0) -> dict[float, dict]:
    """Per radius: mean shrinkage S and mean penalty P with bootstrap intervals, and their ratio S / P."""
    out = {}
    for e, (shrink, pen) in shrinkage_and_penalty(gaps, penalty).items():
        s_iv = bootstrap_ci("mean", shrink, seed=seed)
        p_iv = bootstrap_ci("mean", pen, seed=seed)
        out[e] = {"shrinkage": s_iv, "penalty": p_iv, "ratio": s_iv[0] / p_iv[0] if p_iv[0] else math.nan}
    return out


# ----------------------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------------------


def sorted_logit_curves(curves: Mapping[str, Mapping[str, np.ndarray]]) -> Figure:
    """Mean k-th largest logit against k, one line per model with its 95% CI band (`sorted_logit_curve`)."""
    fig, ax = style.figure(3.2)
    for i, (label, curve) in enumerate(curves.items()):
        k = np.arange(1, len(curve["mean"]) + 1)
        ax.plot(k, curve["mean"], marker="o", color=color(label, i), label=label)
        ax.fill_between(k, curve["low"], curve["high"], color=color(label, i), alpha=0.25)
    ax.set(xlabel="rank k of the logit within its image (1 = largest)", ylabel="mean k-th logit (logit units)")
    ax.set_xticks(k)
    ax.axhline(0, color="grey", linewidth=0.8)
    fig.legend(loc="outside right upper")
    return fig


def eps_sweep(series: Mapping[str, Mapping[float, Mapping[str, Interval]]]) -> Figure:
    """Mean max logit and mean logit gap with 95% CIs against the training radius eps, one line per model family
    in ``series`` (eps -> statistic -> interval)."""
    fig, axes = style.figure(3.2, ncols=2)
    for i, (label, by_eps) in enumerate(series.items()):
        xs = sorted(by_eps)
        for ax, stat in zip(axes, ("max logit", "logit gap")):
            errorbar(ax, xs, [by_eps[e][stat] for e in xs], color=style.CYCLE[i], label=label)
    for ax, stat in zip(axes, ("max logit", "logit gap")):
        ax.set(xlabel="training eps (pixel units)", ylabel=f"mean {stat} (logit units)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=len(labels))
    return fig


def weight_differences(norms: Mapping[str, Mapping[float, float]]) -> Figure:
    """The mean last-layer weight difference ``||w_i - w_j||_1`` against the training radius eps, relative to
    its value at eps = 0, one line per entry of ``norms`` (eps -> value)."""
    fig, ax = style.figure(3.0)
    for i, (label, by_eps) in enumerate(norms.items()):
        xs = sorted(by_eps)
        base = by_eps[xs[0]]
        ax.plot(xs, [by_eps[e] / base for e in xs], marker="s", color=style.CYCLE[i], label=label)
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set(
        xlabel="training eps (pixel units; 0 = standard training)",
        ylabel=r"mean $\|w_i - w_j\|_1$ / its value at eps 0",
    )
    fig.legend(loc="outside right upper")
    return fig


def closed_form_check(checks: Mapping[str, Mapping[str, Tensor]]) -> Figure:
    """PGD's worst-case pairwise margin against the closed form, one panel per check (`advlogits.margins.linear_check`
    results); every point on the diagonal means PGD reached the exact minimum."""
    cols = min(2, len(checks))
    rows = -(-len(checks) // cols)
    fig, axes = style.figure(3.0 * rows + 0.4, nrows=rows, ncols=cols, squeeze=False)
    for ax in axes.flat[len(checks) :]:
        ax.set_visible(False)
    for ax, (label, check) in zip(axes.flat, checks.items()):
        finite = check["closed_form"].isfinite()
        closed, found = check["closed_form"][finite].numpy(), check["pgd"][finite].numpy()
        lo, hi = min(closed.min(), found.min()), max(closed.max(), found.max())
        ax.plot([lo, hi], [lo, hi], color="grey", linewidth=0.8, label="y = x")
        ax.scatter(closed, found, s=5, alpha=0.4, color=style.OKABE_ITO["purple"], label="(image, class) pairs")
        ax.set(
            xlabel="closed form (logit units)",
            ylabel="PGD (logit units)",
            title=f"{label}: max |diff.| {check['error'].max().item():.0e}",
        )
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=2)
    return fig


def margin_drop_figure(drops: Mapping[str, Mapping[str, Sequence[float]]]) -> Figure:
    """Observed (PGD) against first-order margin drop per image, one panel per model, with the diagonal."""
    fig, axes = style.figure(3.2, ncols=len(drops), squeeze=False)
    for i, (ax, (label, d)) in enumerate(zip(axes[0], drops.items())):
        clean = np.asarray(d["clean"], dtype=float)
        predicted = clean - np.asarray(d["first_order"], dtype=float)
        observed = clean - np.asarray(d["pgd"], dtype=float)
        hi = max(predicted.max(), observed.max())
        ax.plot([0, hi], [0, hi], color="grey", linewidth=0.8, label="y = x (a linear model)")
        ax.scatter(predicted, observed, s=6, alpha=0.4, color=color(label, i), label=f"{label}: test images")
        ax.set(xlabel="first-order drop (logit units)", ylabel="PGD drop (logit units)", title=label)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles[:1], labels[:1], loc="outside upper center")
    return fig
