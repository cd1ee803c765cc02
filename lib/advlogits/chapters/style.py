"""One figure style for the whole book: sized to the page's content column, text the size of the body text,
colours a colour-blind reader can tell apart, and figures glued into the page as PNG at twice the screen's
resolution with their font sizes recorded (the browser tests read them back).

The book's content column is 660 CSS pixels wide at a 1280-pixel window, and a figure is drawn at
`PIXELS_PER_INCH` CSS pixels per inch, so a figure `COLUMN_INCHES` wide fills the column and a font of
``pt`` points shows at ``pt * PIXELS_PER_INCH / 72`` CSS pixels: 11 pt is 15.3 px against the body's 16 px.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import matplotlib as mpl
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.text import Text

COLUMN_INCHES = 6.6  # a figure this wide fills the content column
PIXELS_PER_INCH = 100  # CSS pixels per figure inch on the page
DPI = 2 * PIXELS_PER_INCH  # PNG pixels per inch: sharp on high-density screens
FONT_PT = 11.0  # labels, titles, legends
SMALL_PT = 10.0  # tick labels, annotations: the smallest text in any figure
MIN_FONT_KEY = "advlogits:min-font-pt"  # PNG text chunk: the smallest font of the figure, in points

# Okabe and Ito's palette, which stays distinct under the common colour-vision deficiencies.
OKABE_ITO = {
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "sky": "#56B4E9",
    "orange": "#E69F00",
    "green": "#009E73",
    "purple": "#CC79A7",
    "yellow": "#F0E442",
    "black": "#000000",
    "grey": "#999999",
}
MODEL_COLORS = {
    "ST": OKABE_ITO["blue"],
    "AT": OKABE_ITO["vermillion"],
    "ST'": OKABE_ITO["sky"],
    "AT'": OKABE_ITO["orange"],
}
CYCLE = [OKABE_ITO[k] for k in ("blue", "vermillion", "green", "purple", "sky", "orange", "black", "grey")]
VERDICT_COLORS = {
    "reproduced": OKABE_ITO["green"],
    "not reproduced": OKABE_ITO["vermillion"],
    "inconclusive": OKABE_ITO["orange"],
    "not testable": OKABE_ITO["grey"],
}

RC = {
    "font.size": FONT_PT,
    "axes.titlesize": FONT_PT,
    "axes.labelsize": FONT_PT,
    "legend.fontsize": SMALL_PT,
    "legend.title_fontsize": FONT_PT,
    "xtick.labelsize": SMALL_PT,
    "ytick.labelsize": SMALL_PT,
    "figure.titlesize": FONT_PT,
    "figure.labelsize": FONT_PT,
    "axes.prop_cycle": mpl.cycler(color=CYCLE),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "figure.dpi": PIXELS_PER_INCH,
    "savefig.dpi": DPI,
}


def apply() -> None:
    """Make the book's style matplotlib's default in this process (the chapters call it once)."""
    mpl.rcParams.update(RC)


def color(label: str, i: int = 0) -> str:
    """The colour of model ``label`` (ST blue, AT vermillion, ST' sky blue, AT' orange), else the ``i``-th
    colour of the palette after those."""
    return MODEL_COLORS.get(label, CYCLE[(i + 2) % len(CYCLE)])


def figure(height: float, *, width: float = COLUMN_INCHES, **subplots) -> tuple[Figure, object]:
    """``plt.subplots`` in the book's style, ``width`` x ``height`` inches (default: the column's width)."""
    with mpl.rc_context(RC):
        return plt.subplots(figsize=(width, height), layout="constrained", **subplots)


def texts(fig: Figure) -> Iterator[Text]:
    """Every visible, non-empty text of ``fig`` (tick labels, labels, titles, legends, annotations)."""
    for text in fig.findobj(Text):
        if text.get_visible() and text.get_text().strip() and _shown(text):
            yield text


def _shown(text: Text) -> bool:
    axes = text.axes
    return axes is None or axes.get_visible()


def min_font_pt(fig: Figure) -> float:
    """The smallest font size in ``fig``, in points."""
    return min((t.get_fontsize() for t in texts(fig)), default=FONT_PT)


def png(fig: Figure) -> bytes:
    """``fig`` as a PNG at `DPI`, its size exactly its figure size, with its smallest font recorded."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={MIN_FONT_KEY: f"{min_font_pt(fig):g}"})
    return buffer.getvalue()


def glue_figure(name: str, fig: Figure) -> None:
    """Glue ``fig`` under ``name`` for a ``{glue:figure}`` directive (which gives its caption and alt text),
    drawn at `PIXELS_PER_INCH` CSS pixels per inch, and close it."""
    from IPython.display import Image
    from myst_nb import glue

    width = round(fig.get_figwidth() * PIXELS_PER_INCH)
    glue(name, Image(data=png(fig), format="png", width=width), display=False)
    plt.close(fig)
