"""advlogits.release.readme_table: the README's results table agrees with the committed results/<profile>/*.json of
the decisive profile (the headline) and the cpu build beside it, one row per record formatted as the scorecard
chapter formats it; an old or broken scorecard is refused, naming the build command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advlogits.chapters import numbers, scorecard
from advlogits.release import readme_table
from advlogits.release.readme import ResultsError, readme_block

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = [ROOT / "results" / profile / "scorecard.json" for profile in readme_table.README_PROFILES]
START, END = readme_table.MARKERS.start, readme_table.MARKERS.end
REGENERATE = (
    "run `make results` after `make book`, or, to re-render the block from the committed JSON only, "
    "`.venv/bin/python -m advlogits.release.readme_table`"
)


def claim_record(
    cid: str,
    verdict: str,
    estimate: float | None,
    ci: list | None,
    *,
    threshold: float = 0.0,
    chapter: str = "02_logit_distributions",
) -> dict:
    """A claim record with every field the README's table reads."""
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
    claim_record("C1", "reproduced", -1.25, [-1.5, -1.0]),
    claim_record("C7", "not testable", None, None, threshold=0.5, chapter="04_distillation"),
]
README = "# title\n\nbefore\n\n" + START + "\nold table\n" + END + "\n\nafter\n"


# ---------------------------------------------------------------------------------------------------------------
# the repository's README


def test_readme_block_is_the_one_rendered_from_the_committed_results():
    recorded = readme_table.load_readme_results(ROOT)
    expected = readme_table.render_block(recorded)
    actual = readme_block((ROOT / "README.md").read_text(encoding="utf8"), readme_table.MARKERS)
    assert actual == expected, "README.md's results block disagrees with results/*/: " + REGENERATE
    for profile, (records, env) in recorded.items():
        assert records is None or env is not None, f"results/{profile}/environment.json is missing: " + REGENERATE


ENV = {
    "commit": "0123456789abcdef",
    "build_finished": "2026-01-02T03:05:00+00:00",
    "python": "3.11.7",
    "packages": {"torch": "2.14.1"},
    "device": "cpu",
    "wall_seconds": 90.0,
}


def test_the_block_has_a_row_per_record_and_an_environment_line():
    lines = readme_table.render_block({"decisive": (None, None), "cpu": (RECORDS, ENV)}).splitlines()
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
    assert lines[-4] == (
        "Profile `cpu`, commit `0123456`, built 2026-01-02 with Python 3.11.7 and torch 2.14.1 on "
        "cpu; the chapters executed in 1.5 minutes. Records: [results/cpu/scorecard.json]"
        "(results/cpu/scorecard.json); environment: [results/cpu/environment.json]"
        "(results/cpu/environment.json)."
    )
    assert lines[-2] == (
        "No build of the `decisive` profile has been recorded here yet: `make book PROFILE=decisive`, then "
        "`make results PROFILE=decisive` write its record."
    )
    nothing = readme_table.render_block({"decisive": (None, None), "cpu": (None, None)})
    assert "`make results PROFILE=cpu`" in nothing and "`make results PROFILE=decisive`" in nothing


def test_the_headline_record_comes_first_with_the_cpu_build_beside_it():
    decisive = [
        claim_record("C1", "reproduced", -1.0, [-1.2, -0.8]),
        claim_record("C7c", "inconclusive", 0.01, [-0.02, 0.04], chapter="04_distillation"),
    ]
    lines = readme_table.render_block({"decisive": (decisive, ENV), "cpu": (RECORDS, ENV)}).splitlines()
    assert lines[2] == (
        "The verdicts of the `decisive` profile's record, the book's headline; the `cpu` build's beside them."
    )
    assert lines[4] == "| claim | verdict | statistic | estimate [95% CI] | threshold | `cpu` build | chapter |"
    c1, c7c = lines[6], lines[7]
    assert f"| ✓ reproduced; {scorecard.fmt_estimate(RECORDS[0])} |" in c1
    assert c7c.startswith("| **C7c** ") and "| not in its record |" in c7c
    assert [line.split("`")[1] for line in lines if line.startswith("Profile `")] == ["decisive", "cpu"]


# ---------------------------------------------------------------------------------------------------------------
# an old or broken scorecard, refused naming what to run


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
            json.dumps([claim_record("C1", "held", 1.0, [0.0, 2.0])]),
            r"verdict 'held', not one of reproduced, not reproduced",
        ),
    ],
)
def test_an_old_or_broken_scorecard_is_refused(tmp_path, content, message):
    (tmp_path / "scorecard.json").write_text(content)
    with pytest.raises(ResultsError, match=message):
        readme_table.load_scorecard(tmp_path / "scorecard.json", profile="cpu")


def test_the_command_line_rewrites_the_block_from_the_committed_record(tmp_path, capsys):
    (tmp_path / "results" / "cpu").mkdir(parents=True)
    (tmp_path / "results" / "cpu" / "scorecard.json").write_text(json.dumps(RECORDS))
    (tmp_path / "README.md").write_text(README)
    assert readme_table.main(["--root", str(tmp_path)]) == 0
    text = (tmp_path / "README.md").read_text()
    assert readme_block(text, readme_table.MARKERS) == readme_table.render_block(
        {"decisive": (None, None), "cpu": (RECORDS, None)}
    )
    assert text.startswith("# title\n\nbefore\n\n" + START) and text.endswith(END + "\n\nafter\n")
    (tmp_path / "README.md").write_text("# title\n\nno markers\n")
    assert readme_table.main(["--root", str(tmp_path)]) == 1
    assert "error: README.md must hold one <!-- results:start --> line" in capsys.readouterr().err
