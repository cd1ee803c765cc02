"""The book's bibliography and glossary are complete and consistent with the pages that use them.

- every entry of ``book/references.bib`` is cited somewhere in the book's sources (the chapters, ``book/``,
  ``docs/``), and every key cited there is in the bib;
- every entry links out: a ``doi``, a ``url`` or an arXiv ``eprint``, and the bibliography style of
  ``_config.yml`` renders that link (checked by formatting each entry with that pybtex style, as
  sphinxcontrib-bibtex does);
- every ``{term}`` used in the book's sources names a term of the glossary (``book/glossary.md``), and no
  term is defined twice.

Citations are MyST roles of sphinxcontrib-bibtex: ``{cite}`key```, ``{cite:p}``, ``{cite:t}`` and the other
``{cite:...}`` and ``{footcite...}`` forms, with comma-separated keys. Terms are ``{term}`text``` or
``{term}`text <term>```; like Sphinx, the comparison ignores case and collapses whitespace. The parsers are
checked on small strings first, so that a test that finds nothing cannot pass by parsing nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from pybtex.database import parse_file
from pybtex.plugin import find_plugin

ROOT = Path(__file__).resolve().parents[1]
BIB = ROOT / "book" / "references.bib"
GLOSSARY = ROOT / "book" / "glossary.md"

# `{cite}`a, b``, `{cite:t}`a``, `{footcite:p}`a``; sphinxcontrib-bibtex's pre- and post-text (`{cite:p}`{see}a{p. 2}``)
# is removed from a key before it is compared. A role written inside a code span (`` `{cite}` ``) is not one.
CITE = re.compile(r"(?<!`)\{(?:foot)?cite(?::[a-z]+)?\}`([^`]+)`")
TERM = re.compile(r"(?<!`)\{term\}`([^`]+)`")
EXPLICIT_TARGET = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.S)
# An opening fence (backticks, tildes or colons, 3 or more) of a glossary directive.
GLOSSARY_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,}|:{3,})\{glossary\}")
ARXIV_ID = re.compile(r"^\d{4}\.\d{4,5}(v\d+)?$")


# ---- parsers ---------------------------------------------------------------------------------------


def cite_keys(text: str) -> set[str]:
    """Every bib key cited in ``text``."""
    keys = set()
    for match in CITE.finditer(text):
        for key in match.group(1).split(","):
            key = re.sub(r"\{[^}]*\}", "", key).strip()
            if key:
                keys.add(key)
    return keys


def _normalise(term: str) -> str:
    return " ".join(term.split()).lower()


def term_uses(text: str) -> list[str]:
    """The glossary terms that the ``{term}`` roles of ``text`` point at, in order, as written."""
    uses = []
    for match in TERM.finditer(text):
        content = match.group(1)
        explicit = EXPLICIT_TARGET.match(content)
        uses.append(" ".join((explicit.group("target") if explicit else content).split()))
    return uses


def glossary_terms(markdown: str) -> list[str]:
    """The terms defined by the ``{glossary}`` directives of a MyST page: in each directive's body, every
    non-blank line that is not indented and not an option (``:sorted:``); a term line's ``term : classifier``
    suffix is dropped, as Sphinx does."""
    terms: list[str] = []
    fence: str | None = None
    for line in markdown.splitlines():
        if fence is None:
            opening = GLOSSARY_FENCE.match(line)
            if opening:
                fence = opening.group("fence")
            continue
        stripped = line.rstrip()
        if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
            fence = None  # the closing fence
        elif stripped and not line[0].isspace() and not re.match(r"^:[\w-]+:", stripped):
            terms.append(" ".join(stripped.split(" : ")[0].split()))
    assert fence is None, "a {glossary} directive is not closed"
    return terms


def missing(used: list[str], defined: list[str]) -> list[str]:
    """The used terms that no defined term matches (ignoring case and repeated whitespace)."""
    known = {_normalise(term) for term in defined}
    return sorted({term for term in used if _normalise(term) not in known})


# ---- the book's sources ----------------------------------------------------------------------------


def _sources() -> dict[str, str]:
    """The text of every source page of the book: the chapters' cells, and the Markdown of book/ and docs/."""
    texts = {}
    for notebook in sorted((ROOT / "chapters").glob("*.ipynb")):
        cells = json.loads(notebook.read_text(encoding="utf8"))["cells"]
        texts[notebook.relative_to(ROOT).as_posix()] = "\n".join(
            "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"] for cell in cells
        )
    for folder in ("book", "docs"):
        for page in sorted((ROOT / folder).rglob("*.md")):
            texts[page.relative_to(ROOT).as_posix()] = page.read_text(encoding="utf8")
    assert any(name.startswith("chapters/") for name in texts) and "book/glossary.md" in texts
    return texts


@pytest.fixture(scope="module")
def sources() -> dict[str, str]:
    return _sources()


@pytest.fixture(scope="module")
def bib():
    return parse_file(str(BIB), bib_format="bibtex")


# ---- the parsers on small strings --------------------------------------------------------------------


def test_cite_parser():
    text = (
        "As {cite}`a2020, b2021` and {cite:t}`c2019` show, see also {cite:p}`{see}d2018{p. 3}` "
        "and {footcite}`e2017`; `{cite}` alone and {term}`f2016` are not citations."
    )
    assert cite_keys(text) == {"a2020", "b2021", "c2019", "d2018", "e2017"}


def test_term_parser():
    text = (
        "Run {term}`PGD`, then {term}`the ensemble <AutoAttack>` and {term}`two\n  words`; "
        "{cite}`PGD2018` and `{term}` alone are not terms."
    )
    assert term_uses(text) == ["PGD", "AutoAttack", "two words"]


def test_glossary_parser_and_missing_terms():
    page = "\n".join(
        [
            "# Glossary",
            "",
            "Text with a line that looks like a term.",
            "",
            "```{glossary}",
            ":sorted:",
            "",
            "PGD",
            "projected gradient descent",
            "  An attack.",
            "",
            "  A second paragraph of its definition.",
            "",
            "logit gap : statistic",
            "  The top logit minus the runner-up.",
            "```",
            "",
            "Text after the glossary.",
        ]
    )
    terms = glossary_terms(page)
    assert terms == ["PGD", "projected gradient descent", "logit gap"]
    assert missing(["pgd", "Logit  gap", "FGSM", "Projected gradient descent"], terms) == ["FGSM"]
    assert missing([], terms) == []


# ---- the book ----------------------------------------------------------------------------------------


def test_every_cited_key_is_in_the_bib(sources, bib):
    unknown = {name: sorted(cite_keys(text) - set(bib.entries)) for name, text in sources.items()}
    unknown = {name: keys for name, keys in unknown.items() if keys}
    assert not unknown, f"cited but not in {BIB.name}: {unknown}"


def test_every_bib_entry_is_cited(sources, bib):
    cited = set().union(*(cite_keys(text) for text in sources.values()))
    uncited = sorted(set(bib.entries) - cited)
    assert not uncited, (
        f"entries of {BIB.name} cited nowhere in chapters/, book/ or docs/: {uncited}; "
        "cite them where they belong or remove them"
    )


def test_every_bib_entry_links_out(bib):
    problems = []
    for key, entry in bib.entries.items():
        fields = {name.lower(): value for name, value in entry.fields.items()}
        if not {"doi", "url", "eprint"} & set(fields):
            problems.append(f"{key}: no doi, url or eprint")
        if "eprint" in fields and not (
            ARXIV_ID.match(fields["eprint"]) and fields.get("archiveprefix", "").lower() == "arxiv"
        ):
            problems.append(f"{key}: eprint {fields['eprint']!r} is not an arXiv id with archiveprefix = arXiv")
        if "doi" in fields and not fields["doi"].startswith("10."):
            problems.append(f"{key}: doi {fields['doi']!r} is not a bare DOI (10.xxxx/...)")
    assert not problems, problems


def test_the_book_style_renders_every_link(bib):
    """Format the bib with the pybtex style that _config.yml names (sphinxcontrib-bibtex's default is plain)
    and check that every entry's HTML has a link out."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf8"))
    style_name = config.get("sphinx", {}).get("config", {}).get("bibtex_default_style", "plain")
    style = find_plugin("pybtex.style.formatting", style_name)()
    html = find_plugin("pybtex.backends", "html")()
    unlinked = [
        entry.key for entry in style.format_bibliography(bib) if 'href="https://' not in entry.text.render(html)
    ]
    assert not unlinked, f"style {style_name!r} renders no link for: {unlinked}"


def test_references_page_lists_the_bibliography():
    page = (ROOT / "book" / "references.md").read_text(encoding="utf8")
    assert re.search(r"^```\{bibliography\}", page, re.M), "book/references.md has no {bibliography} directive"
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf8"))
    assert "book/references.bib" in config["bibtex_bibfiles"]


def test_every_term_used_is_in_the_glossary(sources):
    terms = glossary_terms(sources["book/glossary.md"])
    assert len(terms) >= 50, f"the glossary parser found only {len(terms)} terms in book/glossary.md"
    unknown = {name: missing(term_uses(text), terms) for name, text in sources.items()}
    unknown = {name: terms for name, terms in unknown.items() if terms}
    assert not unknown, f"{{term}} roles without a glossary entry in book/glossary.md: {unknown}"


def test_no_glossary_term_is_defined_twice():
    terms = [_normalise(term) for term in glossary_terms(GLOSSARY.read_text(encoding="utf8"))]
    assert len(terms) == len(set(terms)), sorted({term for term in terms if terms.count(term) > 1})


def test_glossary_and_teaching_pages_are_in_the_toc():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf8"))
    files = [chapter["file"] for part in toc["parts"] for chapter in part["chapters"]]
    assert "book/glossary" in files and "book/teaching" in files
