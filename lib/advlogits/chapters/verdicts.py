"""Verdicts, and how a family of comparisons is decided: each comparison's one-sided p-values read off its 95%
interval, Holm's correction across the family, the claim their conjunction (docs/protocol.md). The claims registry
(`advlogits.chapters.claims`) decides every claim with these; the scorecard and the README label verdicts with them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from ..checks import check_choice, fail
from ..inference import holm
from ..stats import Interval

SIDE_ALPHA = 0.025  # each side's level: the tails of a 95% interval (Holm-adjusted within a claim)

# ---------------------------------------------------------------------------------------------------------------
# verdicts

Verdict = Literal["reproduced", "not reproduced", "inconclusive", "not testable"]
VERDICTS: tuple[str, ...] = ("reproduced", "not reproduced", "inconclusive", "not testable")
NOT_MEASURED = "not measured"
VERDICT_MARKS = {"reproduced": "✓", "not reproduced": "✗", "inconclusive": "?", "not testable": "–", NOT_MEASURED: "·"}
Side = Literal["at least", "above", "below"]


def verdict_label(verdict: str) -> str:
    """The verdict with its mark, for tables: "✓ reproduced", "✗ not reproduced", "? inconclusive", ..."""
    check_choice("verdict", verdict, (*VERDICTS, NOT_MEASURED))
    return f"{VERDICT_MARKS[verdict]} {verdict}"


def side_verdict(low: float, high: float, threshold: float, side: Side) -> str:
    """The verdict of one interval [low, high] against ``threshold`` on the claim's ``side``.

    ``"at least"``: the claim is statistic >= threshold (reproduced when low >= threshold, not reproduced when
    high < threshold); ``"above"``: statistic > threshold (low > threshold; high <= threshold); ``"below"``:
    statistic < threshold (high < threshold; low >= threshold). An undefined (NaN) bound is inconclusive.
    """
    check_choice("side", side, ("at least", "above", "below"))
    if math.isnan(low) or math.isnan(high):
        return "inconclusive"
    if side == "at least":
        claim_side, other_side = low >= threshold, high < threshold
    elif side == "above":
        claim_side, other_side = low > threshold, high <= threshold
    else:
        claim_side, other_side = high < threshold, low >= threshold
    return "reproduced" if claim_side else "not reproduced" if other_side else "inconclusive"


def conjunction(verdicts: Sequence[str]) -> str:
    """Several comparisons that must all hold: reproduced if all are, not reproduced if any is, else inconclusive."""
    if not verdicts:
        fail("verdicts", "at least one verdict", verdicts)
    for v in verdicts:
        check_choice("verdicts", v, VERDICTS[:3])
    if all(v == "reproduced" for v in verdicts):
        return "reproduced"
    return "not reproduced" if "not reproduced" in verdicts else "inconclusive"


def as_interval(value: object, name: str) -> Interval:
    if hasattr(value, "interval"):
        return tuple(float(v) for v in value.interval)
    if not (
        isinstance(value, (tuple, list))
        and len(value) == 3
        and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)
    ):
        fail(name, "an (estimate, low, high) interval of numbers", value)
    estimate, low, high = (float(v) for v in value)
    if low > high:
        fail(name, "an interval with low <= high", value)
    return estimate, low, high


def _p_values(tested: Any, side: Side) -> tuple[float, float]:
    """(claim side, other side) one-sided p-values of a `Tested` value."""
    for field in ("p_above", "p_below"):
        if not isinstance(getattr(tested, field, None), numbers.Real):
            fail("comparisons", "tested values with p-values (advlogits.inference.Tested)", type(tested).__name__)
    if side == "below":
        return float(tested.p_below), float(tested.p_above)
    return float(tested.p_above), float(tested.p_below)


def decide_family(tests: Mapping[str, Any], threshold: float, side: Side) -> dict[str, dict]:
    """Each comparison of a claim decided alone, with Holm's correction across the family (docs/protocol.md):
    reproduced when its Holm-adjusted claim-side p-value is at most `SIDE_ALPHA`, not reproduced when its adjusted
    other-side p-value is, inconclusive otherwise (and when a p-value is undefined).

    ``tests`` maps a comparison's name to a `advlogits.inference.Tested` (or `BootstrapTested`) against
    ``threshold``; returns name -> {estimate, ci, p_claim, p_other, p_claim_holm, p_other_holm, verdict}, with the
    Monte-Carlo error of each bound for a bootstrap."""
    check_choice("side", side, ("at least", "above", "below"))
    if not tests:
        fail("tests", "at least one comparison", tests)
    p = {name: _p_values(t, side) for name, t in tests.items()}
    defined = [name for name, (pc, po) in p.items() if not (math.isnan(pc) or math.isnan(po))]
    claim_holm = dict(zip(defined, holm([p[n][0] for n in defined]))) if defined else {}
    other_holm = dict(zip(defined, holm([p[n][1] for n in defined]))) if defined else {}
    out = {}
    for name, t in tests.items():
        e, lo, hi = t.estimate, t.low, t.high
        verdict = "inconclusive"
        if name in claim_holm:
            if claim_holm[name] <= SIDE_ALPHA:
                verdict = "reproduced"
            elif other_holm[name] <= SIDE_ALPHA:
                verdict = "not reproduced"
        row = {
            "estimate": float(e),
            "ci": [float(lo), float(hi)],
            "threshold": threshold,
            "p_claim": p[name][0],
            "p_other": p[name][1],
            "p_claim_holm": claim_holm.get(name, math.nan),
            "p_other_holm": other_holm.get(name, math.nan),
            "verdict": verdict,
        }
        if hasattr(t, "mc_low"):
            row |= {"mc_error": [float(t.mc_low), float(t.mc_high)], "n_resamples": int(t.n_resamples)}
        out[name] = row
    return out


def weakest(checks: Mapping[str, dict]) -> str:
    """The comparison a conjunction hinges on: the largest Holm-adjusted claim-side p-value (NaN counts as 1)."""
    return max(checks, key=lambda n: 1.0 if math.isnan(checks[n]["p_claim_holm"]) else checks[n]["p_claim_holm"])


def outcome(
    verdict: str,
    primary: Interval | None,
    threshold: float,
    *,
    n_seeds: int,
    n_images: int,
    checks: Mapping[str, dict] | None = None,
    primary_name: str | None = None,
) -> dict:
    """A decided claim: its verdict, the row's statistic with its interval (``primary``: the comparison named
    ``primary_name``), the threshold, the design's size, and every comparison it was decided on (``checks``)."""
    check_choice("verdict", verdict, VERDICTS)
    estimate, ci = (None, None)
    if primary is not None:
        e, lo, hi = as_interval(primary, "primary")
        estimate, ci = e, [lo, hi]
    return {
        "verdict": verdict,
        "holds": {"reproduced": True, "not reproduced": False}.get(verdict),
        "estimate": estimate,
        "ci": ci,
        "threshold": threshold,
        "n_seeds": n_seeds,
        "n_images": n_images,
        "primary": primary_name,
        "checks": dict(checks or {}),
    }


def family_outcome(
    tests: Mapping[str, Any], threshold: float, side: Side, *, n_seeds: int, n_images: int, extra: dict | None = None
) -> dict:
    """Decide a family (`decide_family`), conjoin it with the deterministic checks of ``extra``, and show the
    comparison the conjunction hinges on as the row."""
    checks = decide_family(tests, threshold, side)
    row = weakest(checks)
    all_checks = {**(extra or {}), **checks}
    return outcome(
        conjunction([c["verdict"] for c in all_checks.values()]),
        (checks[row]["estimate"], *checks[row]["ci"]),
        threshold,
        n_seeds=n_seeds,
        n_images=n_images,
        checks=all_checks,
        primary_name=row,
    )
