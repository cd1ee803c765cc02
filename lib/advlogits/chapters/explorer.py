"""Look at one image's logits under several models: a figure, a selection helper and an interactive explorer.

The chapters compare ST and AT through statistics over thousands of images (max logit, logit gap, confidence
ranks). A reader learns what those statistics mean by looking at single images: here are the image, every
model's ten logits and its softmax probabilities side by side, with the max logit and the logit gap (claims
C1, C2) in the titles. `logit_figure` draws that for one image; `index_by_rank` picks the image of a class
at a given confidence rank (claims C4, C5 are about these ranks); `explore` wraps both in an ipywidgets view
for Jupyter; `static_views` draws a few preselected images for the static site, where no kernel can redraw.

Models are passed as a mapping ``name -> logits`` of shape (N, K) on the same N evaluation images, so any set
of models works (ST, AT, ST', AT'). ipywidgets is imported only by `explore`: the rest needs matplotlib only.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from torch import Tensor

from ..checks import check_int, check_labels, check_logits, fail
from ..logits import confidence_log_odds
from . import style
from .sample_confidence import largest_rank_differences

if TYPE_CHECKING:
    import ipywidgets

MODEL_COLORS = style.MODEL_COLORS  # the argmax bar of each model
OTHER_BAR = "lightgrey"  # every class that is not the model's argmax
TRUE_EDGE = "black"  # outline of the true class's bar
WIDGET_DPI = 80  # resolution of the explorer's redrawn figure: small PNGs keep the saved widget state small

Draw = Callable[..., Figure]


# ---------------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------------


def _check_inputs(x: Tensor, y: Tensor, logits: Mapping[str, Tensor], class_names: Sequence[str]) -> None:
    """Raise ValueError unless x (N, C, H, W), y (N,) and every model's logits (N, K = len(class_names)) agree."""
    if not (isinstance(x, Tensor) and x.ndim == 4 and x.shape[1] in (1, 3)):
        fail(
            "x",
            "a tensor of images (N, C, H, W) with C = 1 or 3",
            x,
            shown=str(tuple(x.shape)) if isinstance(x, Tensor) else type(x).__name__,
        )
    n, k = x.shape[0], len(class_names)
    check_labels(y, n, k)
    _check_models(logits, n, k)


def _check_models(logits: Mapping[str, Tensor], n: int, k: int) -> None:
    if not isinstance(logits, Mapping) or not logits:
        fail(
            "logits", "a mapping of at least one model name to its (N, K) logits, e.g. {'ST': z_st, 'AT': z_at}", logits
        )
    for name, z in logits.items():
        check_logits(z, f"logits[{name!r}]")
        if tuple(z.shape) != (n, k):
            fail(
                f"logits[{name!r}]",
                f"of shape ({n}, {k}), one row per image and one column per class name",
                z,
                shown=str(tuple(z.shape)),
            )


def _check_image_index(index: object, n: int) -> int:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < n:
        fail("index", f"an integer image index in [0, {n})", index)
    return int(index)


def _class_index(cls: int | str, class_names: Sequence[str]) -> int:
    """The label of ``cls``, given as a class name or a label; ValueError naming ``cls`` otherwise."""
    if isinstance(cls, str):
        if cls not in class_names:
            fail("cls", f"a class name, one of {', '.join(class_names)}", cls)
        return list(class_names).index(cls)
    if isinstance(cls, bool) or not isinstance(cls, (int, np.integer)) or not 0 <= cls < len(class_names):
        fail("cls", f"a class name or a label in [0, {len(class_names)})", cls)
    return int(cls)


def _check_model(model: str, logits: Mapping[str, Tensor]) -> None:
    if model not in logits:
        fail("model", f"one of the models given ({', '.join(logits)})", model)


# ---------------------------------------------------------------------------------------------------------
# One image, every model
# ---------------------------------------------------------------------------------------------------------


def logit_figure(
    x: Tensor, y: Tensor, logits: Mapping[str, Tensor], index: int, *, class_names: Sequence[str]
) -> Figure:
    """Image ``index`` with every model's logits (top row) and softmax probabilities in % (bottom row).

    ``x`` (N, C, H, W) in [0, 1], ``y`` (N,), ``logits`` maps a model name to its (N, K) logits. In each
    model's panels the bar of its argmax is drawn in the model's colour, the others in grey, and the true
    class's bar is outlined in black (its tick label in bold). The logit panels share one y axis, so the
    models' scales compare directly; their titles give the max logit and the logit gap (max - runner-up).
    A new Figure, not registered with pyplot: nothing to close, nothing shown unless the caller shows it.
    """
    _check_inputs(x, y, logits, class_names)
    i = _check_image_index(index, x.shape[0])
    true = int(y[i])
    rows = {name: z[i].detach().double().cpu() for name, z in logits.items()}
    k, n_models = len(class_names), len(rows)
    with plt.rc_context(style.RC):
        return _logit_figure(x, i, true, rows, n_models, k, class_names)


def _logit_figure(
    x: Tensor, i: int, true: int, rows: Mapping[str, Tensor], n_models: int, k: int, class_names: Sequence[str]
) -> Figure:
    fig = Figure(figsize=(style.COLUMN_INCHES, 5.6), layout="constrained")
    grid = fig.add_gridspec(2, 1 + n_models, width_ratios=[0.7] + [1.6] * n_models)
    ax_image = fig.add_subplot(grid[:, 0])
    image = x[i].detach().double().cpu().permute(1, 2, 0).numpy()
    ax_image.imshow(
        image[..., 0] if image.shape[2] == 1 else image,
        cmap="gray" if image.shape[2] == 1 else None,
        vmin=0.0,
        vmax=1.0,
    )
    ax_image.set_title(f"image #{i}\ntrue: {class_names[true]}")
    ax_image.axis("off")

    positions = np.arange(k)
    low = min(0.0, min(float(r.min()) for r in rows.values()))
    high = max(0.0, max(float(r.max()) for r in rows.values()))
    pad = 0.08 * (high - low or 1.0)
    for j, (name, z) in enumerate(rows.items()):
        color = style.color(name, j)
        top2 = z.topk(2).values
        pred = int(z.argmax())
        probs = 100 * z.softmax(dim=0)
        ax_logit, ax_prob = fig.add_subplot(grid[0, 1 + j]), fig.add_subplot(grid[1, 1 + j])
        for ax, values in ((ax_logit, z.numpy()), (ax_prob, probs.numpy())):
            colors = [color if c == pred else OTHER_BAR for c in range(k)]
            bars = ax.bar(positions, values, color=colors, edgecolor="none", width=0.75)
            bars[true].set_edgecolor(TRUE_EDGE)
            bars[true].set_linewidth(1.8)
            ax.set_xticks(positions, class_names, rotation=60, ha="right", fontsize=style.SMALL_PT)
            ax.get_xticklabels()[true].set_fontweight("bold")
            ax.grid(axis="y", alpha=0.3)
            ax.set_axisbelow(True)
        ax_logit.axhline(0.0, color="grey", linewidth=0.8)
        ax_logit.set(
            ylim=(low - pad, high + pad),
            ylabel="logit $z_k$" if j == 0 else "",
            title=f"{name}: max {float(top2[0]):.2f}, gap {float(top2[0] - top2[1]):.2f}",
        )
        ax_prob.set(
            ylim=(0, 105),
            ylabel="softmax (%)" if j == 0 else "",
            title=f"{name} predicts {class_names[pred]} ({float(probs[pred]):.1f}%)",
        )
    handles = [Patch(facecolor=style.color(name, j), label=f"{name}'s prediction") for j, name in enumerate(rows)]
    handles.append(Patch(facecolor="white", edgecolor=TRUE_EDGE, linewidth=1.8, label="true class"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    return fig


# ---------------------------------------------------------------------------------------------------------
# Which image to look at
# ---------------------------------------------------------------------------------------------------------


def index_by_rank(
    logits: Mapping[str, Tensor], y: Tensor, *, model: str, cls: int | str, rank: int, class_names: Sequence[str]
) -> int:
    """Index of the image of true class ``cls`` that ``model`` ranks ``rank``-th by confidence (1 = most confident).

    Confidence is the softmax probability of the model's predicted class, ranked through its log-odds
    (`advlogits.logits.confidence_log_odds`) as in the chapters, so images whose float32 probability
    rounds to 1 still have distinct ranks; exact ties go to the lower index. ``cls`` is a class name or a
    label. Raises ValueError naming the argument when ``model``, ``cls`` or ``rank`` is not valid.
    """
    _check_model(model, logits)
    check_logits(logits[model], f"logits[{model!r}]")
    n, k = logits[model].shape[0], len(class_names)
    _check_models({model: logits[model]}, n, k)
    check_labels(y, n, k)
    c = _class_index(cls, class_names)
    members = np.flatnonzero(y.detach().cpu().numpy() == c)
    if not len(members):
        fail("cls", "a class that some image has", cls, hint="no evaluation image has this true class")
    check_int(
        "rank",
        rank,
        at_least=1,
        at_most=len(members),
        hint=f"{len(members)} images have the true class {class_names[c]!r}",
    )
    score = confidence_log_odds(logits[model]).cpu().numpy()[members]
    return int(members[np.argsort(-score, kind="stable")[int(rank) - 1]])


# ---------------------------------------------------------------------------------------------------------
# The interactive view (Jupyter) and its static fallback (the site)
# ---------------------------------------------------------------------------------------------------------


def _png_output(fig: Figure, *, dpi: int, description: str) -> dict:
    """The figure as one display_data output of an Output widget (PNG, base64, with a text fallback)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return {
        "output_type": "display_data",
        "metadata": {},
        "data": {"image/png": base64.b64encode(buffer.getvalue()).decode("ascii"), "text/plain": description},
    }


@dataclass(frozen=True)
class _Controls:
    """The explorer's widgets: how the image is chosen (``mode``), a chooser for each mode, and the figure."""

    mode: ipywidgets.ToggleButtons  # "sample" (by image index) or "rank" (by class, model and confidence rank)
    index: ipywidgets.IntSlider  # the image of mode "sample" (a number box is linked to it)
    cls: ipywidgets.Dropdown  # the true class of mode "rank"
    model: ipywidgets.Dropdown  # the model whose confidence ranks that class's images
    rank: ipywidgets.IntSlider  # the confidence rank, 1 = most confident
    note: ipywidgets.HTML  # which image the rank chose
    by_sample: ipywidgets.HBox  # the chooser of mode "sample", shown in that mode only
    by_rank: ipywidgets.VBox  # the chooser of mode "rank", shown in that mode only
    output: ipywidgets.Output  # the drawn figure, as a PNG
    view: ipywidgets.VBox  # all of them, laid out, with its controls as attributes (see `explore`)


def _controls(n: int, first: int, sizes: np.ndarray, present: list[tuple[str, int]], models: list[str]) -> _Controls:
    """The explorer's widgets, not yet wired to a redraw: image ``first`` of ``n`` in mode "sample", the first
    present class in mode "rank" (``sizes`` counts each class's images)."""
    import ipywidgets as widgets

    mode = widgets.ToggleButtons(
        options=[("sample", "sample"), ("class and rank", "rank")],
        value="sample",
        description="choose by",
        style={"description_width": "initial"},
    )
    slider = widgets.IntSlider(value=first, min=0, max=n - 1, description="image #", continuous_update=False)
    number = widgets.BoundedIntText(value=first, min=0, max=n - 1, layout=widgets.Layout(width="7em"))
    widgets.link((slider, "value"), (number, "value"))
    cls = widgets.Dropdown(options=present, value=present[0][1], description="true class")
    model = widgets.Dropdown(options=models, description="model")
    rank = widgets.IntSlider(value=1, min=1, max=int(sizes[present[0][1]]), description="rank", continuous_update=False)
    note = widgets.HTML()
    output = widgets.Output()
    by_sample, by_rank = widgets.HBox([slider, number]), widgets.VBox([widgets.HBox([cls, model]), rank, note])
    view = widgets.VBox([mode, by_sample, by_rank, output])
    view.mode, view.index, view.cls, view.model, view.rank, view.output = mode, slider, cls, model, rank, output
    return _Controls(mode, slider, cls, model, rank, note, by_sample, by_rank, output, view)


def explore(
    x: Tensor,
    y: Tensor,
    logits: Mapping[str, Tensor],
    *,
    class_names: Sequence[str],
    index: int = 0,
    draw: Draw = logit_figure,
    dpi: int = WIDGET_DPI,
) -> ipywidgets.VBox:
    """An ipywidgets view that redraws `logit_figure` for the image chosen in one of two modes.

    "sample": an image index (a slider and a number box). "class and rank": a true class, a model and a
    confidence rank under that model (1 = most confident, see `index_by_rank`). Every change redraws the
    figure with ``draw(x, y, logits, index, class_names=class_names)`` into the Output widget ``view.output``,
    as a PNG at ``dpi``; the figure is closed once drawn. The returned VBox carries its controls as
    attributes (``mode``, ``index``, ``cls``, ``model``, ``rank``, ``output``) for scripts and tests.
    """
    _check_inputs(x, y, logits, class_names)
    n = x.shape[0]
    first = _check_image_index(index, n)
    sizes = np.bincount(y.detach().cpu().numpy(), minlength=len(class_names))
    present = [(name, c) for c, name in enumerate(class_names) if sizes[c] > 0]
    c = _controls(n, first, sizes, present, list(logits))
    busy = False

    def redraw(change: object = None) -> None:
        if busy:
            return
        c.by_sample.layout.display = None if c.mode.value == "sample" else "none"
        c.by_rank.layout.display = None if c.mode.value == "rank" else "none"
        if c.mode.value == "sample":
            i = c.index.value
        else:
            i = index_by_rank(
                logits, y, model=c.model.value, cls=c.cls.value, rank=c.rank.value, class_names=class_names
            )
            c.note.value = (
                f"rank {c.rank.value} of {c.rank.max} images of class <b>{class_names[c.cls.value]}</b> "
                f"under {c.model.value} (1 = most confident): image #{i}"
            )
        fig = draw(x, y, logits, i, class_names=class_names)
        try:
            c.output.outputs = (_png_output(fig, dpi=dpi, description=f"logit figure of evaluation image #{i}"),)
        finally:
            plt.close(fig)

    def new_class(change: dict) -> None:
        nonlocal busy
        busy = True  # one redraw for the class change, not one more for the rank it moves
        try:
            c.rank.value = 1
            c.rank.max = int(sizes[change["new"]])
        finally:
            busy = False
        redraw()

    c.cls.observe(new_class, names="value")
    for control in (c.mode, c.index, c.model, c.rank):
        control.observe(redraw, names="value")
    redraw()
    return c.view


@dataclass(frozen=True)
class View:
    """One preselected image of the static fallback, with why it was chosen."""

    index: int  # position in the evaluation subset
    reason: str  # how it was selected, in words
    figure: Figure


def static_views(
    x: Tensor,
    y: Tensor,
    logits: Mapping[str, Tensor],
    *,
    class_names: Sequence[str],
    pair: tuple[str, str] = ("ST", "AT"),
    pick: tuple[int | str, str, int] | None = None,
    draw: Draw = logit_figure,
) -> dict[str, View]:
    """The explorer's figure for a few preselected images, for pages where no kernel can redraw the widget.

    With ``pair = (a, b)``: ``"b >> a"``, the image b ranks most above a by confidence (the largest
    rank-normalised difference, `advlogits.chapters.sample_confidence.largest_rank_differences`), and ``"a >> b"``, the
    reverse; with ``pick = (cls, model, rank)`` also ``"class and rank"``, the image `index_by_rank` selects.
    Raises ValueError when no image qualifies for one of the first two (the models rank all images alike).
    """
    _check_inputs(x, y, logits, class_names)
    a, b = pair
    for name in pair:
        _check_model(name, logits)
    score = {name: confidence_log_odds(logits[name]) for name in pair}
    chosen: dict[str, tuple[int, str]] = {}
    for high, low in ((b, a), (a, b)):
        top = largest_rank_differences(score[high], score[low], k=1)
        if len(top) == 0:
            fail(
                "pair",
                "two models that rank some images differently",
                pair,
                hint=f"no image is ranked more confident by {high} than by {low}, so there is no "
                f"'{high} >> {low}' image to show",
            )
        chosen[f"{high} >> {low}"] = (int(top[0]), f"the image {high} ranks most above {low} by confidence")
    if pick is not None:
        cls, model, rank = pick
        i = index_by_rank(logits, y, model=model, cls=cls, rank=rank, class_names=class_names)
        name = class_names[_class_index(cls, class_names)]
        chosen["class and rank"] = (i, f"the image of class {name} ranked {rank} by {model}'s confidence")
    return {
        key: View(index=i, reason=reason, figure=draw(x, y, logits, i, class_names=class_names))
        for key, (i, reason) in chosen.items()
    }
