"""Tests for advlogits.chapters.explorer (chapter 3): the figure draws the logits it is given, the rank selection,
the widget redraws."""

from __future__ import annotations

import base64

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from advlogits.chapters import explorer
from advlogits.chapters.explorer import MODEL_COLORS, OTHER_BAR, TRUE_EDGE, index_by_rank, logit_figure, static_views

NAMES = ("cat", "dog", "emu")


def _data() -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """6 images of 3 classes; ST and AT logits chosen by hand so every rank below can be checked on paper."""
    x = torch.linspace(0, 1, 6 * 4).reshape(6, 1, 2, 2)
    y = torch.tensor([0, 1, 0, 2, 0, 1])
    st = torch.tensor(
        [
            [4.0, 0.0, 0.0],  # cat, confident
            [0.0, 1.0, 0.0],  # dog, unsure
            [1.0, 0.0, 0.0],  # cat, unsure
            [0.0, 0.0, 9.0],  # emu, very confident
            [2.0, 0.0, 0.0],  # cat, in between
            [0.0, 5.0, 0.0],
        ]
    )  # dog, confident
    at = torch.tensor(
        [
            [0.5, 0.0, 0.0],
            [0.0, 2.0, -1.0],
            [3.0, 0.0, 0.0],
            [1.0, 0.0, 0.0],  # AT predicts cat on the emu image
            [0.0, 1.5, 0.0],  # AT predicts dog on a cat image
            [0.0, 0.2, 0.0],
        ]
    )
    return x, y, {"ST": st, "AT": at}


def _panels(fig: Figure) -> dict[str, plt.Axes]:
    """The figure's bar panels by title prefix, e.g. 'ST logits' and 'ST predicts'."""
    return {" ".join(ax.get_title().split()[:2]): ax for ax in fig.axes if ax.patches}


# ---------------------------------------------------------------------------------------------------------
# The figure
# ---------------------------------------------------------------------------------------------------------


def test_logit_bars_are_the_given_logits_and_probability_bars_sum_to_100() -> None:
    x, y, z = _data()
    fig = logit_figure(x, y, z, 4, class_names=NAMES)
    panels = _panels(fig)
    assert set(panels) == {"ST: max", "AT: max", "ST predicts", "AT predicts"}
    for name in ("ST", "AT"):
        heights = [bar.get_height() for bar in panels[f"{name}: max"].patches]
        assert heights == pytest.approx(z[name][4].tolist())
        probs = [bar.get_height() for bar in panels[f"{name} predicts"].patches]
        assert sum(probs) == pytest.approx(100.0)
        assert probs == pytest.approx((100 * z[name][4].double().softmax(0)).tolist())
        assert [t.get_text() for t in panels[f"{name}: max"].get_xticklabels()] == list(NAMES)
    assert panels["ST: max"].get_ylabel() == "logit $z_k$" and panels["ST predicts"].get_ylabel() == "softmax (%)"
    assert panels["AT predicts"].get_ylabel() == "", "the shared scale is labelled once, on the left"
    # the image, with its index and true class
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 1 and image_axes[0].get_title() == "image #4\ntrue: cat"
    np.testing.assert_allclose(image_axes[0].images[0].get_array(), x[4, 0].numpy())


def test_titles_give_max_logit_gap_and_prediction() -> None:
    x, y, z = _data()
    panels = _panels(logit_figure(x, y, z, 1, class_names=NAMES))
    assert panels["ST: max"].get_title() == "ST: max 1.00, gap 1.00"
    assert panels["AT: max"].get_title() == "AT: max 2.00, gap 2.00"
    assert panels["AT predicts"].get_title().startswith("AT predicts dog (")
    assert panels["ST: max"].get_ylim() == panels["AT: max"].get_ylim()  # one scale for both models


def test_the_argmax_and_the_true_class_are_highlighted() -> None:
    x, y, z = _data()
    panels = _panels(logit_figure(x, y, z, 4, class_names=NAMES))  # true cat; ST says cat, AT says dog
    for name, pred in (("ST", 0), ("AT", 1)):
        for key in (f"{name}: max", f"{name} predicts"):
            bars = panels[key].patches
            colored = [c for c, bar in enumerate(bars) if bar.get_facecolor() == to_rgba(MODEL_COLORS[name])]
            assert colored == [pred]
            assert all(bar.get_facecolor() == to_rgba(OTHER_BAR) for c, bar in enumerate(bars) if c != pred)
            outlined = [c for c, bar in enumerate(bars) if bar.get_edgecolor() == to_rgba(TRUE_EDGE)]
            assert outlined == [0]
            assert panels[key].get_xticklabels()[0].get_fontweight() == "bold"
    assert panels["AT predicts"].get_title().startswith("AT predicts dog")


def test_any_set_of_models_gets_its_own_panels() -> None:
    x, y, z = _data()
    fig = logit_figure(x, y, {"ST": z["ST"], "ST'": z["AT"], "AT'": z["ST"]}, 0, class_names=NAMES)
    assert len(fig.axes) == 1 + 2 * 3
    with pytest.raises(
        ValueError,
        match=r"logits\['AT'\] must be of shape \(6, 3\), one row per image and one "
        r"column per class name \(got \(5, 3\)\)",
    ):
        logit_figure(x, y, {"AT": torch.zeros(5, 3)}, 0, class_names=NAMES)
    with pytest.raises(ValueError, match=r"index must be an integer image index in \[0, 6\) \(got 6\)"):
        logit_figure(x, y, z, 6, class_names=NAMES)


# ---------------------------------------------------------------------------------------------------------
# Selecting an image by class and confidence rank
# ---------------------------------------------------------------------------------------------------------


def test_index_by_rank_on_hand_made_logits() -> None:
    _, y, z = _data()
    # cats are images 0, 2, 4. ST's confidences: 4.0-margin (0) > 2.0 (4) > 1.0 (2).
    assert [index_by_rank(z, y, model="ST", cls="cat", rank=r, class_names=NAMES) for r in (1, 2, 3)] == [0, 4, 2]
    # AT: image 2 (cat at 3.0) is most confident, then image 4 (dog at 1.5 wins), then image 0 (0.5).
    assert [index_by_rank(z, y, model="AT", cls=0, rank=r, class_names=NAMES) for r in (1, 2, 3)] == [2, 4, 0]
    # dogs are images 1 and 5: ST is surer of 5, AT of 1.
    assert index_by_rank(z, y, model="ST", cls="dog", rank=1, class_names=NAMES) == 5
    assert index_by_rank(z, y, model="AT", cls="dog", rank=1, class_names=NAMES) == 1
    assert index_by_rank(z, y, model="AT", cls="dog", rank=2, class_names=NAMES) == 5
    # an exact tie goes to the lower index
    tied = {"M": torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])}
    ys = torch.tensor([0, 0, 0])
    assert [index_by_rank(tied, ys, model="M", cls=0, rank=r, class_names=("a", "b")) for r in (1, 2, 3)] == [0, 1, 2]


def test_index_by_rank_errors_name_the_bad_argument() -> None:
    _, y, z = _data()
    with pytest.raises(ValueError, match=r"cls must be a class name, one of cat, dog, emu \(got 'cow'\)"):
        index_by_rank(z, y, model="ST", cls="cow", rank=1, class_names=NAMES)
    with pytest.raises(ValueError, match=r"cls must be a class name or a label in \[0, 3\) \(got 3\)"):
        index_by_rank(z, y, model="ST", cls=3, rank=1, class_names=NAMES)
    with pytest.raises(
        ValueError,
        match=r"rank must be an integer >= 1 and <= 3 \(got 4\); 3 images have the true "
        r"class 'cat'",
    ):
        index_by_rank(z, y, model="ST", cls="cat", rank=4, class_names=NAMES)
    with pytest.raises(
        ValueError,
        match=r"rank must be an integer >= 1 and <= 2 \(got 0\); 2 images have the true "
        r"class 'dog'",
    ):
        index_by_rank(z, y, model="ST", cls="dog", rank=0, class_names=NAMES)
    with pytest.raises(ValueError, match=r"model must be one of the models given \(ST, AT\) \(got 'TRADES'\)"):
        index_by_rank(z, y, model="TRADES", cls="cat", rank=1, class_names=NAMES)
    no_emu = torch.tensor([0, 1, 0, 1, 0, 1])
    with pytest.raises(
        ValueError,
        match=r"cls must be a class that some image has \(got 'emu'\); no evaluation image "
        r"has this true class",
    ):
        index_by_rank(z, no_emu, model="ST", cls="emu", rank=1, class_names=NAMES)


# ---------------------------------------------------------------------------------------------------------
# The static fallback
# ---------------------------------------------------------------------------------------------------------


def test_static_views_pick_both_ends_and_the_class_rank_image() -> None:
    x, y, z = _data()
    views = static_views(x, y, z, class_names=NAMES, pick=("cat", "AT", 1))
    assert list(views) == ["AT >> ST", "ST >> AT", "class and rank"]
    # Confidence log-odds z_c - log(sum of the others' exp): ST 3.31 0.31 0.31 8.31 1.31 4.31, AT -0.19 1.69
    # 2.31 0.31 0.81 -0.49. Ranks (0 = lowest, ties averaged): ST 3 0.5 0.5 5 2 4, AT 1 4 5 2 3 0; AT minus ST:
    # -2 3.5 4.5 -3 1 -4, so image 2 is the AT >> ST end and image 5 the ST >> AT end.
    assert views["AT >> ST"].index == 2
    assert views["ST >> AT"].index == 5
    assert views["class and rank"].index == 2 and "cat" in views["class and rank"].reason
    for view in views.values():
        image_axes = [ax for ax in view.figure.axes if ax.images]
        assert image_axes[0].get_title().startswith(f"image #{view.index}\n")
    with pytest.raises(
        ValueError,
        match=r"pair must be two models that rank some images differently "
        r"\(got \('ST', 'AT'\)\); no image is ranked more confident by AT than by ST",
    ):
        static_views(x, y, {"ST": z["ST"], "AT": z["ST"].clone()}, class_names=NAMES)
    with pytest.raises(ValueError, match=r"model must be one of the models given \(ST\) \(got 'AT'\)"):
        static_views(x, y, {"ST": z["ST"]}, class_names=NAMES)


# ---------------------------------------------------------------------------------------------------------
# The interactive view: a real ipywidgets widget, no kernel needed to change its values
# ---------------------------------------------------------------------------------------------------------


def _shown(view) -> tuple[str, bytes]:
    (output,) = view.output.outputs
    return output["data"]["text/plain"], base64.b64decode(output["data"]["image/png"])


def test_explore_redraws_when_the_index_changes() -> None:
    widgets = pytest.importorskip("ipywidgets")
    x, y, z = _data()
    calls = []

    def draw(x, y, logits, index, *, class_names) -> Figure:  # a pyplot figure: explore must close it
        calls.append(index)
        fig, ax = plt.subplots(figsize=(2, 1))
        ax.set_title(f"image {index}: {class_names[int(y[index])]}")
        return fig

    open_figures = plt.get_fignums()
    view = explorer.explore(x, y, z, class_names=NAMES, index=1, draw=draw)
    assert isinstance(view, widgets.VBox) and isinstance(view.output, widgets.Output)
    text, png = _shown(view)
    assert calls == [1] and text.endswith("#1") and png.startswith(b"\x89PNG")
    view.index.value = 3
    new_text, new_png = _shown(view)
    assert calls == [1, 3] and new_text.endswith("#3") and new_png != png
    view.index.value = 3  # no change, no redraw
    assert calls == [1, 3]
    assert plt.get_fignums() == open_figures  # every drawn figure is closed


def test_explore_in_class_and_rank_mode_shows_the_selected_image() -> None:
    pytest.importorskip("ipywidgets")
    x, y, z = _data()
    calls = []

    def draw(*args, **kwargs) -> Figure:
        calls.append(args[3])
        return logit_figure(*args, **kwargs)

    view = explorer.explore(x, y, z, class_names=NAMES, draw=draw)
    assert calls == [0]
    view.mode.value = "rank"  # class cat, model ST, rank 1: image 0
    assert calls[-1] == 0 and view.rank.max == 3
    view.model.value = "AT"
    assert calls[-1] == 2
    view.rank.value = 3
    assert calls[-1] == 0 and _shown(view)[0].endswith("#0")
    n = len(calls)
    view.cls.value = 1  # dog: the rank returns to 1, its maximum to 2 images, with one redraw
    assert view.rank.value == 1 and view.rank.max == 2 and calls[n:] == [1]
    view.mode.value = "sample"
    assert calls[-1] == view.index.value == 0
    assert [o[0] for o in view.cls.options] == list(NAMES)
    with pytest.raises(ValueError, match=r"index must be an integer image index in \[0, 6\) \(got -1\)"):
        explorer.explore(x, y, z, class_names=NAMES, index=-1)
