"""advlogits.chapters.style: figures sized to the page's column, text the body's size, a colour-blind-safe
palette, PNGs that record their smallest font for the browser tests."""

from __future__ import annotations

import io

import matplotlib
import pytest
from PIL import Image

from advlogits.chapters import style


def test_text_shows_near_the_body_size_on_the_page():
    body_px = 16.0
    for pt in (style.FONT_PT, style.SMALL_PT):
        css_px = pt * style.PIXELS_PER_INCH / 72
        assert 0.75 * body_px <= css_px <= body_px / 0.75, f"{pt} pt shows at {css_px:.1f} px"
    assert style.COLUMN_INCHES * style.PIXELS_PER_INCH == 660, "a full-width figure fills the 660 px column"


def test_palette_is_okabe_ito_and_models_keep_their_colours():
    assert style.color("ST") == "#0072B2" and style.color("AT") == "#D55E00"
    assert style.color("ST'") != style.color("ST") and style.color("KD-AT", 0) in style.CYCLE
    assert len(set(style.VERDICT_COLORS.values())) == 4


def test_png_has_the_figure_size_at_twice_the_css_resolution_and_records_the_smallest_font():
    fig, ax = style.figure(2.0)
    ax.plot([0, 1], [0, 1], label="a line")
    ax.set(xlabel="x (units)", ylabel="y (units)")
    ax.annotate("tiny", (0.5, 0.5), fontsize=7)
    image = Image.open(io.BytesIO(style.png(fig)))
    assert image.size == (round(style.COLUMN_INCHES * style.DPI), round(2.0 * style.DPI))
    assert image.text[style.MIN_FONT_KEY] == "7", "the annotation is the smallest text"
    matplotlib.pyplot.close(fig)


def test_the_style_sets_the_body_sizes_without_leaking_into_other_figures():
    fig, ax = style.figure(2.0)
    ax.set(xlabel="x")
    assert ax.xaxis.label.get_fontsize() == style.FONT_PT
    assert ax.get_xticklabels()[0].get_fontsize() == style.SMALL_PT
    assert style.min_font_pt(fig) == style.SMALL_PT
    matplotlib.pyplot.close(fig)


def test_glue_figure_glues_a_png_drawn_at_the_page_resolution(monkeypatch):
    glued = {}
    pytest.importorskip("myst_nb")
    import myst_nb

    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display: glued.update({name: (value, display)}))
    fig, _ = style.figure(2.5, width=4.0)
    style.glue_figure("fig_x", fig)
    image, display = glued["fig_x"]
    assert display is False and image.width == 400 and image.format == "png"
    assert image.data.startswith(b"\x89PNG")
    assert not matplotlib.pyplot.fignum_exists(fig.number), "the figure is closed"
