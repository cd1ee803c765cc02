"""The claims registry: each claim of the paper once, with its criterion, thresholds, chapter and decision.

A chapter measures, then calls `record` with what it measured; the registry decides the verdict and builds the
record the scorecard gathers. Statements, criteria, thresholds and verdict wording live here only; they were
fixed before any result was seen (docs/protocol.md) and are never tuned after.

A record is ``{"id", "claim", "criterion", "measured", "holds", "chapter"}``. Chapters write
``<claims_dir>/<chapter>.json``; the scorecard gathers every such file into ``<executed_dir>/scorecard.json``.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..checks import check_choice, fail
from ..fileio import atomic_write_bytes
from ..pipeline.lineup import C7_KINDS, C8_KINDS, HARD, KD_AT, KD_ST, student_label
from ..stats import Interval

# ---------------------------------------------------------------------------------------------------------------
# thresholds (fixed before any result)

C3_TOLERANCE = 1e-4  # C3: PGD on a linear model reaches the closed form within this (logit units)
C4_MIN_DISTANCE = 0.1  # C4: Spearman(ST, AT) at least this far below each seed baseline's Spearman
C5_FRACTION = 0.1  # C5: the most-confident 10% of the evaluation images
C6_MARGIN = 0.10  # C6: KD-AT beats both baselines by this much robust accuracy (10 points)
REMOVED_SHARE = 0.5  # C7, C8: a manipulated student removes at least this share of the C6 gain
_TOLERANCE = 1e-9  # accuracies are multiples of 1/n: compare them with slack for float rounding
_C4_SLACK = 1e-12  # so that a distance of exactly C4_MIN_DISTANCE (e.g. 0.9 - 0.8 in floats) counts as reached

VERDICT_WORDS = {True: "reproduced", False: "not reproduced", None: "not measured"}
VERDICT_MARKS = {True: "✓", False: "✗", None: "–"}


def verdict(holds: bool | None) -> str:
    """The words for a verdict (``None``: no record), the same on every page."""
    return VERDICT_WORDS[None if holds is None else bool(holds)]


def verdict_label(holds: bool | None) -> str:
    """The verdict with its mark, for tables: "✓ reproduced", "✗ not reproduced", "– not measured"."""
    key = None if holds is None else bool(holds)
    return f"{VERDICT_MARKS[key]} {VERDICT_WORDS[key]}"


# ---------------------------------------------------------------------------------------------------------------
# decisions


def lower_on_average(difference: Interval) -> bool:
    """C1, C2 on ``mean(AT) - mean(ST)`` with its paired interval: negative, the interval excluding 0."""
    estimate, _, high = difference
    return estimate < 0 and high < 0


def strictly_decreasing(values: Sequence[float]) -> bool:
    """True when each value is strictly below the one before (at least two finite values needed)."""
    if len(values) < 2 or not all(math.isfinite(v) for v in values):
        fail("values", "at least two finite numbers in sweep order", list(values))
    return all(b < a for a, b in zip(values, values[1:]))


def decide_c3(max_error: float, sweep_gaps: Sequence[float]) -> bool:
    """C3: PGD reaches the closed form within `C3_TOLERANCE`, and the sweep's mean gap decreases strictly."""
    return max_error < C3_TOLERANCE and len(sweep_gaps) >= 2 and strictly_decreasing(sweep_gaps)


def _check_interval(interval: object, name: str) -> Interval:
    if not (isinstance(interval, (tuple, list)) and len(interval) == 3
            and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in interval)):
        fail(name, "an (estimate, low, high) tuple of numbers, as bootstrap_ci returns", interval)
    estimate, low, high = (float(v) for v in interval)
    if low > high:
        fail(name, "an interval with low <= high", interval)
    return estimate, low, high


def decide_c4(pair: Interval, baselines: Mapping[str, Interval]) -> dict:
    """C4: does the (ST, AT) Spearman correlation lie clearly below every seed baseline's?

    For each baseline b: ``distance = estimate_b - estimate_pair`` must be at least `C4_MIN_DISTANCE` and the
    pair's interval must lie entirely below b's (``high_pair < low_b``). Returns ``{"holds": bool, "checks":
    {b: {"distance", "distance_ok", "ci_below"}}}``; a NaN anywhere fails its check.
    """
    estimate, _, high = _check_interval(pair, "pair")
    if not baselines:
        fail("baselines", "at least one seed baseline interval, e.g. {'ST vs ST prime': (...)}", baselines)
    checks = {}
    for name, interval in baselines.items():
        b_estimate, b_low, _ = _check_interval(interval, f"baselines[{name!r}]")
        distance = b_estimate - estimate
        checks[name] = {"distance": distance, "distance_ok": bool(distance >= C4_MIN_DISTANCE - _C4_SLACK),
                        "ci_below": bool(high < b_low)}
    return {"holds": all(c["distance_ok"] and c["ci_below"] for c in checks.values()), "checks": checks}


def decide_c5(pair: float, baselines: Mapping[str, float]) -> dict:
    """C5: is the Jaccard overlap of (ST, AT) strictly lower than every seed baseline's?

    Returns ``{"holds": bool, "below": {b: bool}}``; a NaN fails its comparison.
    """
    for name, value in (("pair", pair), *((f"baselines[{k!r}]", v) for k, v in baselines.items())):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isnan(value) or 0 <= value <= 1):
            fail(name, "a Jaccard overlap (a number in [0, 1], or NaN where it is undefined)", value)
    if not baselines:
        fail("baselines", "at least one seed baseline overlap, e.g. {'ST vs ST prime': 0.6}", baselines)
    below = {name: bool(float(pair) < float(value)) for name, value in baselines.items()}
    return {"holds": all(below.values()), "below": below}


def _require(robust: Mapping[str, float], names: Sequence[str]) -> None:
    missing = [n for n in names if n not in robust]
    if missing:
        fail("robust", "an accuracy for every student of the line-up", sorted(robust),
             shown=f"missing {missing}", hint="evaluate the whole line-up first")


def c6_gain(robust: Mapping[str, float]) -> float:
    """The C6 gain: ``robust[KD-AT] - max(robust[hard labels], robust[KD-ST])`` (fraction; may be negative)."""
    _require(robust, (HARD, KD_ST, KD_AT))
    return robust[KD_AT] - max(robust[HARD], robust[KD_ST])


def removal(robust: Mapping[str, float], names: Sequence[str], *, reference: str = KD_AT) -> dict[str, dict]:
    """For each student in ``names``: its robust accuracy, the share of the gain it removes, and the C7/C8 test.

    The gain is the C6 gain (see `c6_gain`) when ``reference`` is KD-AT, and ``robust[reference] -
    max(baselines)`` for another unmanipulated teacher (the label-corrected one, for the controls). A student
    meets the test (``meets``) when ``robust <= robust[reference] - gain * REMOVED_SHARE``; without a positive
    gain there is nothing to remove and ``meets`` is None. ``share_removed`` is ``(robust[reference] - robust) /
    gain``, NaN when the gain is not positive.
    """
    _require(robust, (HARD, KD_ST, reference, *names))
    gain = robust[reference] - max(robust[HARD], robust[KD_ST])
    threshold = robust[reference] - gain * REMOVED_SHARE
    return {name: {"robust": robust[name], "threshold": threshold,
                   "meets": robust[name] <= threshold + _TOLERANCE if gain > 0 else None,
                   "share_removed": (robust[reference] - robust[name]) / gain if gain > 0 else math.nan}
            for name in names}


def decide_distillation(robust: Mapping[str, float]) -> dict[str, dict]:
    """C6, C7 and C8 on the robust accuracies of the line-up: per claim ``holds``, ``evaluable`` and numbers.

    For C7 and C8 also ``criterion_met`` (the inequality for every student; None without a positive gain) and
    ``failing`` (the students that keep more than the allowed share of the gain).
    """
    gain = c6_gain(robust)
    c6_holds = gain >= C6_MARGIN - _TOLERANCE
    out = {"C6": {"holds": c6_holds, "evaluable": True, "gain": gain, "over_hard": robust[KD_AT] - robust[HARD],
                  "over_kd_st": robust[KD_AT] - robust[KD_ST]}}
    for claim, kinds in (("C7", C7_KINDS), ("C8", C8_KINDS)):
        students = removal(robust, [student_label(k) for k in kinds])
        met = all(s["meets"] is True for s in students.values())
        out[claim] = {"holds": c6_holds and met, "evaluable": c6_holds, "criterion_met": met if gain > 0 else None,
                      "gain": gain, "threshold": robust[KD_AT] - gain * REMOVED_SHARE, "students": students,
                      "failing": [name for name, s in students.items() if s["meets"] is False]}
    return out


# ---------------------------------------------------------------------------------------------------------------
# the registry


def _decide_mean_difference(difference: Interval) -> dict:
    return {"holds": lower_on_average(difference)}


def _decide_c3(max_error: float, sweep_gaps: Sequence[float]) -> dict:
    return {"holds": decide_c3(max_error, sweep_gaps)}


def _decide_from_lineup(claim: str) -> Callable[[Mapping[str, float]], dict]:
    def decide(robust: Mapping[str, float]) -> dict:
        return decide_distillation(robust)[claim]

    return decide


@dataclass(frozen=True)
class Claim:
    """One claim of the paper as the book tests it."""

    id: str  # "C1" ... "C8"
    statement: str  # the claim in a short line (landing page, scorecard)
    claim: str  # the claim as the chapter tests it
    criterion: str  # the fixed criterion, in words, thresholds included
    chapter: str  # the notebook that tests it (its file stem)
    decide: Callable[..., dict]  # measured values -> {"holds": bool, ...details}
    thresholds: dict[str, float] = field(default_factory=dict)  # the numbers the criterion names


_CHAPTER_2, _CHAPTER_3, _CHAPTER_4 = "02_logit_distributions", "03_sample_confidence", "04_distillation"

CLAIMS: dict[str, Claim] = {c.id: c for c in (
    Claim("C1", "AT models have lower max logits than ST models",
          "AT models have lower max logits than ST models, on average",
          "mean(AT) < mean(ST) for the max logit, with the paired bootstrap 95% CI of the difference excluding 0",
          _CHAPTER_2, _decide_mean_difference),
    Claim("C2", "AT models have smaller logit gaps than ST models",
          "AT models have smaller logit gaps than ST models, on average",
          "mean(AT) < mean(ST) for the logit gap, with the paired bootstrap 95% CI of the difference excluding 0",
          _CHAPTER_2, _decide_mean_difference),
    Claim("C3", "theory explains the smaller max logits and gaps",
          "theory explains C1/C2 (our proposition: worst-case margin = margin - eps * dual norm of w_y - w_j)",
          f"PGD on the linear model reaches the closed-form worst-case margin within {C3_TOLERANCE:g}, and the mean "
          "logit gap of the eps-sweep AT models decreases strictly as eps grows",
          _CHAPTER_2, _decide_c3, {"tolerance": C3_TOLERANCE}),
    Claim("C4", "AT and ST models differ on which samples get high or low confidence",
          "AT and ST models differ significantly on which samples get high or low confidence",
          f"Spearman(ST, AT) of per-sample confidences is at least {C4_MIN_DISTANCE} below both seed baselines "
          "(ST vs ST', AT vs AT') and its bootstrap 95% CI lies below both baselines' CIs",
          _CHAPTER_3, decide_c4, {"min_distance": C4_MIN_DISTANCE}),
    Claim("C5", "the samples with the largest confidence difference differ visibly",
          "the samples with the largest confidence difference between AT and ST differ visibly",
          f"Jaccard overlap of the most-confident {100 * C5_FRACTION:.0f}% of the evaluation images is lower for "
          "(ST, AT) than for (ST, ST') and for (AT, AT')",
          _CHAPTER_3, decide_c5, {"fraction": C5_FRACTION}),
    Claim("C6", "distilling an AT teacher on clean inputs gives the student robustness",
          "Distilling an AT teacher on clean inputs only gives the student some robustness.",
          "AutoAttack accuracy of the KD-AT student >= that of the hard-label student + 10 points and >= that of "
          "the KD-ST student + 10 points (gain = KD-AT - max(hard, KD-ST) >= 10 points).",
          _CHAPTER_4, _decide_from_lineup("C6"), {"margin": C6_MARGIN}),
    Claim("C7", "information about incorrect classes is essential",
          "Information about incorrect classes is essential: manipulating the AT teacher's non-max logits "
          "(shuffled, mean, ST ordering) removes the robustness the student inherits.",
          "C6 holds and each of the shuffled, mean and ST-order students has AutoAttack accuracy <= KD-AT - gain / 2 "
          "(it removes at least half of the C6 gain).",
          _CHAPTER_4, _decide_from_lineup("C7"), {"removed_share": REMOVED_SHARE}),
    Claim("C8", "sample-wise confidences matter",
          "Sample-wise confidences matter: flattening the AT teacher's confidence to its data-set average, or label "
          "smoothing at that average, removes the robustness.",
          "C6 holds and each of the flattened-confidence and label-smoothing students has AutoAttack accuracy <= "
          "KD-AT - gain / 2 (it removes at least half of the C6 gain).",
          _CHAPTER_4, _decide_from_lineup("C8"), {"removed_share": REMOVED_SHARE}),
)}
CLAIM_IDS: tuple[str, ...] = tuple(CLAIMS)
CHAPTERS: dict[str, tuple[str, ...]] = {}
for _claim in CLAIMS.values():
    CHAPTERS.setdefault(_claim.chapter, ())
    CHAPTERS[_claim.chapter] += (_claim.id,)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def record(id: str, *, measured: dict, holds: bool) -> dict:
    """The record of claim ``id``: its registry wording, what was measured and the verdict (validated)."""
    check_choice("id", id, CLAIM_IDS)
    if not isinstance(holds, (bool, np.bool_)):
        fail("holds", "True or False (the verdict the registry decided)", holds)
    claim = CLAIMS[id]
    return {"id": id, "claim": claim.claim, "criterion": claim.criterion, "measured": _jsonable(measured),
            "holds": bool(holds)}


# ---------------------------------------------------------------------------------------------------------------
# records on disk


def executed_dir(profile: str) -> Path:
    """Where the chapters of ``profile`` are executed: ``$ADVLOGITS_EXECUTED_DIR`` or ``<repo>/_build/executed/<profile>``.

    The Makefile sets the variable; without it, the path is found from the working directory (papermill runs
    chapters from ``chapters/``, so the repository root is its parent when a ``_toc.yml`` is there).
    """
    if os.environ.get("ADVLOGITS_EXECUTED_DIR"):
        return Path(os.environ["ADVLOGITS_EXECUTED_DIR"])
    here = Path.cwd()
    root = next((p for p in (here, *here.parents) if (p / "_toc.yml").exists()), here)
    return root / "_build" / "executed" / profile


def claims_dir(profile: str) -> Path:
    """The folder of the chapters' claim files of ``profile``."""
    return executed_dir(profile) / "claims"


def write_claims(profile: str, chapter: str, records: list[dict]) -> Path:
    """Write a chapter's claim records atomically to ``claims/<chapter>.json``; returns the path."""
    path = claims_dir(profile) / f"{chapter}.json"
    payload = [{**r, "chapter": chapter} for r in records]
    atomic_write_bytes(json.dumps(payload, indent=1).encode(), path)
    return path


def gather(profile: str) -> list[dict]:
    """Every chapter's claim records of ``profile``, sorted by claim id (then chapter)."""
    records = []
    for path in sorted(claims_dir(profile).glob("*.json")):
        records.extend(json.loads(path.read_text()))
    return sorted(records, key=lambda r: (r["id"], r.get("chapter", "")))


def write_scorecard(profile: str) -> Path:
    """Gather every claim record of ``profile`` into ``scorecard.json`` (atomically); returns the path."""
    path = executed_dir(profile) / "scorecard.json"
    atomic_write_bytes(json.dumps(gather(profile), indent=1).encode(), path)
    return path

