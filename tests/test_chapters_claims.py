"""Tests for advlogits.chapters.claims: the registry, every claim's decision on hand-made numbers, the three-valued
rule on intervals and the records (their files: tests/test_buildfiles.py).

The criteria and thresholds are the book's protocol (docs/protocol.md), fixed before any result: these tests pin
them, boundaries included, so that a change to a decision cannot pass unnoticed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from advlogits.chapters import claims, comparisons, verdicts, wording
from advlogits.chapters.claims import (
    C3_TOLERANCE,
    C4_MIN_DISTANCE,
    C5_FRACTION,
    C5_MIN_DISTANCE,
    CLAIMS,
    decide_c3,
    decide_c4,
    decide_c5,
    decide_c6,
    decide_lower,
    decide_removal,
)
from advlogits.chapters.comparisons import C6_MARGIN, REMOVED_SHARE
from advlogits.chapters.verdicts import conjunction, side_verdict
from advlogits.inference import BootstrapTested, Tested, percentile_tested
from advlogits.pipeline import lineup
from advlogits.stats import Estimate

ROOT = Path(__file__).resolve().parents[1]
REPRODUCED = verdicts.outcome("reproduced", (1.0, 0.5, 1.5), 0.0, n_seeds=1, n_images=10)
NOT_REPRODUCED = verdicts.outcome("not reproduced", (-1.0, -1.5, -0.5), 0.0, n_seeds=1, n_images=10)


# ---------------------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------------------


def test_the_registry_holds_each_claim_once_with_a_chapter_that_exists():
    chapters = {p.stem for p in (ROOT / "chapters").glob("*.ipynb")}
    assert tuple(CLAIMS) == claims.CLAIM_IDS == ("C1", "C2", "C3", "C4", "C5", "C6", "C7", "C7c", "C8", "C8c")
    assert claims.PAPER_CLAIM_IDS == tuple(f"C{i}" for i in range(1, 9)), "our readings are not the paper's claims"
    assert [c.id for c in CLAIMS.values() if c.ours] == ["C7c", "C8c"]
    for cid, claim in CLAIMS.items():
        assert claim.id == cid
        assert claim.chapter in chapters, (cid, claim.chapter)
        assert claim.statement and claim.claim and claim.criterion and claim.statistic and callable(claim.decide)
    assert claims.CHAPTERS == {
        "02_logit_distributions": ("C1", "C2", "C3"),
        "03_sample_confidence": ("C4", "C5"),
        "04_distillation": ("C6", "C7", "C7c", "C8", "C8c"),
    }


def test_the_thresholds_are_the_protocols_and_the_criteria_name_them():
    assert (C3_TOLERANCE, C4_MIN_DISTANCE, C5_FRACTION, C5_MIN_DISTANCE, C6_MARGIN, REMOVED_SHARE) == (
        1e-4,
        0.1,
        0.1,
        0.05,
        0.10,
        0.5,
    )
    assert [CLAIMS[c].threshold for c in claims.CLAIM_IDS] == [0.0, 0.0, 0.0, 0.1, 0.05, 0.1, 0.0, 0.0, 0.0, 0.0]
    assert "within 0.0001" in CLAIMS["C3"].criterion and "above 0" in CLAIMS["C3"].criterion
    assert "at or above 0.1" in CLAIMS["C4"].criterion
    assert "most-confident 10%" in CLAIMS["C5"].criterion and "at or above 0.05" in CLAIMS["C5"].criterion
    assert "KD-ST soft" in CLAIMS["C6"].criterion and "at or above 10 points" in CLAIMS["C6"].criterion
    assert "shuffled, spread and ST-order" in CLAIMS["C7"].criterion and "half the gain" in CLAIMS["C7"].criterion
    assert "flattened and label-smoothing" in CLAIMS["C8"].criterion
    assert comparisons.C6_BASELINES == (lineup.HARD, lineup.KD_ST, lineup.KD_ST_SOFT)
    assert claims.C7_STUDENTS == ("AT shuffled", "AT spread", "AT ST order")
    assert claims.C8_STUDENTS == ("AT flattened", "AT label smoothing")


def test_verdict_labels():
    assert [verdicts.verdict_label(v) for v in (*verdicts.VERDICTS, verdicts.NOT_MEASURED)] == [
        "✓ reproduced",
        "✗ not reproduced",
        "? inconclusive",
        "– not testable",
        "· not measured",
    ]
    with pytest.raises(ValueError, match=r"^verdict must be one of 'reproduced', .* \(got 'holds'\)"):
        verdicts.verdict_label("holds")


# ---------------------------------------------------------------------------------------------------------
# The three-valued rule
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "low, high, threshold, side, expected",
    [
        (0.12, 0.20, 0.10, "at least", "reproduced"),
        (0.10, 0.20, 0.10, "at least", "reproduced"),  # touching the threshold from the claim's side counts
        (0.05, 0.20, 0.10, "at least", "inconclusive"),  # straddles: neither
        (0.01, 0.09, 0.10, "at least", "not reproduced"),
        (0.00, 0.10, 0.00, "above", "inconclusive"),  # "above 0" is strict: a low end of exactly 0 is not above
        (0.01, 0.10, 0.00, "above", "reproduced"),
        (-0.2, 0.00, 0.00, "above", "not reproduced"),
        (-0.3, -0.1, 0.00, "below", "reproduced"),
        (-0.3, 0.00, 0.00, "below", "inconclusive"),
        (0.00, 0.30, 0.00, "below", "not reproduced"),
        (math.nan, 0.3, 0.0, "below", "inconclusive"),  # an undefined bound decides nothing
    ],
)
def test_side_verdict(low, high, threshold, side, expected):
    assert side_verdict(low, high, threshold, side) == expected


def test_the_conjunction_needs_every_comparison():
    assert conjunction(["reproduced", "reproduced"]) == "reproduced"
    assert conjunction(["reproduced", "inconclusive"]) == "inconclusive"
    assert conjunction(["inconclusive", "not reproduced", "reproduced"]) == "not reproduced"
    with pytest.raises(ValueError, match=r"^verdicts must be at least one verdict"):
        conjunction([])
    with pytest.raises(ValueError, match=r"^side must be one of"):
        side_verdict(0, 1, 0, "over")


# ---------------------------------------------------------------------------------------------------------
# Decisions per comparison, with Holm's correction
# ---------------------------------------------------------------------------------------------------------


def normal_tested(estimate: float, se: float, threshold: float = 0.0) -> Tested:
    """A normal statistic with standard error ``se``: its 95% interval and p-values against ``threshold``."""
    p_above = float(stats.norm.sf((estimate - threshold) / se))
    return Tested(estimate, estimate - 1.959964 * se, estimate + 1.959964 * se, p_above, 1 - p_above)


def test_each_comparison_is_decided_alone_with_holms_correction():
    # alone, each of these lies above 0 (p = 0.02 < 0.025); as a family of two, Holm needs 0.0125 for the first
    z = stats.norm.isf(0.02)
    pair = {"a": normal_tested(z, 1.0), "b": normal_tested(z, 1.0)}
    assert [c["verdict"] for c in verdicts.decide_family({"a": pair["a"]}, 0.0, "above").values()] == ["reproduced"]
    family = verdicts.decide_family(pair, 0.0, "above")
    assert [c["verdict"] for c in family.values()] == ["inconclusive", "inconclusive"]
    assert family["a"]["p_claim_holm"] == pytest.approx(0.04)
    # p = 0.01 and 0.02: adjusted 0.02 and 0.02, both reproduced
    family = verdicts.decide_family({"a": normal_tested(stats.norm.isf(0.01), 1.0), "b": pair["b"]}, 0.0, "above")
    assert [c["verdict"] for c in family.values()] == ["reproduced", "reproduced"]
    # the other side: an interval wholly below the threshold of an "at least" claim is not reproduced
    below = verdicts.decide_family({"a": normal_tested(-5.0, 1.0)}, 0.0, "at least")["a"]
    assert below["verdict"] == "not reproduced" and below["p_other_holm"] < 1e-5
    undefined = Tested(0.1, math.nan, math.nan, math.nan, math.nan)
    assert verdicts.decide_family({"a": undefined}, 0.0, "above")["a"]["verdict"] == "inconclusive"
    with pytest.raises(ValueError, match=r"^comparisons must be tested values with p-values"):
        verdicts.decide_family({"a": (0.1, 0.0, 0.2)}, 0.0, "above")


def test_c1_c2_need_every_comparison_below_zero_and_show_the_weakest():
    comparisons = {
        "ST/AT, all images": normal_tested(-3.0, 0.05),
        "ST'/AT', all images": normal_tested(-2.8, 0.1),
        "budget-matched": normal_tested(-1.0, 0.2),
    }
    decided = decide_lower(comparisons, n_seeds=2, n_images=1000)
    assert decided["verdict"] == "reproduced" and decided["holds"] is True
    assert decided["primary"] == "budget-matched" and decided["estimate"] == -1.0  # the weakest evidence
    assert (decided["threshold"], decided["n_seeds"], decided["n_images"]) == (0.0, 2, 1000)
    assert decided["checks"]["budget-matched"]["verdict"] == "reproduced"
    straddling = decide_lower({**comparisons, "budget-matched": normal_tested(-0.1, 0.2)}, n_seeds=2, n_images=9)
    assert straddling["verdict"] == "inconclusive"
    worse = decide_lower({**comparisons, "ST'/AT', all images": normal_tested(0.2, 0.05)}, n_seeds=2, n_images=9)
    assert worse["verdict"] == "not reproduced" and worse["holds"] is False
    assert CLAIMS["C1"].decide is CLAIMS["C2"].decide is decide_lower
    with pytest.raises(ValueError, match=r"^tests must be at least one comparison"):
        decide_lower({}, n_seeds=1, n_images=1)


def _fit(slope: Tested, intercept: Tested, ratios: dict, constant: float) -> dict:
    return {"slope": slope, "intercept": intercept, "ratios": ratios, "constant": constant}


def test_c3_needs_an_exact_closed_form_a_positive_slope_and_proportionality():
    ratios = {0.05: normal_tested(0.15, 0.01), 0.1: normal_tested(0.14, 0.01)}
    good = _fit(normal_tested(0.15, 0.01), normal_tested(0.01, 0.02), ratios, 0.145)
    fits = {"networks": good, "linear models": good}
    decided = decide_c3(4e-12, fits, n_seeds=3, n_images=1000)
    assert decided["verdict"] == "reproduced" and decided["primary"] == "networks"
    assert decided["estimate"] == pytest.approx(0.01)  # the row shows the networks' intercept
    assert decided["checks"]["closed form"] == {"estimate": 4e-12, "ci": None, "verdict": "reproduced"}
    # the tolerance: an error of exactly 1e-4 is not within it
    assert decide_c3(C3_TOLERANCE, fits, n_seeds=3, n_images=9)["verdict"] == "not reproduced"
    # an intercept away from 0: shrinkage not proportional to the penalty, though the slope is positive (C2 holds)
    offset = _fit(normal_tested(0.15, 0.01), normal_tested(0.5, 0.05), ratios, 0.145)
    assert decide_c3(0.0, {**fits, "networks": offset}, n_seeds=3, n_images=9)["verdict"] == "not reproduced"
    # a ratio whose interval excludes the constant
    drifting = _fit(
        good["slope"], good["intercept"], {0.05: normal_tested(0.21, 0.01), 0.1: normal_tested(0.14, 0.01)}, 0.16
    )
    decided = decide_c3(0.0, {**fits, "networks": drifting}, n_seeds=3, n_images=9)
    assert decided["verdict"] == "not reproduced"
    assert decided["checks"]["networks: S / P constant across radii"]["verdict"] == "not reproduced"
    # a slope whose interval straddles 0, nothing else failing: inconclusive
    flat = _fit(normal_tested(0.05, 0.04), good["intercept"], {0.05: normal_tested(0.05, 0.05)}, 0.05)
    assert decide_c3(0.0, {**fits, "networks": flat}, n_seeds=3, n_images=9)["verdict"] == "inconclusive"
    assert CLAIMS["C3"].decide is decide_c3


def test_c4_and_c5_decide_each_baseline_from_its_bootstrap():
    rng = np.random.default_rng(0)

    def boot(centre: float, threshold: float) -> BootstrapTested:
        return percentile_tested(centre, rng.normal(centre, 0.01, 20_000), threshold=threshold)

    both = {"ST vs ST'": boot(0.15, C4_MIN_DISTANCE), "AT vs AT'": boot(0.14, C4_MIN_DISTANCE)}
    decided = decide_c4(both, n_images=1000)
    assert decided["verdict"] == "reproduced" and decided["primary"] == "AT vs AT'"
    assert decided["checks"]["AT vs AT'"]["mc_error"][0] > 0 and decided["checks"]["AT vs AT'"]["n_resamples"] == 20_000
    assert decide_c4({**both, "AT vs AT'": boot(0.1, C4_MIN_DISTANCE)}, n_images=9)["verdict"] == "inconclusive"
    assert decide_c4({**both, "AT vs AT'": boot(0.05, C4_MIN_DISTANCE)}, n_images=9)["verdict"] == "not reproduced"
    c5 = decide_c5({"ST vs ST'": boot(0.2, C5_MIN_DISTANCE)}, n_images=10)
    assert c5["threshold"] == C5_MIN_DISTANCE and c5["verdict"] == "reproduced"


# ---------------------------------------------------------------------------------------------------------
# C6, C7, C8
# ---------------------------------------------------------------------------------------------------------

NAMES = {
    "hard": lineup.HARD,
    "kd_st": lineup.KD_ST,
    "soft": lineup.KD_ST_SOFT,
    "kd_at": lineup.KD_AT,
    "shuffled": "AT shuffled",
    "spread": "AT spread",
    "order": "AT ST order",
    "flat": "AT flattened",
    "smooth": "AT label smoothing",
}


def outcomes_at(rates: dict[str, list[float]], n: int = 400, seed: int = 0) -> dict[str, np.ndarray]:
    """Per student (by `NAMES` key) and seed, exactly ``rate`` of ``n`` images robust, in a random order."""
    rng = np.random.default_rng(seed)
    return {
        NAMES[k]: np.stack([rng.permutation(np.arange(n) < round(r * n)) for r in rs]).astype(float)
        for k, rs in rates.items()
    }


BASE = dict(hard=0.10, kd_st=0.12, soft=0.14, kd_at=0.42, shuffled=0.15, spread=0.20, order=0.27, flat=0.12, smooth=0.1)


def test_the_gain_is_over_the_best_baseline_and_the_contrast_needs_no_ratio():
    o = outcomes_at({k: [v, v] for k, v in BASE.items()})
    assert comparisons.best_baseline(o) == lineup.KD_ST_SOFT
    assert comparisons.gain_values(o).mean() == pytest.approx(0.42 - 0.14)
    # KD-AT - student - half the gain: ST order keeps more than half (0.42 - 0.27 < 0.14)
    assert comparisons.removal_contrast(o, "AT ST order").mean() == pytest.approx(0.42 - 0.27 - 0.14)
    assert comparisons.removal_contrast(o, "AT shuffled").mean() == pytest.approx(0.42 - 0.15 - 0.14)
    share, low, high = comparisons.removed_share(o, "AT shuffled")
    assert share == pytest.approx((0.42 - 0.15) / 0.28) and low < share < high
    # no gain: the contrast is still defined, the share's interval unbounded
    none = outcomes_at({**{k: [v, v] for k, v in BASE.items()}, "kd_at": [0.14, 0.14]})
    assert math.isfinite(comparisons.removal_contrast(none, "AT shuffled").mean())
    assert comparisons.removed_share(none, "AT shuffled")[1:] == (-math.inf, math.inf)
    with pytest.raises(
        ValueError,
        match=r"^outcomes must be a robust accuracy for every student the claim reads "
        r"\(got missing \['KD-ST soft'\]\)",
    ):
        comparisons.best_baseline({k: v for k, v in o.items() if k != lineup.KD_ST_SOFT})


def test_distillation_tests_on_hand_made_seeds_and_images():
    """Three seeds, 400 images: KD-AT robust on 40%, the baselines on 10%, the C7 students removing at least 3/4
    of the gain, the C8 students none of it, on every seed."""
    rates = dict(hard=0.1, kd_st=0.1, soft=0.1, kd_at=0.4, shuffled=0.175, spread=0.15, order=0.1, flat=0.4, smooth=0.4)
    o = outcomes_at({k: [v] * 3 for k, v in rates.items()})
    tests = comparisons.distillation_tests(o)
    gain = next(iter(tests["gain"].values()))
    assert gain.estimate == pytest.approx(0.3) and 0.2 < gain.low and gain.high < 0.4
    assert set(tests["C6"]) == {f"KD-AT - {b}" for b in comparisons.C6_BASELINES}
    assert decide_c6(tests["C6"], n_seeds=3, n_images=400)["verdict"] == "reproduced"
    assert decide_removal(gain, tests["C7"], n_seeds=3, n_images=400)["verdict"] == "reproduced"
    c8 = decide_removal(gain, tests["C8"], n_seeds=3, n_images=400)
    assert c8["verdict"] == "not reproduced" and c8["estimate"] == pytest.approx(-0.15)
    assert set(c8["checks"]) == {"a gain to remove", "AT flattened", "AT label smoothing"}


def test_c7_c8_are_not_testable_without_a_gain():
    rates = {k: [v] * 3 for k, v in BASE.items()} | {"kd_at": [0.14, 0.14, 0.14]}
    o = outcomes_at(rates)
    tests = comparisons.distillation_tests(o)
    gain = next(iter(tests["gain"].values()))
    decided = decide_removal(gain, tests["C7"], n_seeds=3, n_images=400)
    assert decided["verdict"] == "not testable" and decided["holds"] is None and decided["estimate"] is None
    assert decided["checks"]["a gain to remove"]["verdict"] != "reproduced"


def test_a_gain_near_the_threshold_with_few_seeds_is_inconclusive():
    """Three seeds whose gains are 4, 10 and 16 points average 10: the seed-and-image interval straddles the
    10-point threshold (its t quantile on two degrees of freedom is 4.3)."""
    rates = {k: [0.1] * 3 for k in ("hard", "kd_st", "soft", "shuffled", "spread", "order", "flat", "smooth")}
    o = outcomes_at({**rates, "kd_at": [0.14, 0.20, 0.26]}, n=500)
    tests = comparisons.distillation_tests(o)
    comparison = tests["C6"]["KD-AT - KD-ST soft"]
    assert comparison.estimate == pytest.approx(0.10) and comparison.low < C6_MARGIN < comparison.high
    assert decide_c6(tests["C6"], n_seeds=3, n_images=500)["verdict"] == "inconclusive"


# ---------------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------------


def test_records_carry_the_registry_wording_the_decision_and_are_jsonable():
    decided = decide_lower(
        {"pair": Tested(np.float64(-0.5), -1.0, np.float32(-0.25), 0.99, 0.001)}, n_seeds=2, n_images=100
    )
    record = claims.record(
        "C1",
        decided,
        measured={
            "diff": np.float64(-0.5),
            "bad": float("nan"),
            "nested": {"x": np.int64(3), 2: [math.inf]},
            "estimate": Estimate(1.0, 0.5, 1.5, 0.2),
        },
    )
    assert record["id"] == "C1" and record["claim"] == CLAIMS["C1"].claim
    assert record["criterion"] == CLAIMS["C1"].criterion and record["statistic"] == CLAIMS["C1"].statistic
    assert (record["verdict"], record["holds"], record["estimate"], record["ci"]) == (
        "reproduced",
        True,
        -0.5,
        [-1.0, -0.25],
    )
    assert (record["threshold"], record["n_seeds"], record["n_images"]) == (0.0, 2, 100)
    assert record["measured"] == {
        "diff": -0.5,
        "bad": None,
        "nested": {"x": 3, "2": [None]},
        "estimate": {"estimate": 1.0, "low": 0.5, "high": 1.5, "se": 0.2},
    }
    assert type(record["estimate"]) is float
    json.dumps(record, allow_nan=False)
    for verdict, holds in (("inconclusive", None), ("not testable", None), ("not reproduced", False)):
        r = claims.record("C7", verdicts.outcome(verdict, None, 0.5, n_seeds=3, n_images=500), measured={})
        assert (r["verdict"], r["holds"], r["estimate"], r["ci"]) == (verdict, holds, None, None)
    with pytest.raises(ValueError, match=r"^id must be one of 'C1', 'C2', .*'C8c' \(got 'C9'\)"):
        claims.record("C9", decided, measured={})
    with pytest.raises(ValueError, match=r"^decided must be an outcome of the claims registry"):
        claims.record("C1", {"holds": True}, measured={})
    with pytest.raises(ValueError, match=r"^verdict must be one of 'reproduced', .* \(got 'holds'\)"):
        verdicts.outcome("holds", None, 0.0, n_seeds=1, n_images=1)


def test_each_teacher_is_a_replication_decided_alone():
    """Two teacher groups: every comparison is decided within its group, the claim needs every group; a second
    teacher whose students keep the gain makes C7 fail even where the first teacher's students remove it."""
    rates = dict(hard=0.1, kd_st=0.1, soft=0.1, kd_at=0.4, shuffled=0.1, spread=0.1, order=0.1, flat=0.4, smooth=0.4)
    first = outcomes_at({k: [v] * 3 for k, v in rates.items()}, seed=1)
    second = outcomes_at({k: [v] * 3 for k, v in {**rates, "shuffled": 0.4}.items()}, seed=2)
    groups = {"AT teacher": first, "AT teacher (seed 1)": second}
    values = comparisons.grouped_values(groups)
    assert set(values["C7"]) == {
        f"{name} ({label})" for label in groups for name in ("AT shuffled", "AT spread", "AT ST order")
    }
    tests = comparisons.tested(values)
    gains = dict(zip(groups, tests["gain"].values()))
    decided = decide_removal(gains, tests["C7"], n_seeds=3, n_images=400)
    assert decided["verdict"] == "not reproduced" and decided["primary"] == "AT shuffled (AT teacher (seed 1))"
    assert {"a gain to remove (AT teacher)", "a gain to remove (AT teacher (seed 1))"} <= set(decided["checks"])
    only_first = decide_removal(
        {"AT teacher": gains["AT teacher"]},
        {k: v for k, v in tests["C7"].items() if k.endswith("(AT teacher)")},
        n_seeds=3,
        n_images=400,
    )
    assert only_first["verdict"] == "reproduced"
    assert decide_c6(tests["C6"], n_seeds=3, n_images=400)["verdict"] == "reproduced"


def _removal_record(cid: str, verdicts: dict[str, str], verdict: str) -> dict:
    checks = {"a gain to remove": {"verdict": "reproduced"}}
    checks |= {name: {"verdict": v, "p_claim_holm": 0.01} for name, v in verdicts.items()}
    return {"id": cid, "verdict": verdict, "checks": checks}


def test_the_removal_finding_says_which_students_keep_the_gain_and_what_that_means():
    teachers = ("", " (AT teacher (seed 1))")
    at = {f"AT {s}{t}": "not reproduced" for s in ("shuffled", "spread") for t in teachers}
    at |= {"AT ST order": "not reproduced", "AT ST order (AT teacher (seed 1))": "inconclusive"}
    corrected = {f"AT-corr {s}{t}": "reproduced" for s in ("shuffled", "spread", "ST order") for t in teachers}
    records = {
        "C7": _removal_record("C7", at, "not reproduced"),
        "C7c": _removal_record("C7c", corrected, "reproduced"),
    }
    assert wording.removal_finding(records, "C7") == (
        "Of the AT teacher's students, AT shuffled and AT spread keep more than half of it; AT ST order is undecided "
        "for at least one teacher; "
        "of the label-corrected teacher's, AT-corr shuffled, AT-corr spread and AT-corr ST order remove at least "
        "half of it. At this profile, the information about the incorrect classes carries at least half of what the "
        "logits add once the relabelling is undone, but less than half of the AT teacher's gain, which its "
        "relabelling keeps."
    )
    records["C7"]["checks"]["AT ST order (AT teacher (seed 1))"]["verdict"] = "reproduced"
    assert "AT ST order differs between the teachers" in wording.removal_finding(records, "C7")
    records["C7c"]["verdict"] = "inconclusive"
    assert "this design cannot say whether the information about the incorrect classes" in (
        wording.removal_finding(records, "C7")
    )
    untestable = {"C8": {"id": "C8", "verdict": "not testable", "checks": {}}}
    assert wording.removal_finding(untestable, "C8").startswith("C8 is not testable here")


def test_the_relabelling_sentence_gives_each_teachers_share():
    one = wording.relabelling_sentence(0.9, 0.4)
    assert "keeps 90.0% of the KD-AT student's gain" in one and "enough for most" in one and "carry part" in one
    assert one.endswith("the two overlap: neither accounts for the gain alone.")
    two = wording.relabelling_sentence({"A": 0.9, "B": 0.3}, {"A": 0.05, "B": 0.2})
    assert "keeps 90.0% (A) and 30.0% (B) of the KD-AT student's gain" in two
    assert "most or part (depending on the teacher)" in two and "at most the whole gain" in two
    assert wording.relabelling_sentence(None, 0.5).startswith("KD-AT has no gain")
