"""advlogits.release.launch: the chapters' hidden Colab cell, which installs the library inside Colab only, and
the command that writes the repository's address into it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

from advlogits.release import launch

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))


def _cell(path: Path) -> dict:
    return launch.colab_cell(json.loads(path.read_text()))


def test_how_to_run_describes_the_colab_cell_the_chapters_have():
    """The page says what the chapters hold: a hidden install cell, whose refusal it quotes, and the command that
    writes the address into it."""
    page = " ".join((ROOT / "book" / "how_to_run.md").read_text().split())
    assert "no install cells" not in page
    assert "make repository REPO_URL=https://github.com/OWNER/REPO" in page and "`remove-cell`" in page
    quoted = "set REPOSITORY above to the book's git address and rerun"
    assert quoted in page
    assert all(quoted in "".join(_cell(path)["source"]) for path in CHAPTERS)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_has_one_hidden_colab_cell_without_an_address(path):
    cell = _cell(path)
    assert cell["metadata"]["tags"] == ["remove-cell"], "never on a page"
    assert 'REPOSITORY = ""' in "".join(cell["source"]), "committed without an address until the book has one"


def _run(source: str, monkeypatch, *, colab: bool, installed: bool) -> list:
    calls: list = []
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if installed else None)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    exec(compile(source, "colab-cell", "exec"), {})
    return calls


def test_the_cell_does_nothing_outside_colab_and_installs_from_the_address_inside(monkeypatch):
    source = "".join(_cell(CHAPTERS[0])["source"])
    assert _run(source, monkeypatch, colab=False, installed=False) == [], "outside Colab: nothing"
    assert _run(source, monkeypatch, colab=True, installed=True) == [], "already installed: nothing"
    with pytest.raises(RuntimeError, match="set REPOSITORY above to the book's git address"):
        _run(source, monkeypatch, colab=True, installed=False)
    with_address = source.replace('REPOSITORY = ""', 'REPOSITORY = "https://example.org/book"')
    (call,) = _run(with_address, monkeypatch, colab=True, installed=False)
    assert call[0][-1] == "advlogits[book] @ git+https://example.org/book" and call[0][1:4] == ["-m", "pip", "install"]


def test_set_repository_rewrites_only_the_address_and_refuses_bad_input(tmp_path):
    copy = tmp_path / "01.ipynb"
    shutil.copy(CHAPTERS[0], copy)
    before = nbformat.read(copy, as_version=4)
    assert launch.set_repository(copy, "https://github.com/owner/book") is True
    after = nbformat.read(copy, as_version=4)
    changed = [(a.source, b.source) for a, b in zip(before.cells, after.cells) if a.source != b.source]
    assert len(changed) == 1 and 'REPOSITORY = "https://github.com/owner/book"' in changed[0][1]
    assert launch.set_repository(copy, "https://github.com/owner/book") is False, "already set: unchanged"
    nbformat.validate(after)
    with pytest.raises(ValueError, match=r"^url must be the repository's https address"):
        launch.set_repository(copy, "not a url")
    empty = tmp_path / "empty.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), empty)
    with pytest.raises(ValueError, match=r"^notebook must be a chapter with one Colab cell .* \(got 0 such cells\)"):
        launch.set_repository(empty, "https://github.com/owner/book")


def test_the_command_line_reports_what_it_changed(tmp_path):
    copies = [shutil.copy(p, tmp_path / p.name) for p in CHAPTERS[:2]]
    proc = subprocess.run(
        [sys.executable, "-m", "advlogits.release.launch", "https://github.com/o/b", *map(str, copies)],
        capture_output=True,
        text=True,
    )
    assert (
        proc.returncode == 0
        and proc.stdout.strip() == "2 of 2 chapters now install from https://github.com/o/b in Colab"
    )
    bad = subprocess.run(
        [sys.executable, "-m", "advlogits.release.launch", "ftp://x", str(copies[0])], capture_output=True, text=True
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: url must be the repository's https address")
