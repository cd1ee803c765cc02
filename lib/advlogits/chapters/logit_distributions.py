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
from ..inference import Tested, paired_t_interval, seed_image_interval
from ..logits import logit_gap, max_logit, sorted_logits
from ..pipeline.lineup import PAPER_ROBUSTBENCH_MODELS
from ..profiles import Profile
from ..stats import Interval, bootstrap_ci
from . import style
from .figures import color, errorbar

STATISTICS = {"max logit": max_logit, "logit gap": logit_gap}  # the per-image statistics of claims C1, C2
N_RESAMPLES = 20_000  # bootstrap resamples of the chapter's descriptive intervals (decisions use t intervals)


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
        f"at the paper profile the chapter also analyses published AT models of the RobustBench zoo; at "
        f"the {profile_name} profile it analyses none (the chapter's parameter robustbench_models names them)."
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
    z: Mapping[str, Tensor], y: Tensor, *, budget_matched: tuple[Tensor, Tensor] | None
) -> dict[str, dict[str, Tested]]:
    """The comparisons C1 and C2 are decided on, per statistic: mean(AT) - mean(ST) with its paired t interval and
    p-values against 0, for each seed pair (``z`` holds "ST", "AT", "ST'", "AT'" logits on the same images, true
    labels ``y``), on all images and on the images both models of the pair classify correctly, and for the
    ``budget_matched`` pair (standard, adversarial) of the eps sweep. Returns ``{statistic: {comparison: Tested}}``,
    the main pair on all images first."""
    pairs = {"ST/AT": ("ST", "AT"), "ST'/AT'": ("ST'", "AT'")}
    out: dict[str, dict[str, Tested]] = {}
    for stat, f in STATISTICS.items():
        rows: dict[str, Tested] = {}
        for label, (st, at) in pairs.items():
            rows[f"{label}, all images"] = paired_t_interval(f(z[at]), f(z[st]), threshold=0.0)
        for label, (st, at) in pairs.items():
            both = (z[st].argmax(1) == y) & (z[at].argmax(1) == y)
            rows[f"{label}, both correct ({int(both.sum())} images)"] = paired_t_interval(
                f(z[at][both]), f(z[st][both]), threshold=0.0
            )
        if budget_matched is not None:
            st, at = budget_matched
            rows["budget-matched pair (eps sweep)"] = paired_t_interval(f(at), f(st), threshold=0.0)
        out[stat] = rows
    return out


def _shrinkage(gaps: Mapping[int, Mapping[float, np.ndarray]], radii: Sequence[float]) -> np.ndarray:
    """Per radius, seed and image: the gap of the seed's standard model minus that of its model of the radius,
    (E, S, N)."""
    return np.stack(
        [
            np.stack([np.asarray(g[0.0], dtype=float) - np.asarray(g[e], dtype=float) for g in gaps.values()])
            for e in radii
        ]
    )


def proportionality_fit(
    gaps: Mapping[int, Mapping[float, np.ndarray]], penalty: Mapping[int, np.ndarray]
) -> dict[str, object]:
    """C3's fit for one family of models (docs/protocol.md, amendment of 2026-12-04).

    ``gaps`` maps each sweep seed to its per-image logit gaps by training radius (eps 0: the seed's standard
    model); ``penalty`` maps the seed to its standard model's per-image penalty per unit eps. For each seed, the
    mean shrinkage ``S_s(eps)`` is fitted on ``P_s(eps) = eps * mean penalty`` by least squares with an intercept;
    intercept and slope are linear in the per-image shrinkages (the penalties are the design points), so each has
    a seed-and-image interval over the seeds and images. Also: each radius's ratio ``mean S / mean P`` with its
    interval, and the constant of proportionality (the per-seed slope through the origin, mean over seeds).
    Returns ``{"slope", "intercept", "ratios": {eps: Tested}, "constant", "per_seed": {...}}``."""
    seeds = list(gaps)
    if sorted(penalty) != sorted(seeds) or len(seeds) < 2:
        fail("penalty", "a penalty for every seed of the gaps, two seeds or more", sorted(penalty))
    radii = sorted(e for e in gaps[seeds[0]] if e > 0)
    if len(radii) < 2:
        fail("gaps", "gaps at eps 0 and at two or more radii above 0 (a fit with an intercept)", radii)
    shrink = _shrinkage(gaps, radii)  # (E, S, N)
    x = np.array([[e * float(np.mean(penalty[s])) for s in seeds] for e in radii])  # (E, S): P_s(eps)
    centred = x - x.mean(axis=0)
    slope_w = centred / (centred**2).sum(axis=0)  # (E, S): slope_s = sum_e w[e, s] S_s(e)
    intercept_w = 1.0 / len(radii) - x.mean(axis=0) * slope_w
    origin_w = x / (x**2).sum(axis=0)
    per_image = {
        "slope": (slope_w[:, :, None] * shrink).sum(axis=0),
        "intercept": (intercept_w[:, :, None] * shrink).sum(axis=0),
        "through the origin": (origin_w[:, :, None] * shrink).sum(axis=0),
    }
    fit: dict[str, object] = {
        "slope": seed_image_interval(per_image["slope"], threshold=0.0),
        "intercept": seed_image_interval(per_image["intercept"], threshold=0.0),
        "constant": float(per_image["through the origin"].mean()),
    }
    mean_p = x.mean(axis=1)
    fit["ratios"] = {e: seed_image_interval(shrink[k] / mean_p[k]) for k, e in enumerate(radii)}
    fit["per_seed"] = {
        "seeds": seeds,
        **{name: [round(float(v), 6) for v in values.mean(axis=1)] for name, values in per_image.items()},
        "shrinkage": {f"{e:g}": [round(float(v), 6) for v in shrink[k].mean(axis=1)] for k, e in enumerate(radii)},
        "penalty": {f"{e:g}": [round(float(v), 6) for v in x[k]] for k, e in enumerate(radii)},
    }
    return fit


def shrinkage_table(gaps: Mapping[int, Mapping[float, np.ndarray]], penalty: Mapping[int, np.ndarray]) -> dict:
    """Per radius: mean shrinkage S and mean penalty P over seeds and images, S with its seed-and-image interval,
    and the ratio S / P with its interval (P as a design point)."""
    seeds = list(gaps)
    radii = sorted(e for e in gaps[seeds[0]] if e > 0)
    shrink = _shrinkage(gaps, radii)
    out = {}
    for k, e in enumerate(radii):
        p = float(np.mean([e * np.mean(penalty[s]) for s in seeds]))
        out[e] = {
            "shrinkage": seed_image_interval(shrink[k]),
            "penalty": p,
            "ratio": seed_image_interval(shrink[k] / p),
        }
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
        ylabel=r"mean $\|w_i - w_j\|_1$, relative",
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
