"""Tests for advlogits.chapters.claims: the registry, every claim's decision on hand-made numbers, the records
and their files.

The criteria and thresholds are the book's protocol (docs/protocol.md), fixed before any result: these tests pin
them, boundaries included, so that a change to a decision cannot pass unnoticed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from helpers import hand_made_robust

from advlogits.chapters import claims
from advlogits.chapters.claims import (
    C3_TOLERANCE,
    C4_MIN_DISTANCE,
    C5_FRACTION,
    C6_MARGIN,
    CLAIMS,
    REMOVED_SHARE,
    c6_gain,
    decide_c3,
    decide_c4,
    decide_c5,
    decide_distillation,
    lower_on_average,
    removal,
    strictly_decreasing,
)

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------------------


def test_the_registry_holds_each_claim_once_with_a_chapter_that_exists():
    chapters = {p.stem for p in (ROOT / "chapters").glob("*.ipynb")}
    assert tuple(CLAIMS) == claims.CLAIM_IDS == tuple(f"C{i}" for i in range(1, 9))
    for cid, claim in CLAIMS.items():
        assert claim.id == cid
        assert claim.chapter in chapters, (cid, claim.chapter)
        assert claim.statement and claim.claim and claim.criterion and callable(claim.decide)
    assert {c: CLAIMS[c].chapter for c in CLAIMS} == {
        "C1": "02_logit_distributions", "C2": "02_logit_distributions", "C3": "02_logit_distributions",
        "C4": "03_sample_confidence", "C5": "03_sample_confidence",
        "C6": "04_distillation", "C7": "04_distillation", "C8": "04_distillation"}
    # CHAPTERS inverts the mapping: every claim under exactly one chapter, in claim order
    assert claims.CHAPTERS == {"02_logit_distributions": ("C1", "C2", "C3"),
                               "03_sample_confidence": ("C4", "C5"), "04_distillation": ("C6", "C7", "C8")}
    assert sorted(i for ids in claims.CHAPTERS.values() for i in ids) == list(claims.CLAIM_IDS)


def test_the_thresholds_are_the_protocols_and_the_criteria_name_them():
    assert (C3_TOLERANCE, C4_MIN_DISTANCE, C5_FRACTION, C6_MARGIN, REMOVED_SHARE) == (1e-4, 0.1, 0.1, 0.10, 0.5)
    assert CLAIMS["C3"].thresholds == {"tolerance": 1e-4} and "within 0.0001" in CLAIMS["C3"].criterion
    assert CLAIMS["C4"].thresholds == {"min_distance": 0.1} and "at least 0.1 below" in CLAIMS["C4"].criterion
    assert CLAIMS["C5"].thresholds == {"fraction": 0.1} and "most-confident 10%" in CLAIMS["C5"].criterion
    assert CLAIMS["C6"].thresholds == {"margin": 0.1} and "+ 10 points" in CLAIMS["C6"].criterion
    for cid in ("C7", "C8"):
        assert CLAIMS[cid].thresholds == {"removed_share": 0.5} and "gain / 2" in CLAIMS[cid].criterion


def test_verdict_words_and_labels():
    assert [claims.verdict(h) for h in (True, False, None)] == ["reproduced", "not reproduced", "not measured"]
    assert claims.verdict(np.bool_(True)) == "reproduced" and claims.verdict(np.bool_(False)) == "not reproduced"
    assert [claims.verdict_label(h) for h in (True, False, None)] == [
        "✓ reproduced", "✗ not reproduced", "– not measured"]


# ---------------------------------------------------------------------------------------------------------
# C1, C2: lower on average, the paired interval excluding 0
# ---------------------------------------------------------------------------------------------------------


def test_lower_on_average_needs_a_negative_estimate_and_an_interval_below_zero():
    assert lower_on_average((-1.0, -1.0, -1.0))
    assert lower_on_average((-0.5, -0.8, -0.1))
    assert not lower_on_average((-0.5, -1.0, 0.1))  # CI includes 0
    assert not lower_on_average((-0.5, -1.0, 0.0))  # CI touches 0
    assert not lower_on_average((0.5, 0.1, 1.0))
    assert not lower_on_average((0.0, 0.0, 0.0))
    assert not lower_on_average((math.nan, math.nan, math.nan))
    for cid in ("C1", "C2"):
        assert CLAIMS[cid].decide((-0.5, -0.8, -0.1)) == {"holds": True}
        assert CLAIMS[cid].decide((-0.5, -1.0, 0.1)) == {"holds": False}


# ---------------------------------------------------------------------------------------------------------
# C3: PGD reaches the closed form, and the sweep's mean gap decreases strictly
# ---------------------------------------------------------------------------------------------------------


def test_strictly_decreasing():
    assert strictly_decreasing([3.0, 2.0, 1.5])
    assert strictly_decreasing([2.0, 1.0])
    assert not strictly_decreasing([3.0, 3.0, 1.0])
    assert not strictly_decreasing([1.0, 2.0])
    assert not strictly_decreasing([3.0, 1.0, 2.0])
    with pytest.raises(ValueError, match=r"values must be at least two finite numbers in sweep order \(got \[1\.0\]\)"):
        strictly_decreasing([1.0])
    with pytest.raises(ValueError, match="values must be at least two finite numbers"):
        strictly_decreasing([2.0, float("nan")])
    with pytest.raises(ValueError, match="values must be at least two finite numbers"):
        strictly_decreasing([2.0, -math.inf])


def test_c3_needs_both_the_tolerance_and_a_strictly_decreasing_sweep():
    decreasing = [2.0, 1.5, 1.2]
    assert decide_c3(0.0, decreasing) is True
    assert decide_c3(0.99e-4, decreasing) is True
    assert decide_c3(C3_TOLERANCE, decreasing) is False  # within the tolerance means strictly below it
    assert decide_c3(2e-4, decreasing) is False
    assert decide_c3(math.nan, decreasing) is False
    assert decide_c3(0.0, [2.0, 2.0, 1.2]) is False  # a plateau is not a decrease
    assert decide_c3(0.0, [2.0, 1.5, 1.6]) is False
    assert decide_c3(0.0, [2.0]) is False  # one radius: nothing to decrease, and no error raised
    assert decide_c3(0.0, []) is False
    with pytest.raises(ValueError, match="values must be at least two finite numbers"):
        decide_c3(0.0, [2.0, math.nan])
    assert CLAIMS["C3"].decide(1e-6, decreasing) == {"holds": True}
    assert CLAIMS["C3"].decide(1e-3, decreasing) == {"holds": False}
    assert CLAIMS["C3"].decide(1e-6, [1.0, 1.5]) == {"holds": False}


# ---------------------------------------------------------------------------------------------------------
# C4: Spearman(ST, AT) clearly below every seed baseline
# ---------------------------------------------------------------------------------------------------------


BASE_ST = (0.80, 0.75, 0.85)
BASE_AT = (0.70, 0.60, 0.75)


def test_c4_holds_when_clearly_below_both_baselines():
    verdict = decide_c4((0.50, 0.45, 0.55), {"ST": BASE_ST, "AT": BASE_AT})
    assert verdict["holds"] is True
    assert verdict["checks"]["ST"]["distance"] == pytest.approx(0.30)
    assert verdict["checks"]["AT"]["distance"] == pytest.approx(0.20)
    assert verdict["checks"]["AT"]["ci_below"] is True
    assert verdict["checks"]["ST"] == {"distance": pytest.approx(0.30), "distance_ok": True, "ci_below": True}
    assert CLAIMS["C4"].decide((0.50, 0.45, 0.55), {"ST": BASE_ST, "AT": BASE_AT}) == verdict


def test_c4_fails_on_a_small_distance_even_with_separated_intervals():
    verdict = decide_c4((0.62, 0.55, 0.59), {"AT": BASE_AT})  # distance 0.08, interval 0.59 < 0.60
    assert verdict["checks"]["AT"] == {"distance": pytest.approx(0.08), "distance_ok": False, "ci_below": True}
    assert verdict["holds"] is False


def test_c4_fails_on_overlapping_intervals_even_with_a_large_distance():
    verdict = decide_c4((0.40, 0.20, 0.76), {"ST": BASE_ST})  # distance 0.4, but 0.76 >= 0.75
    assert verdict["checks"]["ST"]["distance_ok"] is True
    assert verdict["checks"]["ST"]["ci_below"] is False
    assert verdict["holds"] is False


def test_c4_needs_every_baseline():
    # clearly below the ST baseline, not below the AT one (distance 0.05)
    verdict = decide_c4((0.65, 0.62, 0.68), {"ST": BASE_ST, "AT": BASE_AT})
    assert verdict["checks"]["ST"]["distance_ok"] and verdict["checks"]["ST"]["ci_below"]
    assert not verdict["checks"]["AT"]["distance_ok"]
    assert verdict["holds"] is False


def test_c4_boundaries_distance_of_exactly_the_minimum_holds_touching_intervals_fail():
    assert C4_MIN_DISTANCE == 0.1
    assert 0.9 - 0.8 < C4_MIN_DISTANCE  # in floats the distance below is 0.09999999999999998
    assert decide_c4((0.8, 0.7, 0.74), {"b": (0.9, 0.75, 0.95)})["holds"] is True  # exactly the minimum
    assert decide_c4((0.5, 0.4, 0.74), {"b": (0.6, 0.75, 0.95)})["checks"]["b"]["distance_ok"] is True
    assert decide_c4((0.81, 0.7, 0.74), {"b": (0.9, 0.75, 0.95)})["holds"] is False  # distance 0.09
    # the slack only absorbs float rounding: a billionth below the minimum fails
    assert decide_c4((0.8 + 1e-9, 0.7, 0.74), {"b": (0.9, 0.75, 0.95)})["checks"]["b"]["distance_ok"] is False
    assert decide_c4((0.5, 0.4, 0.75), {"b": (0.9, 0.75, 0.95)})["holds"] is False  # high == low


def test_c4_nan_fails_and_bad_intervals_raise():
    assert decide_c4((math.nan, math.nan, math.nan), {"b": BASE_ST})["holds"] is False
    assert decide_c4((0.1, 0.0, 0.2), {"b": (math.nan, math.nan, math.nan)})["holds"] is False
    with pytest.raises(ValueError, match=r"pair must be an \(estimate, low, high\) tuple of numbers.*"
                                         r"\(got \(0\.1, 0\.2\)\)"):
        decide_c4((0.1, 0.2), {"b": BASE_ST})
    with pytest.raises(ValueError, match=r"pair must be an \(estimate, low, high\) tuple"):
        decide_c4((0.1, True, 0.2), {"b": BASE_ST})
    with pytest.raises(ValueError, match=r"baselines\['b'\] must be an interval with low <= high "
                                         r"\(got \(0\.85, 0\.9, 0\.8\)\)"):
        decide_c4((0.1, 0.0, 0.2), {"b": (0.85, 0.9, 0.8)})
    with pytest.raises(ValueError, match=r"baselines\['b'\] must be an \(estimate, low, high\) tuple"):
        decide_c4((0.1, 0.0, 0.2), {"b": "0.8"})
    with pytest.raises(ValueError, match="baselines must be at least one seed baseline interval"):
        decide_c4((0.1, 0.0, 0.2), {})


# ---------------------------------------------------------------------------------------------------------
# C5: the Jaccard overlap of (ST, AT) strictly below every seed baseline's
# ---------------------------------------------------------------------------------------------------------


def test_c5_holds_only_when_strictly_below_every_baseline():
    assert decide_c5(0.2, {"ST": 0.5, "AT": 0.4}) == {"holds": True, "below": {"ST": True, "AT": True}}
    assert decide_c5(0.4, {"ST": 0.5, "AT": 0.4}) == {"holds": False, "below": {"ST": True, "AT": False}}
    assert decide_c5(0.6, {"ST": 0.5, "AT": 0.4})["holds"] is False
    assert decide_c5(math.nan, {"ST": 0.5})["holds"] is False
    assert decide_c5(0, {"ST": 1})["holds"] is True  # integers are overlaps too
    assert CLAIMS["C5"].decide(0.2, {"ST": 0.5}) == {"holds": True, "below": {"ST": True}}
    with pytest.raises(ValueError, match=r"baselines\['ST'\] must be a Jaccard overlap \(a number in \[0, 1\], or NaN "
                                         r"where it is undefined\) \(got '0\.5'\)"):
        decide_c5(0.2, {"ST": "0.5"})
    with pytest.raises(ValueError, match=r"pair must be a Jaccard overlap .*\(got 1\.5\)"):
        decide_c5(1.5, {"ST": 2.0})
    assert decide_c5(np.float32(0.2), {"ST": np.float64(0.5)})["holds"] is True
    with pytest.raises(ValueError, match=r"pair must be a Jaccard overlap .*\(got True\)"):
        decide_c5(True, {"ST": 0.5})
    with pytest.raises(ValueError, match="baselines must be at least one seed baseline overlap"):
        decide_c5(0.2, {})


# ---------------------------------------------------------------------------------------------------------
# C6, C7, C8: the distillation line-up's robust accuracies
# ---------------------------------------------------------------------------------------------------------


robust = hand_made_robust


def test_c6_gain_is_over_the_stronger_reference_and_holds_at_exactly_ten_points():
    assert c6_gain(robust()) == pytest.approx(0.30)
    assert c6_gain(robust(hard=0.20, kd_st=0.15, kd_at=0.05)) == pytest.approx(-0.15)  # may be negative
    v = decide_distillation(robust(hard=0.20, kd_st=0.15, kd_at=0.30))  # 0.30 - 0.20 < 0.1 in floats
    assert 0.30 - 0.20 < 0.10
    assert v["C6"]["holds"] and v["C6"]["gain"] == pytest.approx(0.10)
    v = decide_distillation(robust(hard=0.35, kd_st=0.20, kd_at=0.45))
    assert v["C6"]["holds"] and v["C6"]["gain"] == pytest.approx(0.10)
    assert v["C6"]["over_kd_st"] == pytest.approx(0.25) and v["C6"]["over_hard"] == pytest.approx(0.10)
    assert v["C6"]["evaluable"] is True
    assert not decide_distillation(robust(hard=0.355, kd_st=0.20, kd_at=0.45))["C6"]["holds"]
    assert not decide_distillation(robust(hard=0.10, kd_st=0.33, kd_at=0.42))["C6"]["holds"]  # beats hard by 32 only


def test_c7_needs_every_manipulation_to_remove_half_the_gain():
    # gain = 0.42 - 0.12 = 0.30, threshold 0.27: "AT ST order" sits exactly on it and counts as meeting it.
    v = decide_distillation(robust())
    assert v["C7"]["threshold"] == pytest.approx(0.27) and v["C8"]["threshold"] == pytest.approx(0.27)
    assert v["C7"]["holds"] and v["C7"]["criterion_met"] and v["C7"]["failing"] == []
    assert v["C7"]["evaluable"] and v["C7"]["gain"] == pytest.approx(0.30)
    assert v["C8"]["holds"]
    assert list(v["C7"]["students"]) == ["AT shuffled", "AT mean", "AT ST order"]
    assert list(v["C8"]["students"]) == ["AT flattened", "AT label smoothing"]
    assert v["C7"]["students"]["AT shuffled"]["share_removed"] == pytest.approx(0.9)
    assert v["C7"]["students"]["AT ST order"]["share_removed"] == pytest.approx(0.5)
    assert v["C7"]["students"]["AT ST order"]["meets"] is True
    v = decide_distillation(robust(mean=0.28))
    assert not v["C7"]["holds"] and v["C7"]["failing"] == ["AT mean"] and v["C8"]["holds"]
    assert v["C7"]["criterion_met"] is False and v["C7"]["students"]["AT mean"]["meets"] is False
    v = decide_distillation(robust(smooth=0.40))
    assert v["C7"]["holds"] and not v["C8"]["holds"] and v["C8"]["failing"] == ["AT label smoothing"]


def test_without_c6_the_manipulation_claims_are_not_reproduced():
    # gain 0.05: the inequality holds for every student, but C6 fails, so C7 and C8 are not evaluable.
    v = decide_distillation(robust(kd_at=0.17, shuffled=0.0, mean=0.0, order=0.0, flat=0.0, smooth=0.0))
    assert not v["C6"]["holds"]
    for claim in ("C7", "C8"):
        assert v[claim]["criterion_met"] and not v[claim]["evaluable"] and not v[claim]["holds"]
    v = decide_distillation(robust(kd_at=0.05))  # no gain at all: nothing to remove, nothing to test
    assert v["C7"]["criterion_met"] is None and v["C7"]["students"]["AT mean"]["meets"] is None
    assert v["C8"]["criterion_met"] is None and v["C7"]["failing"] == []
    assert not v["C7"]["holds"] and not v["C8"]["holds"]
    assert math.isnan(v["C7"]["students"]["AT mean"]["share_removed"])


def test_the_registry_decides_c6_to_c8_as_decide_distillation_does():
    for values in (robust(), robust(mean=0.28), robust(smooth=0.40), robust(kd_at=0.17), robust(kd_at=0.05)):
        outcome = decide_distillation(values)
        for cid in ("C6", "C7", "C8"):
            decided = CLAIMS[cid].decide(values)
            assert decided["holds"] == outcome[cid]["holds"]
            assert decided.keys() == outcome[cid].keys()


def test_removal_against_another_reference_measures_the_controls():
    values = {**robust(), "AT-corr KD": 0.32, "AT-corr mean": 0.10, "AT-corr flattened": 0.23,
              "AT-corr ST order": 0.22}
    out = removal(values, ["AT-corr mean", "AT-corr flattened", "AT-corr ST order"], reference="AT-corr KD")
    # corrected gain: 0.32 - max(0.10, 0.12) = 0.20, threshold 0.32 - 0.20 / 2 = 0.22
    assert out["AT-corr mean"] == {"robust": 0.10, "threshold": pytest.approx(0.22), "meets": True,
                                   "share_removed": pytest.approx(1.1)}
    assert out["AT-corr flattened"]["meets"] is False
    assert out["AT-corr flattened"]["share_removed"] == pytest.approx(0.45)
    assert out["AT-corr ST order"]["meets"] is True  # exactly on the threshold
    # the default reference is KD-AT
    assert removal(values, ["AT mean"])["AT mean"]["threshold"] == pytest.approx(0.27)
    # a reference no better than the baselines has no gain: nothing to test
    flat = removal({**values, "AT-corr KD": 0.12}, ["AT-corr mean"], reference="AT-corr KD")["AT-corr mean"]
    assert flat["meets"] is None and math.isnan(flat["share_removed"])


def test_missing_accuracies_are_refused_naming_them():
    with pytest.raises(ValueError, match=r"robust must be an accuracy for every student of the line-up "
                                         r"\(got missing \['KD-ST'\]\); evaluate the whole line-up first"):
        decide_distillation({"hard labels": 0.1, "KD-AT": 0.3})
    with pytest.raises(ValueError, match=r"robust must be .*\(got missing \['KD-AT'\]\)"):
        c6_gain({"hard labels": 0.1, "KD-ST": 0.3})
    with pytest.raises(ValueError, match=r"robust must be .*\(got missing \['AT mean'\]\)"):
        removal({k: v for k, v in robust().items() if k != "AT mean"}, ["AT mean"])


# ---------------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------------


def test_records_carry_the_registry_wording_and_are_validated_and_jsonable():
    record = claims.record("C1", measured={"diff": np.float64(-0.5), "ci": (np.float32(-1), 0.0),
                                           "bad": float("nan"), "nested": {"x": np.int64(3), 2: [math.inf]}},
                           holds=np.bool_(True))
    assert record == {"id": "C1", "claim": CLAIMS["C1"].claim, "criterion": CLAIMS["C1"].criterion,
                      "measured": {"diff": -0.5, "ci": [-1.0, 0.0], "bad": None, "nested": {"x": 3, "2": [None]}},
                      "holds": True}
    assert type(record["holds"]) is bool and type(record["measured"]["diff"]) is float
    json.dumps(record, allow_nan=False)
    assert claims.record("C7", measured={}, holds=False)["holds"] is False
    with pytest.raises(ValueError, match=r"id must be one of 'C1', 'C2', .*'C8' \(got 'C9'\)"):
        claims.record("C9", measured={}, holds=True)
    with pytest.raises(ValueError, match=r"id must be one of .* \(got 'c1'\)"):
        claims.record("c1", measured={}, holds=True)


@pytest.fixture()
def executed(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVLOGITS_EXECUTED_DIR", str(tmp_path / "cpu"))
    return tmp_path / "cpu"


def test_chapters_write_and_the_scorecard_gathers_in_claim_order(executed):
    path = claims.write_claims("cpu", "03_sample_confidence", [claims.record("C4", measured={}, holds=False)])
    assert path == executed / "claims" / "03_sample_confidence.json" == claims.claims_dir("cpu") / path.name
    c1 = claims.record("C1", measured={"d": -0.5}, holds=True)
    claims.write_claims("cpu", "02_logit_distributions", [claims.record("C2", measured={}, holds=True), c1])
    assert json.loads((executed / "claims" / "02_logit_distributions.json").read_text())[1] == {
        **c1, "chapter": "02_logit_distributions"}
    gathered = claims.gather("cpu")
    assert [(r["id"], r["chapter"]) for r in gathered] == [
        ("C1", "02_logit_distributions"), ("C2", "02_logit_distributions"), ("C4", "03_sample_confidence")]
    path = claims.write_scorecard("cpu")
    card = json.loads(path.read_text())
    assert path == executed / "scorecard.json"
    assert card == gathered  # the round trip keeps every field
    assert [r["id"] for r in card] == ["C1", "C2", "C4"]
    assert card[2]["chapter"] == "03_sample_confidence" and card[2]["holds"] is False
    assert card[0]["measured"] == {"d": -0.5} and card[0]["claim"] == CLAIMS["C1"].claim
    # a chapter that runs again replaces its records, it does not add to them
    claims.write_claims("cpu", "03_sample_confidence", [claims.record("C4", measured={}, holds=True),
                                                        claims.record("C5", measured={}, holds=False)])
    card = json.loads(claims.write_scorecard("cpu").read_text())
    assert [(r["id"], r["holds"]) for r in card] == [("C1", True), ("C2", True), ("C4", True), ("C5", False)]
    assert sorted(p.name for p in executed.rglob("*") if p.is_file()) == [
        "02_logit_distributions.json", "03_sample_confidence.json", "scorecard.json"]  # no temporary files left


def test_gather_without_claims_is_empty(executed):
    assert claims.gather("cpu") == []
    assert json.loads(claims.write_scorecard("cpu").read_text()) == []


def test_executed_dir_defaults_to_the_repository_build_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("ADVLOGITS_EXECUTED_DIR", raising=False)
    (tmp_path / "_toc.yml").write_text("root: x\n")
    (tmp_path / "chapters").mkdir()
    monkeypatch.chdir(tmp_path / "chapters")
    assert claims.executed_dir("smoke") == tmp_path / "_build" / "executed" / "smoke"
    assert claims.claims_dir("smoke") == tmp_path / "_build" / "executed" / "smoke" / "claims"
    monkeypatch.setenv("ADVLOGITS_EXECUTED_DIR", str(tmp_path / "elsewhere"))
    assert claims.executed_dir("smoke") == tmp_path / "elsewhere"
