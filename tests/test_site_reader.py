"""The built site as a reader meets it, measured in a real browser at 1280 CSS pixels:

* no page shows papermill's ``# Parameters`` cell, and no code cell scrolls sideways;
* every figure has real alt text (words, not a file name or a hash);
* figure text is readable: the smallest font of each figure, as shown on the page, is at least 0.75 times the
  body text (each PNG records its smallest font in points; the page's scale comes from the image's natural and
  displayed widths);
* no chapter shows a control that does nothing (a widget saved without a kernel behind it);
* the scorecard's figure and its table start within the first 1,200 pixels of the page.

One more test plants each defect in a page and checks that the checker reports it. Run after the book build, as
tests/test_site.py is (the same fixtures, browser and ADVLOGITS_SITE_DIR).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from advlogits.chapters import style

from test_site import _page_html, _page_params, _serve, _wait_until_settled, base_url, driver, site_dir  # noqa: F401

pytestmark = pytest.mark.site

WINDOW_WIDTH = 1280
FONT_RATIO = 0.75  # figure text at least this fraction of the body text
SCORECARD_FOLD = 1200  # CSS pixels from the top of the page
SCORECARD_PAGE = "chapters/05_scorecard.html"

READER_JS = r"""
const article = document.querySelector('article') || document.body;
const shown = (el) => { const r = el.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden'; };
const top = (el) => el.getBoundingClientRect().top + window.scrollY;
const para = Array.from(article.querySelectorAll('p')).find(shown);
const code = Array.from(article.querySelectorAll('div.cell pre, div.cell div.output, div.cell_output'))
  .filter(shown).map((el) => ({text: el.textContent.trim().slice(0, 60), scroll: el.scrollWidth,
                               client: el.clientWidth, overflow: getComputedStyle(el).overflowX}));
const images = Array.from(article.querySelectorAll('img')).filter(shown).map((img) => ({
  src: img.currentSrc || img.src, alt: img.getAttribute('alt') || '', client: img.clientWidth,
  natural: img.naturalWidth}));
const controls = Array.from(article.querySelectorAll(
  'input, select, textarea, .jupyter-widgets, .widget-slider, .widget-dropdown')).filter(shown)
  .map((el) => el.outerHTML.slice(0, 80));
const scorecardFigure = document.getElementById('fig-scorecard');
const table = article.querySelector('table');
return {bodyPx: para ? parseFloat(getComputedStyle(para).fontSize) : null, code, images, controls,
        parameters: Array.from(article.querySelectorAll('pre')).filter(shown)
          .filter((p) => p.textContent.trim().startsWith('# Parameters')).length,
        figureBottom: scorecardFigure ? scorecardFigure.getBoundingClientRect().bottom + window.scrollY : null,
        tableTop: table ? top(table) : null};
"""

_HASHLIKE = re.compile(r"^[0-9a-f]{8,}|\.(png|svg|jpe?g)$|_images/", re.IGNORECASE)


def _local_file(site: Path, src: str) -> Path | None:
    path = Path(unquote(urlsplit(src).path).lstrip("/"))
    return site / path if (site / path).is_file() else None


def figure_font_px(png: Path, *, displayed: float, natural: float) -> float | None:
    """The smallest font of a figure PNG as the page shows it, in CSS pixels (None: the PNG records none)."""
    from PIL import Image

    with Image.open(png) as image:
        points = image.text.get(style.MIN_FONT_KEY) if hasattr(image, "text") else None
        dpi = float(image.info.get("dpi", (style.DPI,))[0])
    if points is None or not natural:
        return None
    return float(points) / 72 * dpi * displayed / natural


def reader_problems(measured: dict[str, Any], site: Path, page: str) -> list[str]:
    """Everything on the page a reader should not meet, from `READER_JS`'s measurements."""
    problems = []
    if measured["parameters"]:
        problems.append(f"{measured['parameters']} code cell(s) show papermill's # Parameters")
    for block in measured["code"]:
        if block["scroll"] > block["client"] + 1 and block["overflow"] in ("auto", "scroll"):
            problems.append(f"code cell scrolls sideways ({block['scroll']} > {block['client']} px): {block['text']!r}")
    body = measured["bodyPx"]
    for image in measured["images"]:
        alt = image["alt"].strip()
        if len(alt) < 15 or " " not in alt or _HASHLIKE.search(alt):
            problems.append(f"figure without real alt text: {image['src']} has alt {alt!r}")
        png = _local_file(site, image["src"])
        if png is None or png.suffix != ".png" or not body:
            continue
        px = figure_font_px(png, displayed=image["client"], natural=image["natural"])
        if px is None:
            problems.append(f"figure not drawn in the book's style (no recorded font size): {image['src']}")
        elif px < FONT_RATIO * body:
            problems.append(
                f"figure text too small: {px:.1f} px against {body:.1f} px body text "
                f"({px / body:.2f} < {FONT_RATIO}): {image['src']}"
            )
    problems += [f"a control that does nothing on a static page: {html}" for html in measured["controls"]]
    if page == SCORECARD_PAGE:
        if measured["figureBottom"] is None or measured["figureBottom"] > SCORECARD_FOLD:
            problems.append(
                f"the scorecard figure ends at {measured['figureBottom']} px, not within {SCORECARD_FOLD} px"
            )
        if measured["tableTop"] is None or measured["tableTop"] > SCORECARD_FOLD:
            problems.append(f"the scorecard table starts at {measured['tableTop']} px, not within {SCORECARD_FOLD} px")
    return problems


def measure(browser: Any, url: str) -> dict[str, Any]:
    browser.set_window_size(WINDOW_WIDTH, 900)
    browser.get(url)
    _wait_until_settled(browser)
    return browser.execute_script(READER_JS)


@pytest.mark.parametrize(
    "page", [p for p in _page_params() if p.startswith(("chapters/", "book/", "docs/")) or p == "(no site)"]
)
def test_pages_read_well(page: str, site_dir: Path, base_url: str, driver: Any) -> None:
    measured = measure(driver, base_url + page)
    assert measured["bodyPx"], f"{page}: no paragraph of body text"
    problems = reader_problems(measured, site_dir, page)
    assert not problems, f"{page}: {len(problems)} problem(s):\n  " + "\n  ".join(problems)


def test_the_scorecard_page_and_every_chapter_figure_are_measured(
    site_dir: Path,
    base_url: str,
    driver: Any,
) -> None:
    """The checks above ran on something: the scorecard page exists and its figure records its fonts."""
    measured = measure(driver, base_url + SCORECARD_PAGE)
    pngs = [_local_file(site_dir, i["src"]) for i in measured["images"]]
    assert pngs and all(p is not None for p in pngs), "the scorecard page shows its figure"
    px = figure_font_px(pngs[0], displayed=measured["images"][0]["client"], natural=measured["images"][0]["natural"])
    assert px is not None and px >= FONT_RATIO * measured["bodyPx"]


def test_reader_checks_flag_each_defect_planted_in_a_page(driver: Any, tmp_path: Path) -> None:
    fig, ax = style.figure(2.0, width=13.2)  # drawn twice the column's width: its text shows at half size
    ax.plot([0, 1])
    (tmp_path / "small.png").write_bytes(style.png(fig))
    long = "x = " + "1 + " * 60 + "1"
    body = (
        "<article><p>Body text of the page.</p>"
        f"<div class='cell'><div class='cell_input'><pre style='overflow-x:auto'>{long}</pre></div></div>"
        "<div class='cell'><pre># Parameters\nprofile = 'smoke'</pre></div>"
        "<img src='small.png' alt='9f8e7d6c5b4a39281706' style='width:660px'>"
        "<input type='range'></article>"
    )
    (tmp_path / "page.html").write_text(_page_html("", body))
    with _serve(tmp_path) as url:
        measured = measure(driver, url + "page.html")
    problems = "\n".join(reader_problems(measured, tmp_path, "page.html"))
    for expected in (
        "show papermill's # Parameters",
        "code cell scrolls sideways",
        "figure without real alt text",
        "figure text too small",
        "a control that does nothing",
    ):
        assert expected in problems, f"the planted defect {expected!r} was not reported:\n{problems}"
    scorecard = reader_problems(
        {
            **measured,
            "parameters": 0,
            "code": [],
            "images": [],
            "controls": [],
            "figureBottom": 1500.0,
            "tableTop": None,
        },
        tmp_path,
        SCORECARD_PAGE,
    )
    assert len(scorecard) == 2 and "ends at 1500.0 px" in scorecard[0]


def test_the_student_edition_keeps_the_exercises_and_drops_every_solution() -> None:
    """`make site STUDENT=1` (which `make test` builds): the same chapters, every exercise, no solution."""
    import os

    value = os.environ.get("ADVLOGITS_STUDENT_SITE_DIR", "").strip()
    if not value:
        pytest.skip(
            "ADVLOGITS_STUDENT_SITE_DIR is not set: build `make site PROFILE=smoke STUDENT=1` and set it to "
            "_build/jb/smoke-student/_build/html; `make test` does both"
        )
    student = Path(value)
    chapters = sorted((student / "chapters").glob("*.html"))
    assert chapters, f"{student} has no chapter pages"
    exercises = solutions = 0
    for page in chapters:
        html = page.read_text(encoding="utf8")
        exercises += html.count('class="exercise')
        solutions += html.count('class="solution')
    assert exercises >= 5, "every chapter keeps its exercises"
    assert solutions == 0, f"{solutions} solutions remain in the student edition"
    assert "(student edition)" in (student / "index.html").read_text(encoding="utf8") or any(
        "(student edition)" in p.read_text(encoding="utf8") for p in chapters[:1]
    )
