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

from helpers import committed_chapter_code

from advlogits.chapters import claims, scorecard
from advlogits.chapters.claims import CLAIMS

ROOT = Path(__file__).resolve().parents[1]


def _records():
    return [dict(claims.record("C1", measured={"d": -0.51234}, holds=True), chapter="02_logit_distributions"),
            dict(claims.record("C6", measured={"gain": [1.0, 2], "checks": {"a_b": True}}, holds=False),
                 chapter="04_distillation")]


def test_scorecard_rows_summary_and_table():
    records = _records()
    rows = scorecard.scorecard_rows(records)
    assert [r["id"] for r in rows] == list(claims.CLAIM_IDS)
    assert rows[0]["verdict"] == "✓ reproduced" and rows[0]["measured"] == "d = -0.512"
    assert rows[0]["claim"] == f"{CLAIMS['C1'].claim} (02_logit_distributions)"
    assert rows[0]["criterion"] == CLAIMS["C1"].criterion
    assert rows[5]["verdict"] == "✗ not reproduced" and rows[5]["measured"] == "gain = [1, 2]; checks = {a b: true}"
    assert rows[3] == {"id": "C4", "verdict": "– not measured",
                       "claim": f"{CLAIMS['C4'].statement} (03_sample_confidence)", "criterion": "(no record)",
                       "measured": ""}
    s = scorecard.summary(records)
    assert (s["n_reproduced"], s["n_measured"], s["n_claims"]) == (1, 2, 8)
    assert "C2, C3, C4, C5, C7, C8" in s["missing_note"] and "03_sample_confidence" in s["missing_note"]
    assert "02_logit_distributions" not in s["missing_note"]  # it wrote a record
    table = scorecard.markdown_table([{"a": "x|y", "b": 1}])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | 1 |"]
    assert tuple(CLAIMS) == claims.CLAIM_IDS == tuple(sorted(c.id for c in CLAIMS.values()))


def test_measured_values_are_formatted_for_a_narrow_column():
    record = dict(claims.record("C3", measured={"max_abs_error": 1.23456e-7, "sweep_mean_gap": [3.14159, 2.5],
                                                "strictly_decreasing": False, "n_images": 1000, "missing": None,
                                                "nan": float("nan")}, holds=False),
                  chapter="02_logit_distributions")
    row = scorecard.scorecard_rows([record])[2]
    assert row["measured"] == ("max abs error = 1.23e-07; sweep mean gap = [3.14, 2.5]; strictly decreasing = false; "
                               "n images = 1000; missing = None; nan = None")


def test_every_claim_has_a_row_and_a_claim_with_two_records_gets_two():
    both = [dict(claims.record("C2", measured={}, holds=True), chapter="02_logit_distributions"),
            dict(claims.record("C2", measured={}, holds=False), chapter="other")]
    rows = scorecard.scorecard_rows(both)
    assert [r["id"] for r in rows] == ["C1", "C2", "C2", "C3", "C4", "C5", "C6", "C7", "C8"]
    assert [r["verdict"] for r in rows[1:3]] == ["✓ reproduced", "✗ not reproduced"]
    # a claim is reproduced only when every record of it holds
    s = scorecard.summary(both)
    assert (s["n_reproduced"], s["n_measured"]) == (0, 1)
    assert scorecard.summary(both[:1])["n_reproduced"] == 1


def test_summary_of_a_complete_scorecard_and_of_an_empty_one():
    complete = [dict(claims.record(cid, measured={}, holds=cid != "C5"), chapter=CLAIMS[cid].chapter)
                for cid in claims.CLAIM_IDS]
    s = scorecard.summary(complete)
    assert s == {"n_reproduced": 7, "n_measured": 8, "n_claims": 8, "missing_note": "Every claim has a record."}
    empty = scorecard.summary([])
    assert (empty["n_reproduced"], empty["n_measured"], empty["n_claims"]) == (0, 0, 8)
    assert empty["missing_note"] == ("Claims without a record: C1, C2, C3, C4, C5, C6, C7, C8. Chapters that wrote no "
                                     "claims at this profile: 02_logit_distributions, 03_sample_confidence, "
                                     "04_distillation (run them first).")
    rows = scorecard.scorecard_rows([])
    assert [r["verdict"] for r in rows] == ["– not measured"] * 8
    table = scorecard.markdown_table(rows)
    assert table.splitlines()[0] == "| id | verdict | claim | criterion | measured |"
    assert len(table.splitlines()) == 2 + 8
    assert scorecard.markdown_table([]).splitlines() == ["|  |", "|"]


# ---------------------------------------------------------------------------------------------------------
# The chapter
# ---------------------------------------------------------------------------------------------------------


def test_chapter_is_committed_without_outputs_with_a_typed_parameters_cell():
    code = committed_chapter_code("05_scorecard")


@pytest.mark.slow
def test_scorecard_writes_the_json_and_names_chapters_without_claims(tmp_path):
    executed = tmp_path / "executed"
    env = {**os.environ, "ADVLOGITS_EXECUTED_DIR": str(executed), "ADVLOGITS_HOME": str(tmp_path / "store")}
    record = claims.record("C6", measured={"gain_points": 12.5}, holds=True)
    (executed / "claims").mkdir(parents=True)
    (executed / "claims" / "04_distillation.json").write_text(json.dumps([{**record, "chapter": "04_distillation"}]))
    out = tmp_path / "05.ipynb"
    proc = subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "chapters/05_scorecard.ipynb"), str(out),
                           "-p", "profile", "smoke", "-k", "python3", "--cwd", str(ROOT / "chapters")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    card = json.loads((executed / "scorecard.json").read_text())
    assert [(r["id"], r["holds"]) for r in card] == [("C6", True)]
    glued, markdown = {}, []
    for cell in nbformat.read(out, as_version=4).cells:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                glued[name] = output["data"]["application/papermill.record/text/plain"]
            elif "text/markdown" in output.get("data", {}):
                markdown += output["data"]["text/markdown"].splitlines()
    rows = {line.split("|")[1].strip(): line for line in markdown if line.startswith("| C")}
    assert list(rows) == list(claims.CLAIM_IDS)
    assert rows["C6"] == (f"| C6 | ✓ reproduced | {CLAIMS['C6'].claim} (04_distillation) | "
                          f"{CLAIMS['C6'].criterion} | gain points = 12.5 |")
    assert rows["C1"].startswith("| C1 | – not measured | AT models have lower max logits")
    assert rows["C1"].endswith("(02_logit_distributions) | (no record) |  |")
    assert (glued["n_reproduced"], glued["n_measured"], glued["n_claims"]) == ("1", "1", "8")
    assert "02_logit_distributions, 03_sample_confidence" in glued["missing_note"]
