"""Tests for advlogits.chapters.scorecard (chapter 5): the table of every claim's record, its counts, and the
chapter notebook that writes the scorecard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from advlogits import profiles
from advlogits.chapters import claims, scorecard, verdicts
from advlogits.chapters.claims import CLAIMS
from advlogits.inference import Tested

from helpers import committed_chapter_code

ROOT = Path(__file__).resolve().parents[1]


def _record(cid: str, verdict: str, estimate=None, ci=None, *, measured=None, chapter=None) -> dict:
    decided = verdicts.outcome(
        verdict, None if estimate is None else (estimate, *ci), CLAIMS[cid].threshold, n_seeds=3, n_images=500
    )
    return dict(claims.record(cid, decided, measured=measured or {}), chapter=chapter or CLAIMS[cid].chapter)


def test_scorecard_rows_are_compact_with_the_verdict_the_number_and_a_chapter_link():
    records = [
        _record("C1", "reproduced", -3.0041, (-3.11, -2.9)),
        _record("C6", "inconclusive", 0.1234, (0.05, 0.2), measured={"gain": [1.0, 2]}),
    ]
    rows = scorecard.scorecard_rows(records)
    assert [r["id"] for r in rows] == list(claims.CLAIM_IDS)
    nb = "\u00a0"  # intervals are joined by no-break spaces, so they never wrap
    assert rows[0] == {
        "id": "C1",
        "claim": CLAIMS["C1"].statement,
        "verdict": "✓ reproduced",
        "estimate [95% CI]": f"-3.00{nb}[-3.11,{nb}-2.90]",
        "threshold": "0.00",
        "chapter": "{doc}`2. Logit distributions <02_logit_distributions>`",
    }
    assert rows[5]["verdict"] == "? inconclusive"
    assert (rows[5]["estimate [95% CI]"], rows[5]["threshold"]) == (
        f"12.3{nb}points{nb}[5.0,{nb}20.0]",
        f"10.0{nb}points",
    )
    assert rows[3] == {
        "id": "C4",
        "claim": CLAIMS["C4"].statement,
        "verdict": "· not measured",
        "estimate [95% CI]": "",
        "threshold": "",
        "chapter": "{doc}`3. Sample confidence <03_sample_confidence>`",
    }
    untestable = scorecard.scorecard_rows([_record("C7", "not testable")])[6]
    assert untestable["verdict"] == "– not testable"
    assert (untestable["estimate [95% CI]"], untestable["threshold"]) == ("n/a", f"0.0{nb}points")
    table = scorecard.markdown_table([{"a": "x|y", "b": 1}])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | 1 |"]


def test_every_comparison_is_listed_under_its_claim_with_its_own_verdict():
    tests = {
        "KD-AT - hard labels": Tested(0.3, 0.25, 0.35, 1e-9, 1.0),
        "KD-AT - KD-ST soft": Tested(0.12, 0.05, 0.19, 0.3, 0.7),
    }
    decided = claims.decide_c6(tests, n_seeds=3, n_images=500)
    record = dict(claims.record("C6", decided, measured={"robust_pct": {"a": 1.0}}), chapter="04_distillation")
    rows = scorecard.comparison_rows([record])
    nb = "\u00a0"
    assert [(r["claim"], r["comparison"], r["verdict"]) for r in rows] == [
        ("C6", "KD-AT - hard labels", "✓ reproduced"),
        ("C6", "KD-AT - KD-ST soft", "? inconclusive"),
    ]
    assert rows[1]["estimate [95% CI]"] == f"12.0{nb}points{nb}[5.0,{nb}19.0]" and rows[1]["threshold"] == "10.0 points"
    assert rows[1]["p (Holm, claim side)"] == "0.3" and rows[0]["MC error of the bounds"] == ""
    (row,) = scorecard.details_rows([record])
    assert (row["id"], row["criterion"], row["seeds x images"]) == ("C6", CLAIMS["C6"].criterion, "3 x 500")
    assert row["row shows"] == "KD-AT - KD-ST soft" and "robust_pct" not in str(row), "no raw dumps"


def test_summary_counts_each_kind_of_verdict_and_a_claim_takes_its_worst_record():
    complete = [
        _record(cid, v)
        for cid, v in zip(
            claims.PAPER_CLAIM_IDS,
            ["reproduced"] * 4 + ["inconclusive", "not reproduced", "not testable", "not testable"],
        )
    ] + [_record("C7c", "not reproduced")]  # our reading: a row, not one of the paper's claims
    s = scorecard.summary(complete)
    assert (s["n_reproduced"], s["n_not_reproduced"], s["n_inconclusive"], s["n_not_testable"]) == (4, 1, 1, 2)
    assert (s["n_measured"], s["n_claims"], s["missing_note"]) == (8, 8, "Every claim has a record.")
    assert s["verdicts"]["C5"] == "inconclusive"
    two = [_record("C2", "reproduced"), _record("C2", "inconclusive", chapter="other")]
    assert scorecard.summary(two)["verdicts"] == {"C2": "inconclusive"}
    assert scorecard.summary(two + [_record("C2", "not reproduced")])["verdicts"] == {"C2": "not reproduced"}
    assert [r["id"] for r in scorecard.scorecard_rows(two)] == [
        "C1",
        "C2",
        "C2",
        "C3",
        "C4",
        "C5",
        "C6",
        "C7",
        "C7c",
        "C8",
        "C8c",
    ]
    empty = scorecard.summary([])
    assert (empty["n_reproduced"], empty["n_measured"], empty["n_claims"]) == (0, 0, 8)
    assert empty["missing_note"] == (
        "Claims without a record: C1, C2, C3, C4, C5, C6, C7, C8. Chapters that wrote no "
        "claims at this profile: 02_logit_distributions, 03_sample_confidence, "
        "04_distillation (run them first)."
    )
    assert scorecard.markdown_table([]).splitlines() == ["|  |", "|"]


def test_the_figure_has_a_row_per_claim_coloured_by_verdict_with_its_threshold():
    import matplotlib.pyplot as plt

    records = [
        _record("C1", "reproduced", -3.0, (-3.1, -2.9)),
        _record("C6", "inconclusive", 0.12, (0.05, 0.2)),
        _record("C7", "not testable"),
    ]
    fig = scorecard.scorecard_figure(records)
    axes = fig.axes
    assert len(axes) == 8 and [a.get_title(loc="left").split()[0] for a in axes] == list(claims.PAPER_CLAIM_IDS)
    titles = [a.get_title(loc="left") for a in axes]
    assert titles[0].replace("\n", " ") == f"C1 ✓ reproduced: {CLAIMS['C1'].statement}", "the verdict, then the claim"
    assert len(set(titles)) == 8, "every row names its own claim"
    assert all("\n" not in t for t in titles), "every title on one line: the figure fits the first screen"
    assert all(len(line) <= scorecard.TITLE_WIDTH for t in titles for line in t.splitlines()), "titles wrap to fit"
    assert axes[0].patches and axes[5].patches, "the claim's side of the threshold is shaded"
    assert "(points)" in axes[5].get_xlabel() and "logit units" in axes[0].get_xlabel()
    assert titles[5].startswith("C6 ? inconclusive: ") and titles[3].startswith("C4 · not measured")
    assert axes[0]._left_title.get_color() == scorecard.VERDICT_COLORS["reproduced"]
    thresholds = [[line.get_xdata()[0] for line in a.lines if line.get_linestyle() == "--"] for a in axes]
    assert thresholds[5] == [10.0] and thresholds[0] == [0.0], "C6 in points, C1 in logit units"
    lo, hi = axes[5].get_xlim()
    assert lo < 5 and hi > 20, "the interval and the threshold are in view"
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------
# The chapter
# ---------------------------------------------------------------------------------------------------------


def test_chapter_is_committed_without_outputs_with_a_typed_parameters_cell():
    committed_chapter_code("05_scorecard")


@pytest.mark.slow
def test_scorecard_writes_the_json_and_names_chapters_without_claims(tmp_path):
    executed = tmp_path / "executed"
    env = {**os.environ, "ADVLOGITS_EXECUTED_DIR": str(executed), "ADVLOGITS_HOME": str(tmp_path / "store")}
    record = _record("C6", "inconclusive", 0.125, (0.08, 0.17), measured={"gain_points": 12.5})
    (executed / "claims").mkdir(parents=True)
    (executed / "claims" / "04_distillation.json").write_text(json.dumps([record]))
    out = tmp_path / "05.ipynb"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "papermill",
            str(ROOT / "chapters/05_scorecard.ipynb"),
            str(out),
            "-p",
            "profile",
            "smoke",
            "-k",
            "python3",
            "--cwd",
            str(ROOT / "chapters"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    card = json.loads((executed / "scorecard.json").read_text())
    assert [(r["id"], r["verdict"], r["holds"]) for r in card] == [("C6", "inconclusive", None)]
    glued, markdown = {}, []
    for cell in nbformat.read(out, as_version=4).cells:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                glued[name] = output["data"].get("application/papermill.record/text/plain")
            elif "text/markdown" in output.get("data", {}):
                markdown += output["data"]["text/markdown"].splitlines()
    rows: dict[str, str] = {}
    for line in markdown:  # the compact table first; the details table below it repeats C6
        if line.startswith("| C"):
            rows.setdefault(line.split("|")[1].strip(), line)
    assert list(rows) == list(claims.CLAIM_IDS), "one compact row per claim"
    nb = "\u00a0"
    assert rows["C6"] == (
        f"| C6 | {CLAIMS['C6'].statement} | ? inconclusive | 12.5{nb}points{nb}[8.0,{nb}17.0] | "
        f"10.0{nb}points | {{doc}}`4. Distillation <04_distillation>` |"
    )
    assert rows["C1"].startswith(f"| C1 | {CLAIMS['C1'].statement} | · not measured |")
    assert any(line.startswith("| C6 | robust-accuracy gain") and "3 x 500" in line for line in markdown)
    assert (glued["n_inconclusive"], glued["n_reproduced"], glued["n_measured"], glued["n_claims"]) == (
        "1",
        "0",
        "1",
        "8",
    )
    assert "02_logit_distributions, 03_sample_confidence" in glued["missing_note"]
    assert "fig_scorecard" in glued and "(C6: inconclusive;" in glued["lessons"]
    assert "At the smoke profile" in glued["lessons"], "the lessons are scoped to their profile"


def test_the_landing_page_summary_is_the_figure_and_the_count(tmp_path):
    from PIL import Image

    records = [
        _record("C1", "reproduced", -3.0, (-3.1, -2.9)),
        _record("C6", "inconclusive", 0.12, (0.05, 0.2)),
        _record("C7", "not testable"),
    ]
    profile = profiles.resolve("cpu", device="cpu")
    setting = scorecard.setting_sentence(profile)
    assert setting == (
        "These verdicts come from small CNNs on Fashion-MNIST at eps = 0.1 (cpu profile; not the paper's CIFAR-10 "
        "networks)."
    )
    png, text = scorecard.write_summary(records, tmp_path, profile_name="cpu", setting=setting)
    assert Image.open(png).size[0] == round(6.6 * 200), "the figure at the column's width, twice the resolution"
    nb = "\u00a0"
    assert text.read_text() == (
        "**1 of 8 claims reproduced, 0 not reproduced, 1 inconclusive, 1 not testable** at the `cpu` profile. "
        f"{setting} C6 is inconclusive: robust-accuracy gain of KD-AT over a baseline is "
        f"12.0{nb}points{nb}[5.0,{nb}20.0] against a threshold of 10.0{nb}points (the interval straddles it); C7 is "
        "not testable: there is no "
        "gain to remove. {doc}`The scorecard <../chapters/05_scorecard>` gives every comparison, its interval and "
        "chapter.\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scorecard.png", "scorecard_summary.md"]


def test_a_verdict_that_reads_a_flagged_student_says_so():
    record = claims.record(
        "C7",
        verdicts.outcome("not reproduced", (-0.1, -0.2, -0.05), 0.0, n_seeds=8, n_images=500),
        measured={},
        flagged=["AT spread (AT teacher (seed 1))"],
    )
    row = scorecard.scorecard_rows([dict(record, chapter="04_distillation")])[6]
    assert row["verdict"] == "✗ not reproduced; reads flagged AT spread (AT teacher (seed 1))"
    assert scorecard.flagged_note(None) == "" and scorecard.flagged_note({"flagged": []}) == ""


def test_the_lessons_end_with_chapter_4s_finding_for_c7_and_c8():
    c7 = _record("C7", "not reproduced", -0.1, (-0.2, -0.05), measured={"finding": "Of the AT teacher's students, x."})
    said = scorecard.lessons([c7, _record("C8", "inconclusive", 0.0, (-0.1, 0.1))], profile_name="decisive")
    assert said.endswith("is judged against that gain. C7: Of the AT teacher's students, x.")
    assert "At the decisive profile" in said
