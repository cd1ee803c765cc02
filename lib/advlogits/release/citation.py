"""The README's "How to cite" section, rendered from ``CITATION.cff``.

`make cite` runs ``python -m advlogits.release.citation``, which rewrites the README's block between
``<!-- cite:start -->`` and ``<!-- cite:end -->`` (`render_citation`): a one-line citation and a BibTeX entry for the
paper (the file's ``references``) and for this replication. ``tests/test_release_citation.py`` checks that the
README and ``CITATION.cff`` agree.

Examples::

    from advlogits.release import citation
    citation.readme_from_citation(root=".")   # the README's citation block, from CITATION.cff
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .readme import Markers, ResultsError, rewrite_block, rewrite_main

MARKERS = Markers("<!-- cite:start -->", "<!-- cite:end -->", "make cite")


def load_citation(root: str | Path = ".") -> dict[str, Any]:
    """The repository's ``CITATION.cff``, parsed, with its ``date-released`` as an ISO date string."""
    import yaml  # PyYAML comes with the book extra (Jupyter Book), like everything that writes the README

    path = Path(root) / "CITATION.cff"
    if not path.is_file():
        raise ResultsError(f"no {path}: the README's citation block is written from it")
    cff = yaml.safe_load(path.read_text(encoding="utf8"))
    if not isinstance(cff, dict) or not all(cff.get(key) for key in ("title", "authors", "date-released")):
        raise ResultsError(f"{path} has no title, authors or date-released: it is not a CITATION.cff for this")
    return {**cff, "date-released": str(cff["date-released"])}


def _author(person: dict[str, Any], *, bibtex: bool = False) -> str:
    """An entity's ``name``, or a person's family name (in BibTeX, "Family, Given")."""
    if "name" in person:
        return "{" + person["name"] + "}" if bibtex else person["name"]
    given = person.get("given-names")
    return f"{person['family-names']}, {given}" if bibtex and given else person["family-names"]


def _authors_sentence(authors: list[dict[str, Any]]) -> str:
    """The authors for a sentence: "A", "A and B", "A, B and C"."""
    names = [_author(a) for a in authors]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _arxiv_id(work: dict[str, Any]) -> str | None:
    """The arXiv identifier (``2108.12001``) among the ``identifiers`` of ``work``, if it has one."""
    for ident in work.get("identifiers", []):
        kind, _, value = str(ident.get("value", "")).partition(":")
        if kind.lower() == "arxiv" and value:
            return value
    return None


def _bibtex_key(work: dict[str, Any], year: str) -> str:
    """A BibTeX key: the first author's family name, the year and the title's first word that is not an article
    (``seguin2021understanding``); for a work by an entity, that word and the year (``advlogits2026``)."""
    words = [w.lower() for w in re.findall(r"[A-Za-z]+", work["title"]) if w.lower() not in ("a", "an", "the")]
    first = work["authors"][0]
    if "name" in first:
        return f"{words[0]}{year}"
    return f"{re.sub(r'[^a-z]', '', first['family-names'].lower())}{year}{words[0]}"


def _citation(work: dict[str, Any], *, kind: str, year: str) -> tuple[str, str]:
    """(one-line citation, BibTeX entry) of ``work``, a CFF file or one of its references."""
    arxiv, version, url = _arxiv_id(work), work.get("version"), work.get("url") or work.get("repository-code")
    line = f"{_authors_sentence(work['authors'])} ({year}). *{work['title']}*."
    line += f" arXiv:{arxiv}." if arxiv else ""
    line += f" Version {version}, {work['license']} licence." if version and work.get("license") else ""
    line += f" <{url}>" if url else ""
    fields = {
        "title": work["title"],
        "author": " and ".join(_author(a, bibtex=True) for a in work["authors"]),
        "journal": f"arXiv preprint arXiv:{arxiv}" if arxiv else None,
        "year": year,
        "version": version,
        "license": work.get("license") if kind == "software" else None,
        "url": url,
    }
    width = max(len(name) for name, value in fields.items() if value)
    entry = ",\n".join(f"  {name:<{width}} = {{{value}}}" for name, value in fields.items() if value)
    return line, f"@{kind}{{{_bibtex_key(work, year)},\n{entry}\n}}"


def render_citation(cff: dict[str, Any]) -> str:
    """The README's citation block, markers included: for each of the file's ``references`` (the paper) and then for
    the file's own work (this replication), a one-line citation and a BibTeX entry."""
    lines = [MARKERS.start, "<!-- written by `make cite` from CITATION.cff; do not edit by hand -->"]
    intro = "Please cite the paper this book replicates:"
    for work in cff.get("references", []):
        line, entry = _citation(
            work, kind="article" if work.get("type") == "article" else "misc", year=str(work["year"])
        )
        lines += [intro, "", f"> {line}", "", "```bibtex", entry, "```", ""]
        intro = "and:"
    line, entry = _citation(cff, kind="software", year=cff["date-released"][:4])
    if cff.get("references"):
        intro = (
            "and, if you use the replication itself (its code, protocol or results), this repository and the commit "
            "you used:"
        )
    else:
        intro = "Please cite this repository:"
    lines += [intro, "", f"> {line}", "", "```bibtex", entry, "```", MARKERS.end]
    return "\n".join(lines)


def readme_from_citation(root: str | Path = ".", *, readme: str | Path | None = None) -> Path:
    """Rewrite the README's citation block from ``CITATION.cff``; returns the README's path."""
    path = Path(readme) if readme is not None else Path(root) / "README.md"
    return rewrite_block(path, render_citation(load_citation(root)), MARKERS)


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite the README's citation block; 1 with one line when it cannot."""
    return rewrite_main("python -m advlogits.release.citation", __doc__, readme_from_citation, argv)


if __name__ == "__main__":
    sys.exit(main())
