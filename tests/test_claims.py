"""Claim records and the scorecard file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from advlogits import claims


@pytest.fixture()
def executed(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVLOGITS_EXECUTED_DIR", str(tmp_path / "cpu"))
    return tmp_path / "cpu"


def test_records_are_validated_and_jsonable():
    record = claims.claim("C1", claim="c", criterion="k", measured={"diff": np.float64(-0.5), "ci": (np.float32(-1), 0.0),
                                                                    "bad": float("nan")}, holds=np.bool_(True))
    assert record == {"id": "C1", "claim": "c", "criterion": "k", "measured": {"diff": -0.5, "ci": [-1.0, 0.0],
                                                                                "bad": None}, "holds": True}
    json.dumps(record)
    with pytest.raises(ValueError, match="id must be one of C1, C2"):
        claims.claim("C9", claim="c", criterion="k", measured={}, holds=True)


def test_chapters_write_and_the_scorecard_gathers_in_claim_order(executed):
    claims.write_claims("cpu", "03_sample_confidence", [claims.claim("C4", claim="a", criterion="b", measured={},
                                                                     holds=False)])
    claims.write_claims("cpu", "02_logit_distributions", [
        claims.claim("C2", claim="a", criterion="b", measured={}, holds=True),
        claims.claim("C1", claim="a", criterion="b", measured={}, holds=True)])
    path = claims.write_scorecard("cpu")
    card = json.loads(path.read_text())
    assert path == executed / "scorecard.json"
    assert [r["id"] for r in card] == ["C1", "C2", "C4"]
    assert card[2]["chapter"] == "03_sample_confidence" and card[2]["holds"] is False


def test_executed_dir_defaults_to_the_repository_build_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("ADVLOGITS_EXECUTED_DIR", raising=False)
    (tmp_path / "_toc.yml").write_text("root: x\n")
    (tmp_path / "chapters").mkdir()
    monkeypatch.chdir(tmp_path / "chapters")
    assert claims.executed_dir("smoke") == tmp_path / "_build" / "executed" / "smoke"


def test_scorecard_rows_summary_and_table():
    records = [dict(claims.claim("C1", claim="lower max logits", criterion="CI < 0", measured={"d": -0.51234},
                                 holds=True), chapter="02_logit_distributions"),
               dict(claims.claim("C6", claim="KD-AT robust", criterion=">= 10 points", measured={"gain": [1.0, 2], "checks": {"a_b": True}},
                                 holds=False), chapter="04_distillation")]
    rows = claims.scorecard_rows(records)
    assert [r["id"] for r in rows] == list(claims.CLAIM_IDS)
    assert rows[0]["verdict"] == "✓ reproduced" and rows[0]["measured"] == "d = -0.512"
    assert rows[5]["verdict"] == "✗ not reproduced" and rows[5]["measured"] == "gain = [1, 2]; checks = {a b: true}"
    assert rows[3] == {"id": "C4", "verdict": "– not measured", "claim": f"{claims.STATEMENTS['C4']} (03_sample_confidence)",
                       "criterion": "(no record)", "measured": ""}
    s = claims.summary(records)
    assert (s["n_reproduced"], s["n_measured"], s["n_claims"]) == (1, 2, 8)
    assert "C2, C3, C4, C5, C7, C8" in s["missing_note"] and "03_sample_confidence" in s["missing_note"]
    table = claims.markdown_table([{"a": "x|y", "b": 1}])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | 1 |"]
    assert tuple(claims.STATEMENTS) == claims.CLAIM_IDS == tuple(sorted(claims.CHAPTER_OF))
