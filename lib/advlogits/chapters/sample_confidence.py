"""Chapter 3, which images the models are sure about (claims C4, C5): per-image confidence compared by ranks.

Per-image values are 1-D arrays over the same evaluation images (one entry per image, same order for every
model). Models are compared by ranks: a Spearman correlation with a paired bootstrap interval (C4), the
overlap of their most-confident sets (C5), and the images whose rank moves most from one model to the other
(the image grids). The criteria are in the claims registry (`advlogits.chapters.claims`).

Confidences are ranked through their log-odds (`advlogits.logits.confidence_log_odds`), a monotone transform of
the softmax probability that does not round to 1: a confident standard model puts many images at a float32
confidence of exactly 1.0, and ranks among those would otherwise be decided by rounding and tie-breaking, not by
the model.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure
from numpy.typing import ArrayLike, NDArray
from torch import Tensor

from ..checks import check_index, check_int, check_labels, check_logits, check_vector, fail
from ..inference import BootstrapTested, percentile_tested
from ..stats import (
    Interval,
    image_bootstrap_replicates,
    rank_correlation,
    rank_difference,
    rank_normalise,
    resampled_ranks,
    resampled_top,
    spearman,
    spearman_bootstraps,
    top_fraction_jaccard,
    top_jaccard,
)
from . import style
from .claims import C5_FRACTION

Values = ArrayLike | Tensor


# ---------------------------------------------------------------------------------------------------------
# Per-sample confidence
# ---------------------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------------------
# C4: rank correlation against seed baselines
# ---------------------------------------------------------------------------------------------------------


def _check_pairs(values: Mapping[str, Values], pairs: Mapping[str, tuple[str, str]]) -> None:
    """Raise ValueError unless every pair names two models present in ``values``."""
    if not pairs:
        fail(
            "pairs", "a mapping of at least one label to a (model, model) pair, e.g. {'ST vs AT': ('ST', 'AT')}", pairs
        )
    for label, pair in pairs.items():
        if not (isinstance(pair, tuple) and len(pair) == 2):
            fail(f"pairs[{label!r}]", "a (model, model) tuple of two names", pair)
        for name in pair:
            if name not in values:
                fail(f"pairs[{label!r}]", f"names of models in values ({', '.join(sorted(values))})", name)


def spearman_intervals(
    values: Mapping[str, Values],
    pairs: Mapping[str, tuple[str, str]],
    *,
    n_resamples: int = 20_000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Interval]:
    """Spearman correlation of each pair of models' per-sample values, with a paired bootstrap interval.

    ``values`` maps a model name to its (N,) per-sample values (e.g. confidence log-odds); ``pairs`` maps a
    label to two model names. Returns ``{label: (estimate, low, high)}``. Every pair is resampled with the
    same ``seed``, hence the same resampled images, so the intervals differ only through the models.
    """
    _check_pairs(values, pairs)
    return spearman_bootstraps(values, pairs, n_resamples=n_resamples, level=level, seed=seed)


# ---------------------------------------------------------------------------------------------------------
# C5: overlap of the most-confident sets
# ---------------------------------------------------------------------------------------------------------


def jaccard_overlaps(
    values: Mapping[str, Values], pairs: Mapping[str, tuple[str, str]], *, fraction: float = C5_FRACTION
) -> dict[str, float]:
    """Jaccard overlap of each pair's top-``fraction`` sets (`advlogits.stats.top_fraction_jaccard`): {label: J}."""
    _check_pairs(values, pairs)
    return {label: top_fraction_jaccard(values[a], values[b], fraction=fraction) for label, (a, b) in pairs.items()}


# ---------------------------------------------------------------------------------------------------------
# The claims' statistics: distance of (ST, AT) below the closer seed baseline
# ---------------------------------------------------------------------------------------------------------


def baseline_distances(
    values: Mapping[str, Values],
    pair: tuple[str, str],
    baselines: Mapping[str, tuple[str, str]],
    *,
    statistic: str,
    threshold: float,
    fraction: float = C5_FRACTION,
    n_resamples: int = 20_000,
    seed: int = 0,
) -> dict[str, BootstrapTested]:
    """How far the pair's agreement lies below each seed baseline's (each a comparison of C4 or C5), and below the
    closer one (``"closest"``, for the prose and figures), against ``threshold``.

    ``statistic`` "spearman" (C4) or "jaccard" (the overlap of the top ``fraction``, C5). Each distance is
    ``agreement(baseline) - agreement(pair)``, bootstrapped on the same image resamples (paired); each comes with its
    percentile interval, p-values and the Monte-Carlo error of its bounds (`advlogits.inference.percentile_tested`).
    """
    _check_pairs(values, {"pair": pair, **baselines})
    # each statistic in two steps: what one model's values give in a resample, then what two of those give
    steps = {
        "spearman": (resampled_ranks, rank_correlation),
        "jaccard": (functools.partial(resampled_top, fraction=fraction), top_jaccard),
    }
    if statistic not in steps:
        fail("statistic", "one of 'spearman', 'jaccard'", statistic)
    of_model, of_two = steps[statistic]
    models = sorted({name for two in (pair, *baselines.values()) for name in two})
    per_model = {name: of_model(values[name], name=f"values[{name!r}]") for name in models}
    n = len(np.asarray(values[pair[0]].cpu() if isinstance(values[pair[0]], Tensor) else values[pair[0]]))
    names = [*baselines, "closest"]

    def distances(idx: np.ndarray) -> np.ndarray:  # (R, n) -> (R, baselines + 1), one pass over the resamples
        seen = {name: f(idx) for name, f in per_model.items()}  # each model once, whatever pairs it is in
        pair_value = of_two(seen[pair[0]], seen[pair[1]])
        each = np.stack([of_two(seen[a], seen[b]) for a, b in baselines.values()], axis=1)
        return np.concatenate([each, each.min(axis=1, keepdims=True)], axis=1) - pair_value[:, None]

    estimate, replicates = image_bootstrap_replicates(distances, n, n_resamples=n_resamples, seed=seed)
    return {
        name: percentile_tested(float(estimate[k]), replicates[:, k], threshold=threshold)
        for k, name in enumerate(names)
    }


# ---------------------------------------------------------------------------------------------------------
# The images whose rank moves most, and what they are
# ---------------------------------------------------------------------------------------------------------


def largest_rank_differences(a: Values, b: Values, *, k: int) -> NDArray[np.intp]:
    """Indices of at most ``k`` images that ``a`` ranks furthest ABOVE ``b``, largest difference first.

    The difference is ``rank_normalise(a) - rank_normalise(b)`` in [-1, 1]; only images where it is > 0
    qualify (so the sets for (a, b) and (b, a) are disjoint), ties go to the lower index. (N,), (N,) -> (<= k,).
    """
    check_int("k", k, at_least=1, hint="k is the number of images to select")
    difference = rank_difference(a, b)
    order = np.argsort(-difference, kind="stable")
    return order[: int(k)][difference[order[: int(k)]] > 0]


def class_counts(y: Values, selections: Mapping[str, Values], *, class_names: Sequence[str]):
    """Images per true class in each selection, beside the whole evaluation subset: a pandas DataFrame.

    ``y`` (N,) holds the true class of every evaluation image; ``selections`` maps a label to indices into it.
    Rows are ``class_names`` (in label order), columns the selection labels then ``"evaluation subset"``.
    """
    import pandas as pd

    labels = y if isinstance(y, Tensor) else torch.as_tensor(np.asarray(y))
    if labels.ndim != 1:
        fail("y", "1-D, one true class per evaluation image", y, shown=f"shape {tuple(labels.shape)}")
    check_labels(labels, labels.shape[0], len(class_names))
    y_arr = labels.cpu().numpy()
    k = len(class_names)
    columns = {
        label: np.bincount(y_arr[check_index(index, len(y_arr), f"selections[{label!r}]")], minlength=k)
        for label, index in selections.items()
    }
    columns["evaluation subset"] = np.bincount(y_arr, minlength=k)
    return pd.DataFrame(columns, index=pd.Index(list(class_names), name="true class"))


@dataclass(frozen=True)
class Tile:
    """One image of a grid and what the models said about it."""

    index: int  # position in the evaluation subset
    image: NDArray[np.float64]  # (H, W) grey or (H, W, 3) colour, pixels in [0, 1]
    label: str  # true class name
    predictions: tuple[tuple[str, str, float], ...]  # (model, predicted class name, confidence in (0, 1]) per model
    difference: float  # rank-normalised confidence difference of the selection (NaN if not given)


def tiles(
    x: Tensor,
    y: Tensor,
    logits: Mapping[str, Tensor],
    index: Values,
    *,
    class_names: Sequence[str],
    difference: Values | None = None,
) -> list[Tile]:
    """The grid data of the images ``index`` (in that order): image, true label, each model's top prediction.

    ``x`` (N, C, H, W) in [0, 1] with C = 1 or 3, ``y`` (N,), ``logits`` maps a model name to its (N, K) logits
    on the same images; ``difference`` (N,) is shown per tile when given (e.g. a rank difference).
    """
    if not (isinstance(x, Tensor) and x.ndim == 4 and x.shape[1] in (1, 3)):
        fail(
            "x",
            "a tensor of images (N, C, H, W) with C = 1 or 3",
            x,
            shown=str(tuple(x.shape)) if isinstance(x, Tensor) else type(x).__name__,
        )
    n = x.shape[0]
    check_labels(y, n, len(class_names))
    if not logits:
        fail("logits", "a mapping of at least one model name to its (N, K) logits", logits)
    for name, z in logits.items():
        check_logits(z, f"logits[{name!r}]")
        if z.shape != (n, len(class_names)):
            fail(
                f"logits[{name!r}]",
                f"of shape ({n}, {len(class_names)}), one row per image of x and one column per class name",
                z,
                shown=str(tuple(z.shape)),
            )
    idx = check_index(index, n)
    diff = np.full(n, np.nan) if difference is None else check_vector(difference, "difference")
    if diff.shape[0] != n:
        fail("difference", f"one value per image of x ({n})", difference, shown=f"{diff.shape[0]} values")
    probs = {name: z.detach().double().softmax(dim=1).cpu() for name, z in logits.items()}
    out = []
    for i in idx.tolist():
        image = x[i].detach().cpu().double().permute(1, 2, 0).numpy()
        predictions = tuple((name, class_names[int(p[i].argmax())], float(p[i].max())) for name, p in probs.items())
        out.append(
            Tile(
                index=i,
                image=image[..., 0] if image.shape[2] == 1 else image,
                label=class_names[int(y[i])],
                predictions=predictions,
                difference=float(diff[i]),
            )
        )
    return out


# ---------------------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------------------


def rank_scatter(values: Mapping[str, Values], pairs: Mapping[str, tuple[str, str]]) -> Figure:
    """One panel per pair: rank-normalised values of the first model (x) against the second (y), Spearman in title."""
    _check_pairs(values, pairs)
    cols = min(3, len(pairs))
    rows = -(-len(pairs) // cols)
    fig, axes = style.figure(2.55 * rows + 0.3, nrows=rows, ncols=cols, squeeze=False)
    for ax in axes.flat[len(pairs) :]:
        ax.set_visible(False)
    for ax, (label, (a, b)) in zip(axes.flat, pairs.items()):
        ax.scatter(
            rank_normalise(values[a]),
            rank_normalise(values[b]),
            s=5,
            alpha=0.5,
            color=style.OKABE_ITO["purple"],
            linewidths=0,
        )
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--")
        ax.set(
            xlabel=f"rank under {a}",
            ylabel=f"rank under {b}",
            xlim=(0, 1),
            ylim=(0, 1),
            aspect="equal",
            title=f"{label}: {spearman(values[a], values[b]):.2f}",
            xticks=[0, 0.5, 1],
            yticks=[0, 0.5, 1],
        )
    fig.supxlabel("confidence rank (0 least, 1 most confident); titles: Spearman")
    return fig


def tile_grid(grid: Sequence[Tile], *, title: str, ncols: int = 4) -> Figure:
    """The tiles in rows of ``ncols``: each image with its true label, every model's prediction and confidence."""
    check_int("ncols", ncols, at_least=1)
    nrows = max(1, math.ceil(len(grid) / ncols))
    lines = 1 + (len(grid[0].predictions) if grid else 0)
    fig, axes = style.figure((1.25 + 0.19 * lines) * nrows + 0.35, nrows=nrows, ncols=ncols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, tile in zip(axes.ravel(), grid):
        ax.imshow(tile.image, cmap="gray" if tile.image.ndim == 2 else None, vmin=0.0, vmax=1.0)
        text = [f"#{tile.index}, true: {tile.label}"]
        text += [f"{model}: {pred} {conf:.2f}" for model, pred, conf in tile.predictions]
        ax.set_title("\n".join(text), fontsize=style.SMALL_PT, loc="left")
    fig.suptitle(title if grid else f"{title} (no image qualifies)")
    return fig


def class_count_bars(table) -> Figure:
    """Horizontal grouped bars from a `class_counts` table: the share (%) of each class within every column."""
    shares = 100 * table / table.sum(axis=0).replace(0, np.nan)
    n_classes, n_columns = len(shares.index), len(shares.columns)
    fig, ax = style.figure(0.8 + 0.1 * n_classes * n_columns)
    height = 0.8 / n_columns
    y = np.arange(n_classes)
    for j, column in enumerate(shares.columns):
        c = "#BBBBBB" if column == "evaluation subset" else style.CYCLE[j]
        ax.barh(
            y + (j - (n_columns - 1) / 2) * height,
            shares[column].fillna(0.0),
            height,
            color=c,
            label=f"{column} ({int(table[column].sum())} images)",
        )
    ax.set_yticks(y, shares.index)
    ax.invert_yaxis()
    ax.set(xlabel="share of the images (%)")
    ax.grid(axis="y", visible=False)
    fig.legend(loc="outside upper center", ncols=min(2, n_columns))
    return fig
