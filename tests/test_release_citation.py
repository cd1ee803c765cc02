"""advlogits.release.citation: the README's citation block agrees with CITATION.cff, which names the package's
version and licence and the paper; `make cite` rewrites that block only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_release_readme_table import README

from advlogits.release import citation, readme_table
from advlogits.release.readme import ResultsError, readme_block

ROOT = Path(__file__).resolve().parents[1]
CITE_START, CITE_END = citation.MARKERS.start, citation.MARKERS.end

CITE_AGAIN = "run `make cite` (it rewrites the README's citation block from CITATION.cff)"
CFF = """cff-version: 1.2.0
message: Cite it.
type: software
title: "tool: a replication of A Paper"
authors:
  - name: tool contributors
version: 1.2.3
date-released: 2030-01-31
license: MIT
references:
  - type: article
    title: The Paper on Things
    authors:
      - family-names: O'Neil
        given-names: Ann
      - family-names: Smith
    year: 2020
    identifiers:
      - type: other
        value: "arXiv:2001.00001"
    url: https://arxiv.org/abs/2001.00001
"""


def test_readme_citation_block_is_the_one_rendered_from_citation_cff():
    actual = readme_block((ROOT / "README.md").read_text(encoding="utf8"), citation.MARKERS)
    assert actual == citation.render_citation(citation.load_citation(ROOT)), (
        "README.md's citation block disagrees with CITATION.cff: " + CITE_AGAIN
    )


def test_citation_cff_names_the_packages_version_and_licence_and_the_paper():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf8")
    version = re.search(r'^version = "([^"]+)"$', pyproject, re.M).group(1)
    cff = citation.load_citation(ROOT)
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["version"] == version, f"CITATION.cff says version {cff['version']}, pyproject.toml {version}"
    assert cff["license"] == "MIT" and re.search(r'^license = "MIT"$', pyproject, re.M)
    assert (ROOT / "LICENSE").read_text(encoding="utf8").startswith("MIT License")
    paper = cff["references"][0]
    assert [a["family-names"] for a in paper["authors"]] == ["Seguin", "Ndirango", "Mishra", "Chung", "Lee"]
    assert paper["year"] == 2021 and paper["url"] == "https://arxiv.org/abs/2108.12001"
    assert {"type": "other", "value": "arXiv:2108.12001"}.items() <= paper["identifiers"][0].items()


def test_render_citation_writes_a_line_and_a_bibtex_entry_for_the_paper_and_the_replication(tmp_path):
    (tmp_path / "CITATION.cff").write_text(CFF)
    cff = citation.load_citation(tmp_path)
    assert cff["date-released"] == "2030-01-31"  # an unquoted YAML date, read back as the same string
    block = citation.render_citation(cff)
    lines = block.splitlines()
    assert lines[0] == CITE_START and lines[-1] == CITE_END
    assert (
        "> O'Neil and Smith (2020). *The Paper on Things*. arXiv:2001.00001. <https://arxiv.org/abs/2001.00001>"
        in lines
    )
    assert "> tool contributors (2030). *tool: a replication of A Paper*. Version 1.2.3, MIT licence." in lines
    assert (
        "@article{oneil2020paper,\n  title   = {The Paper on Things},\n  author  = {O'Neil, Ann and Smith},\n" in block
    )
    assert "  journal = {arXiv preprint arXiv:2001.00001},\n  year    = {2020},\n" in block
    assert "@software{tool2030,\n" in block and "  author  = {{tool contributors}},\n" in block
    assert "  version = {1.2.3},\n  license = {MIT}\n}" in block
    assert block.index("@article") < block.index("@software"), "the paper first, then the replication"


def test_readme_from_citation_rewrites_only_the_citation_block(tmp_path):
    (tmp_path / "CITATION.cff").write_text(CFF)
    text = README + "\n## How to cite\n\n" + CITE_START + "\nold\n" + CITE_END + "\n\nend\n"
    (tmp_path / "README.md").write_text(text)
    assert citation.main(["--root", str(tmp_path)]) == 0
    new = (tmp_path / "README.md").read_text()
    assert new.startswith(README + "\n## How to cite\n\n" + CITE_START) and new.endswith(CITE_END + "\n\nend\n")
    assert readme_block(new, citation.MARKERS) == citation.render_citation(citation.load_citation(tmp_path))
    assert readme_block(new, readme_table.MARKERS) == readme_block(text, readme_table.MARKERS), (
        "the results block is left as it was"
    )


def test_a_missing_citation_file_or_block_is_refused(tmp_path, capsys):
    (tmp_path / "README.md").write_text(README)
    assert citation.main(["--root", str(tmp_path)]) == 1
    assert re.search(
        r"error: no .*CITATION\.cff: the README's citation block is written from it", capsys.readouterr().err
    )
    (tmp_path / "CITATION.cff").write_text(CFF)
    with pytest.raises(ResultsError, match=r"one <!-- cite:start --> line .* `make cite` writes between them"):
        citation.readme_from_citation(tmp_path)
    (tmp_path / "CITATION.cff").write_text("title: only a title\n")
    with pytest.raises(ResultsError, match="not a CITATION.cff"):
        citation.load_citation(tmp_path)
