"""The built site's prose, read from its HTML: no defect a reader would trip over that a test can see.

* no Markdown table row rendered as a paragraph (a table broken by a stray pipe: the row shows as "| C3 | ...");
* no literal backticks in rendered prose (Markdown code that a glued string or a table cell did not render);
* no sentence cut short into "... or not." (a glued value that should have said which);
* no "a" before a word that starts with a vowel sound in a figure's or a table's generated text ("a Ankle boot").

Run after the book build, as tests/test_site.py is (ADVLOGITS_SITE_DIR; `make test` sets it). One more test plants
each defect in a page and checks that the checker reports it.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from test_site import _page_params, site_dir  # noqa: F401

pytestmark = pytest.mark.site

PROSE_TAGS = {"p", "li", "td", "th", "figcaption", "dd"}
TEXT_TAGS = {"p", "li", "figcaption", "dd"}  # where a line of Markdown table can end up as text
SKIPPED_TAGS = {"code", "pre", "script", "style", "kbd", "samp", "math"}
ARTICLE_BEFORE_VOWEL = re.compile(r"\ba (?=(?:Ankle|[AEIOU][a-z]))")


class _Prose(HTMLParser):
    """The text of every prose element (paragraphs, list items, table cells, captions), without code."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, str]] = []  # (tag, text)
        self._open: list[list[str]] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in SKIPPED_TAGS or any(k == "class" and v and "MathJax" in v for k, v in attrs):
            self._skip += 1
        elif tag in PROSE_TAGS:
            self._open.append([tag])

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIPPED_TAGS and self._skip:
            self._skip -= 1
        elif tag in PROSE_TAGS and self._open:
            opened, *parts = self._open.pop()
            self.blocks.append((opened, " ".join("".join(parts).split())))

    def handle_data(self, data: str) -> None:
        if self._open and not self._skip:
            self._open[-1].append(data)


def prose_problems(html: str) -> list[str]:
    """Each prose defect of a page, as a line naming it and the text around it."""
    parser = _Prose()
    parser.feed(html)
    problems = []
    for tag, text in parser.blocks:
        if tag in TEXT_TAGS and text.startswith("|") and text.count("|") >= 3:
            problems.append(f"a table row rendered as text: {text[:80]!r}")
        if "`" in text:
            problems.append(f"literal backticks in prose: {text[:80]!r}")
        if re.search(r"\bor not\.", text):
            problems.append(f"a sentence cut short into 'or not.': {text[:80]!r}")
        if ARTICLE_BEFORE_VOWEL.search(text):
            problems.append(f"'a' before a vowel: {text[:80]!r}")
    return problems


@pytest.mark.parametrize("page", _page_params())
def test_the_prose_of_every_page_reads_clean(page: str, site_dir: Path) -> None:  # noqa: F811
    problems = prose_problems((site_dir / page).read_text(encoding="utf8"))
    assert not problems, f"{page}:\n" + "\n".join(problems)


def test_the_prose_checker_flags_each_defect_planted_in_a_page() -> None:
    clean = "<p>The gap is <code>z_(1) - z_(2)</code>, 2.3 [2.1, 2.5] logit units.</p><pre>| a | b |</pre>"
    assert prose_problems(clean) == []
    planted = {
        "a table row rendered as text": "<p>| C3 | theory | `eps * |</p>",
        "literal backticks in prose": "<li>the notes show `literal` backticks</li>",
        "a sentence cut short into 'or not.'": "<p>every comparison of Fig. 2.2 below 0 or not.</p>",
        "'a' before a vowel": "<figcaption>ST is sure it is a Ankle boot</figcaption>",
    }
    for kind, html in planted.items():
        found = prose_problems(html)
        assert any(p.startswith(kind) for p in found), (kind, found)
