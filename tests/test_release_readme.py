"""advlogits.release.readme: a generated block of the README is found between its two markers and rewritten there
only; a README without exactly one of each marker, in order, is refused, naming the command that writes the block."""

from __future__ import annotations

import os

import pytest

from advlogits.release.readme import Markers, ResultsError, readme_block, replace_block, rewrite_block

MARKERS = Markers("<!-- x:start -->", "<!-- x:end -->", "make x")
TEXT = "# title\n\nbefore\n\n<!-- x:start -->\nold\n<!-- x:end -->\n\nafter\n"


def test_the_block_is_found_and_replaced_between_its_markers_only():
    assert readme_block(TEXT, MARKERS) == "<!-- x:start -->\nold\n<!-- x:end -->"
    new = replace_block(TEXT, "<!-- x:start -->\nnew\n<!-- x:end -->", MARKERS)
    assert new == TEXT.replace("\nold\n", "\nnew\n")


@pytest.mark.parametrize(
    "text",
    [
        "no markers\n",
        "<!-- x:start -->\nonly the start\n",
        "<!-- x:end -->\nthe end first\n<!-- x:start -->\n",
        TEXT + "<!-- x:start -->\n",
    ],
    ids=["none", "no-end", "reversed", "two-starts"],
)
def test_a_readme_without_one_pair_of_markers_in_order_is_refused(text):
    with pytest.raises(
        ResultsError,
        match=r"^README\.md must hold one <!-- x:start --> line and, after it, one <!-- x:end --> line: "
        r"`make x` writes between them$",
    ):
        readme_block(text, MARKERS)


def test_rewrite_block_writes_only_when_the_block_changes(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(TEXT)
    os.utime(path, (1, 1))
    assert rewrite_block(path, readme_block(TEXT, MARKERS), MARKERS) == path
    assert path.stat().st_mtime == 1, "an unchanged block leaves the file as it was"
    rewrite_block(path, "<!-- x:start -->\nnew\n<!-- x:end -->", MARKERS)
    assert path.read_text() == TEXT.replace("\nold\n", "\nnew\n")
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"], "no temporary file left"
