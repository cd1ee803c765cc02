"""Tests for advlogits.chapters.results: the README's results table agrees with the committed results/cpu/*.json, and
`make results` records a build (or refuses a missing, old or out-of-date one, naming the command to run)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from advlogits.chapters import numbers, results, scorecard
from advlogits.chapters.results import CITE_END, CITE_START, END, START, ResultsError

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "results" / results.README_PROFILE / "scorecard.json"
REGENERATE = (
    "run `make results` after `make book`, or, to re-render the block from the committed JSON only, "
    "`.venv/bin/python -m advlogits.chapters.results --readme-only`"
)


def _record(
    cid: str,
    verdict: str,
    estimate: float | None,
    ci: list | None,
    *,
    threshold: float = 0.0,
    chapter: str = "02_logit_distributions",
) -> dict:
    return {
        "id": cid,
        "claim": f"claim {cid} | with a pipe",
        "statistic": f"statistic of {cid}",
        "verdict": verdict,
        "estimate": estimate,
        "ci": ci,
        "threshold": threshold,
        "chapter": chapter,
        "n_seeds": 2,
        "n_images": 100,
        "holds": verdict == "reproduced",
        "measured": {},
        "checks": {},
        "criterion": "a criterion",
    }


RECORDS = [
    _record("C1", "reproduced", -1.25, [-1.5, -1.0]),
    _record("C7", "not testable", None, None, threshold=0.5, chapter="04_distillation"),
]
README = "# title\n\nbefore\n\n" + START + "\nold table\n" + END + "\n\nafter\n"


def _notebook(path: Path, *, seconds: float | None, end: str, profile: str = "cpu") -> None:
    papermill = {"parameters": {"profile": profile, "device": "auto"}, "end_time": end}
    if seconds is not None:
        papermill["duration"] = seconds
    path.write_text(json.dumps({"cells": [], "metadata": {"papermill": papermill}, "nbformat": 4, "nbformat_minor": 5}))


def _build(root: Path, records: list | None = RECORDS, *, profile: str = "cpu") -> Path:
    """A repository in ``root`` with a README and an executed ``profile`` build of two chapters."""
    executed = root / "_build" / "executed" / profile
    executed.mkdir(parents=True)
    _notebook(executed / "01_a.ipynb", seconds=60.04, end="2026-01-02T03:04:05+00:00", profile=profile)
    _notebook(executed / "05_scorecard.ipynb", seconds=30.0, end="2026-01-02T03:05:00+00:00", profile=profile)
    if records is not None:
        (executed / "scorecard.json").write_text(json.dumps(records, indent=1))
    (root / "README.md").write_text(README)
    return executed


# ---------------------------------------------------------------------------------------------------------------
# the repository's README


@pytest.mark.skipif(
    not COMMITTED.is_file(),
    reason="no results/cpu/scorecard.json is committed yet: after `make book`, `make results` records the cpu build",
)
def test_readme_block_is_the_one_rendered_from_the_committed_results():
    records, env = results.load_results(ROOT)
    assert env is not None, "results/cpu/environment.json is missing: " + REGENERATE
    expected = results.render_block(records, env)
    actual = results.readme_block((ROOT / "README.md").read_text(encoding="utf8"))
    assert actual == expected, "README.md's results block disagrees with results/cpu/*.json: " + REGENERATE


@pytest.mark.skipif(COMMITTED.is_file(), reason="results/cpu/scorecard.json is committed: the block is checked above")
def test_readme_block_says_how_to_record_results_until_there_are_some():
    actual = results.readme_block((ROOT / "README.md").read_text(encoding="utf8"))
    assert actual == results.render_block(None, None), REGENERATE


def test_the_results_folder_is_not_ignored_by_git():
    done = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "results/cpu/scorecard.json", "results/cpu/environment.json"],
        capture_output=True,
        text=True,
    )
    if done.returncode == 128:
        pytest.skip(f"not a git checkout ({done.stderr.strip()})")
    assert done.returncode == 1, f".gitignore ignores {done.stdout.split()}: results/ must be committed"


def test_make_results_runs_the_module_on_the_chosen_profile():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", "-C", str(ROOT), "results", "PROFILE=smoke", f"VENV={sys.prefix}"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert f"{sys.prefix}/bin/python -m advlogits.chapters.results --profile smoke --root ." in done.stdout


# ---------------------------------------------------------------------------------------------------------------
# recording a build


def test_record_results_copies_the_scorecard_writes_the_environment_and_rewrites_only_the_readme_block(tmp_path):
    executed = _build(tmp_path)
    written = results.record_results("cpu", root=tmp_path)
    out = tmp_path / "results" / "cpu"
    assert written == [out / "scorecard.json", out / "environment.json", tmp_path / "README.md"]
    assert (out / "scorecard.json").read_bytes() == (executed / "scorecard.json").read_bytes()
    env = json.loads((out / "environment.json").read_text())
    assert env["profile"] == "cpu" and env["commit"] is None and env["uncommitted_changes"] is None  # no git here
    assert env["wall_seconds"] == 90.0
    assert env["chapter_seconds"] == {"01_a": 60.0, "05_scorecard": 30.0}
    assert env["build_finished"] == "2026-01-02T03:05:00+00:00"
    assert env["device_requested"] == "auto" and env["device"] in ("cpu", "cuda", "mps")
    assert env["python"] == ".".join(map(str, sys.version_info[:3]))
    assert {"advlogits", "torch", "torchvision", "numpy", "pandas", "papermill"} <= set(env["packages"])
    readme = (tmp_path / "README.md").read_text()
    assert readme.startswith("# title\n\nbefore\n\n" + START) and readme.endswith(END + "\n\nafter\n")
    assert results.readme_block(readme) == results.render_block(RECORDS, env)
    # the committed JSON alone re-renders the same block
    results.readme_from_results(tmp_path)
    assert (tmp_path / "README.md").read_text() == readme


def test_another_profile_is_recorded_beside_cpu_and_leaves_the_readme_alone(tmp_path):
    _build(tmp_path, profile="smoke")
    written = results.record_results("smoke", root=tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "results/smoke/scorecard.json",
        "results/smoke/environment.json",
    ]
    assert (tmp_path / "README.md").read_text() == README


def test_the_block_has_a_row_per_record_and_an_environment_line():
    env = {
        "commit": "0123456789abcdef",
        "build_finished": "2026-01-02T03:05:00+00:00",
        "python": "3.11.7",
        "packages": {"torch": "2.14.1"},
        "device": "cpu",
        "wall_seconds": 90.0,
    }
    lines = results.render_block(RECORDS, env).splitlines()
    assert lines[0] == START and lines[-1] == END
    assert lines[2] == "| claim | verdict | statistic | estimate [95% CI] | threshold | chapter |"
    c1, c7 = lines[4], lines[5]
    assert c1.startswith("| **C1** claim C1 \\| with a pipe | ✓ reproduced | statistic of C1 | ")
    # the estimate and threshold as the scorecard chapter writes them, in the claim's unit
    assert c1.endswith(
        f" | {scorecard.fmt_estimate(RECORDS[0])} | {numbers.claim_threshold(RECORDS[0])} | "
        "[2. Logit distributions](chapters/02_logit_distributions.ipynb) |"
    )
    assert "| – not testable |" in c7 and "| n/a |" in c7
    assert lines[-2] == (
        "Profile `cpu`, commit `0123456`, built 2026-01-02 with Python 3.11.7 and torch 2.14.1 on "
        "cpu; the chapters executed in 1.5 minutes. Records: [results/cpu/scorecard.json]"
        "(results/cpu/scorecard.json); environment: [results/cpu/environment.json]"
        "(results/cpu/environment.json)."
    )
    assert "make results" in results.render_block(None, None)


def test_a_chapter_without_a_papermill_duration_leaves_the_wall_time_unknown(tmp_path):
    executed = _build(tmp_path)
    _notebook(executed / "02_b.ipynb", seconds=None, end="2026-01-02T03:04:30+00:00")
    env = results.environment(executed, profile="cpu", root=tmp_path)
    assert env["wall_seconds"] is None and env["chapter_seconds"]["02_b"] is None
    assert "executed in" not in results.render_block(RECORDS, env)


def test_a_git_checkout_records_its_commit_and_whether_it_has_local_changes(tmp_path):
    _build(tmp_path)
    (tmp_path / "notes.txt").write_text("a tracked file\n")
    git = ["git", "-C", str(tmp_path), "-c", "user.name=advlogits", "-c", "user.email=tests@advlogits.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "README.md", "notes.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    env = results.environment(tmp_path / "_build" / "executed" / "cpu", profile="cpu", root=tmp_path)
    assert env["commit"] == head and env["uncommitted_changes"] is False
    (tmp_path / "README.md").write_text("rewritten by make results itself: not a local change\n")
    assert (
        results.environment(tmp_path / "_build" / "executed" / "cpu", profile="cpu", root=tmp_path)[
            "uncommitted_changes"
        ]
        is False
    )
    (tmp_path / "notes.txt").write_text("edited\n")
    assert (
        results.environment(tmp_path / "_build" / "executed" / "cpu", profile="cpu", root=tmp_path)[
            "uncommitted_changes"
        ]
        is True
    )
    with pytest.raises(results.ResultsError, match=r"^the working tree has uncommitted changes.*commit them"):
        results.record_results("cpu", root=tmp_path)
    assert not (tmp_path / "results" / "cpu" / "scorecard.json").exists(), "nothing recorded from a dirty tree"


# ---------------------------------------------------------------------------------------------------------------
# refusals, each naming what to run


def test_a_missing_scorecard_names_the_build_command(tmp_path):
    _build(tmp_path, records=None)
    with pytest.raises(
        ResultsError,
        match=r"no scorecard at .*scorecard\.json: build the cpu profile first with "
        r"`make book PROFILE=cpu`, then `make results PROFILE=cpu`",
    ):
        results.record_results("cpu", root=tmp_path)
    assert not (tmp_path / "results").exists()


def test_the_command_line_prints_the_error_and_fails(tmp_path):
    _build(tmp_path, records=None, profile="smoke")
    done = subprocess.run(
        [sys.executable, "-m", "advlogits.chapters.results", "--profile", "smoke", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: no scorecard at ") and "`make book PROFILE=smoke`" in done.stderr


@pytest.mark.parametrize(
    "content, message",
    [
        (
            '[{"id": "C1", "claim": "c", "criterion": "k", "holds": true, "chapter": "02"}]',
            r"record 0 \(C1\) .* has no 'statistic', 'verdict', 'estimate', 'ci', 'threshold', 'checks': it was "
            r"written by an older version of the book; rebuild it with `make book PROFILE=cpu`",
        ),
        ("[]", r"must be a non-empty list of claim records; rebuild it with `make book PROFILE=cpu`"),
        ("{not json", r"is not valid JSON .*`make book PROFILE=cpu`"),
        (
            json.dumps([_record("C1", "held", 1.0, [0.0, 2.0])]),
            r"verdict 'held', not one of reproduced, not reproduced",
        ),
    ],
)
def test_an_old_or_broken_scorecard_is_refused(tmp_path, content, message):
    executed = _build(tmp_path, records=None)
    (executed / "scorecard.json").write_text(content)
    with pytest.raises(ResultsError, match=message):
        results.record_results("cpu", root=tmp_path)


def test_a_scorecard_older_than_the_library_is_refused(tmp_path):
    executed = _build(tmp_path)
    source = tmp_path / "lib" / "advlogits" / "chapters" / "claims.py"
    source.parent.mkdir(parents=True)
    source.write_text("# edited after the build\n")
    built = (executed / "scorecard.json").stat().st_mtime
    os.utime(source, (built + 10, built + 10))
    with pytest.raises(
        ResultsError,
        match=r"older than lib/advlogits/chapters/claims\.py: the cpu build is out of "
        r"date; run `make book PROFILE=cpu`",
    ):
        results.record_results("cpu", root=tmp_path)
    os.utime(source, (built - 10, built - 10))
    results.record_results("cpu", root=tmp_path)


def test_chapters_executed_at_another_profile_are_refused(tmp_path):
    executed = _build(tmp_path)
    _notebook(executed / "02_b.ipynb", seconds=1.0, end="2026-01-02T03:04:30+00:00", profile="smoke")
    with pytest.raises(ResultsError, match=r"executed at another profile \(\{'02_b': 'smoke'\}\), not cpu"):
        results.record_results("cpu", root=tmp_path)


def test_a_readme_without_the_markers_is_refused(tmp_path):
    _build(tmp_path)
    (tmp_path / "README.md").write_text("# title\n\nno markers\n")
    with pytest.raises(ResultsError, match="README.md must hold one <!-- results:start --> line"):
        results.record_results("cpu", root=tmp_path)
    with pytest.raises(ResultsError, match="must hold one"):
        results.readme_block(README + START)


def test_versions_sentence_names_python_and_every_installed_key_package():
    import importlib.metadata
    import platform

    from advlogits.chapters import results

    sentence = results.versions_sentence()
    assert sentence.startswith(f"Python {platform.python_version()}, advlogits ")
    assert f"torch {importlib.metadata.version('torch')}" in sentence
    assert set(results.package_versions()) <= set(results.KEY_PACKAGES)


# ---------------------------------------------------------------------------------------------------------------
# the README's citation block and CITATION.cff

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
    actual = results.readme_block((ROOT / "README.md").read_text(encoding="utf8"), (CITE_START, CITE_END))
    assert actual == results.render_citation(results.load_citation(ROOT)), (
        "README.md's citation block disagrees with CITATION.cff: " + CITE_AGAIN
    )


def test_citation_cff_names_the_packages_version_and_licence_and_the_paper():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf8")
    version = re.search(r'^version = "([^"]+)"$', pyproject, re.M).group(1)
    cff = results.load_citation(ROOT)
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
    cff = results.load_citation(tmp_path)
    assert cff["date-released"] == "2030-01-31"  # an unquoted YAML date, read back as the same string
    block = results.render_citation(cff)
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
    assert results.main(["--cite-only", "--root", str(tmp_path)]) == 0
    new = (tmp_path / "README.md").read_text()
    assert new.startswith(README + "\n## How to cite\n\n" + CITE_START) and new.endswith(CITE_END + "\n\nend\n")
    assert results.readme_block(new, (CITE_START, CITE_END)) == results.render_citation(results.load_citation(tmp_path))
    assert results.readme_block(new) == results.readme_block(text), "the results block is left as it was"


def test_a_missing_citation_file_or_block_is_refused(tmp_path, capsys):
    (tmp_path / "README.md").write_text(README)
    assert results.main(["--cite-only", "--root", str(tmp_path)]) == 1
    assert re.search(
        r"error: no .*CITATION\.cff: the README's citation block is written from it", capsys.readouterr().err
    )
    (tmp_path / "CITATION.cff").write_text(CFF)
    with pytest.raises(ResultsError, match=r"one <!-- cite:start --> line .* `make cite` writes between them"):
        results.readme_from_citation(tmp_path)
    (tmp_path / "CITATION.cff").write_text("title: only a title\n")
    with pytest.raises(ResultsError, match="not a CITATION.cff"):
        results.load_citation(tmp_path)
