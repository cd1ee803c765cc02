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
