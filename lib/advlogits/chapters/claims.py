"""The claims registry: each claim of the paper once, with its criterion, threshold, chapter and decision.

A chapter measures; the registry decides, against the thresholds fixed in docs/protocol.md (amended 2026-12-04, before
the results it decides). Each comparison of a claim has a 95% interval (`advlogits.inference`) and one-sided p-values
read off it; within the claim, Holm's correction runs over its comparisons, and each one is

* **reproduced** when its adjusted claim-side p-value is at most 2.5% (unadjusted: the whole interval lies on the
  claim's side of the threshold);
* **not reproduced** when its adjusted other-side p-value is;
* **inconclusive** otherwise.

The claim is their conjunction: reproduced when every comparison is, not reproduced when any is, inconclusive
otherwise; **not testable** when its precondition fails (C7 and C8 without a gain to remove). The claim's row shows
the comparison the conjunction hinges on (``primary``). Statements, criteria, thresholds and verdict wording live
here only.

A record is ``{"id", "claim", "criterion", "statistic", "verdict", "estimate", "ci", "threshold", "n_seeds",
"n_images", "holds", "primary", "checks", "measured", "chapter"}`` (``holds``: True when reproduced, False when not
reproduced, None otherwise; ``checks``: every comparison with its interval, p-values and verdict).
Chapters write their records with `write_claims` and the scorecard gathers them with `write_scorecard`, both from
`advlogits.buildfiles`, which says where (the build's folder, or a hand run's).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..buildfiles import write_claims, write_scorecard  # noqa: F401 - how the chapters write their records
from ..checks import check_choice, fail
from ..inference import Tested
from ..pipeline.lineup import C7_KINDS, C8_KINDS, student_label
from .comparisons import C6_MARGIN
from .verdicts import VERDICTS, Side, as_interval, decide_family, family_outcome, outcome

# ---------------------------------------------------------------------------------------------------------------
# thresholds (fixed before any result; docs/protocol.md)

C3_TOLERANCE = 1e-4  # C3: PGD on a linear model reaches the closed form within this (logit units)
C4_MIN_DISTANCE = 0.1  # C4: Spearman(ST, AT) at least this far below each seed baseline's Spearman
C5_FRACTION = 0.1  # C5: the most-confident 10% of the evaluation images
C5_MIN_DISTANCE = 0.05  # C5: Jaccard(ST, AT) at least this far below each seed baseline's
C7_STUDENTS: tuple[str, ...] = tuple(student_label(k) for k in C7_KINDS)
C8_STUDENTS: tuple[str, ...] = tuple(student_label(k) for k in C8_KINDS)

# ---------------------------------------------------------------------------------------------------------------
# decisions, one per claim


def decide_lower(comparisons: Mapping[str, Any], *, n_seeds: int, n_images: int) -> dict:
    """C1, C2: every paired difference AT - ST (name -> `Tested` against 0) lies below 0, each decided alone with
    Holm's correction across the pairs."""
    return family_outcome(comparisons, 0.0, "below", n_seeds=n_seeds, n_images=n_images)


def decide_c3(max_error: float, fits: Mapping[str, Mapping[str, Any]], *, n_seeds: int, n_images: int) -> dict:
    """C3 (docs/protocol.md, amendment of 2026-12-04): the closed form is exact (PGD within `C3_TOLERANCE`); per
    family of models (``fits``: family -> {"slope", "intercept", "ratios": {radius: Tested}, "constant"}), the
    slope of shrinkage on penalty lies above 0 (Holm across families), the intercept's interval contains 0, and
    every radius's ratio S / P has an interval containing the family's constant of proportionality."""
    if not fits:
        fail("fits", "at least one family's fit of shrinkage on penalty", fits)
    exact = "reproduced" if max_error < C3_TOLERANCE else "not reproduced"
    extra: dict[str, dict] = {"closed form": {"estimate": max_error, "ci": None, "verdict": exact}}
    for family, fit in fits.items():
        i = fit["intercept"]
        extra[f"{family}: intercept contains 0"] = {
            "estimate": float(i.estimate),
            "ci": [float(i.low), float(i.high)],
            "verdict": "reproduced" if i.low <= 0 <= i.high else "not reproduced",
        }
        constant = float(fit["constant"])
        outside = [f"{r:g}" for r, t in fit["ratios"].items() if not t.low <= constant <= t.high]
        extra[f"{family}: S / P constant across radii"] = {
            "estimate": constant,
            "ci": None,
            "ratios": {f"{r:g}": [float(t.estimate), float(t.low), float(t.high)] for r, t in fit["ratios"].items()},
            "verdict": "not reproduced" if outside else "reproduced",
        }
    slopes = {f"{family}: slope above 0": fit["slope"] for family, fit in fits.items()}
    decided = family_outcome(slopes, 0.0, "above", n_seeds=n_seeds, n_images=n_images, extra=extra)
    first = next(iter(fits))  # the row shows the first family's intercept, the prediction beyond C2
    i = fits[first]["intercept"]
    return {**decided, "estimate": float(i.estimate), "ci": [float(i.low), float(i.high)], "primary": first}


def decide_c4(distances: Mapping[str, Any], *, n_images: int) -> dict:
    """C4: for each seed baseline, its Spearman minus Spearman(ST, AT) is at least `C4_MIN_DISTANCE` (name ->
    bootstrap `Tested`), each decided alone with Holm's correction across the two."""
    return family_outcome(distances, C4_MIN_DISTANCE, "at least", n_seeds=1, n_images=n_images)


def decide_c5(distances: Mapping[str, Any], *, n_images: int) -> dict:
    """C5: for each seed baseline, its top-set overlap minus overlap(ST, AT) is at least `C5_MIN_DISTANCE`."""
    return family_outcome(distances, C5_MIN_DISTANCE, "at least", n_seeds=1, n_images=n_images)


def decide_c6(comparisons: Mapping[str, Tested], *, n_seeds: int, n_images: int) -> dict:
    """C6: KD-AT beats every baseline by at least `C6_MARGIN` (each comparison alone, Holm across the three)."""
    return family_outcome(comparisons, C6_MARGIN, "at least", n_seeds=n_seeds, n_images=n_images)


def decide_removal(
    gain: Tested | Mapping[str, Tested], contrasts: Mapping[str, Tested], *, n_seeds: int, n_images: int
) -> dict:
    """C7, C8: not testable unless the gain over the best baseline has its interval above 0 (a gain to remove), in
    every teacher group (``gain``: one interval, or teacher label -> interval); then every student's contrast
    ``KD - student - 0.5 gain`` is at least 0 (each alone, Holm across the students and the groups)."""
    gains = gain if isinstance(gain, Mapping) else {"": gain}
    precondition = {}
    for label, g in gains.items():
        g_e, g_lo, g_hi = as_interval(g, "gain")
        name = "a gain to remove" + (f" ({label})" if label else "")
        precondition[name] = {
            "estimate": g_e,
            "ci": [g_lo, g_hi],
            "verdict": "reproduced" if g_lo > 0 else "inconclusive",
        }
    if not all(p["verdict"] == "reproduced" for p in precondition.values()):
        checks = decide_family(contrasts, 0.0, "at least") if contrasts else {}
        return outcome("not testable", None, 0.0, n_seeds=n_seeds, n_images=n_images, checks={**precondition, **checks})
    return family_outcome(contrasts, 0.0, "at least", n_seeds=n_seeds, n_images=n_images, extra=precondition)


# ---------------------------------------------------------------------------------------------------------------
# the registry


@dataclass(frozen=True)
class Claim:
    """One claim of the paper as the book tests it."""

    id: str  # "C1" ... "C8"
    statement: str  # the claim in a short line (landing page, scorecard)
    claim: str  # the claim as the chapter tests it
    criterion: str  # the fixed criterion, in words, threshold included
    chapter: str  # the notebook that tests it (its file stem)
    decide: Callable[..., dict]  # measured statistics -> an `outcome`
    threshold: float  # the number the criterion compares the statistic with
    statistic: str  # what the row's estimate is, in words
    side: Side | None = "at least"  # the claim's side of the threshold for the row's statistic (None: C3's "contains")
    ours: bool = False  # a reading of ours decided beside the paper's claims (not counted among them)


_CHAPTER_2, _CHAPTER_3, _CHAPTER_4 = "02_logit_distributions", "03_sample_confidence", "04_distillation"
_BOTH_PAIRS = (
    "for both seed pairs (ST/AT, ST'/AT'), on all images and on the images both models classify "
    "correctly, and for the budget-matched pair of the eps sweep"
)

_HOLM = "each comparison decided alone, Holm's correction across them"
CLAIMS: dict[str, Claim] = {
    c.id: c
    for c in (
        Claim(
            "C1",
            "AT models have lower max logits than ST models",
            "AT models have lower max logits than ST models, on average",
            f"the paired difference of mean max logit AT - ST has its 95% interval below 0 {_BOTH_PAIRS} ({_HOLM})",
            _CHAPTER_2,
            decide_lower,
            0.0,
            "mean max logit, AT - ST (logit units)",
            side="below",
        ),
        Claim(
            "C2",
            "AT models have smaller logit gaps than ST models",
            "AT models have smaller logit gaps than ST models, on average",
            f"the paired difference of mean logit gap AT - ST has its 95% interval below 0 {_BOTH_PAIRS} ({_HOLM})",
            _CHAPTER_2,
            decide_lower,
            0.0,
            "mean logit gap, AT - ST (logit units)",
            side="below",
        ),
        Claim(
            "C3",
            "the smaller logit gaps are consistent with the theory",
            "the smaller logit gaps are consistent with our proposition (worst-case margin = margin - eps * dual "
            "norm of w_y - w_j): the gap shrinks in proportion to the proposition's penalty",
            f"PGD on the linear models reaches the closed form within {C3_TOLERANCE:g}; for the networks and for the "
            "linear models, over 3 seeds per radius, the slope of the gap's shrinkage on the proposition's penalty has "
            "its 95% interval above 0, the fit's intercept has its interval containing 0, and every radius's ratio "
            "of shrinkage to penalty has its interval containing the constant of proportionality",
            _CHAPTER_2,
            decide_c3,
            0.0,
            "intercept of the shrinkage-on-penalty fit, networks (logit units)",
            side=None,
        ),
        Claim(
            "C4",
            "AT and ST models differ in which samples they are sure of",
            "AT and ST models differ significantly on which samples get high or low confidence",
            f"for each seed baseline (ST vs ST', AT vs AT'), its Spearman minus Spearman(ST, AT) has its 95% interval "
            f"at or above {C4_MIN_DISTANCE} ({_HOLM})",
            _CHAPTER_3,
            decide_c4,
            C4_MIN_DISTANCE,
            "Spearman distance below the seed baseline",
        ),
        Claim(
            "C5",
            "the samples whose confidence differs most differ visibly",
            "the samples with the largest confidence difference between AT and ST differ visibly",
            f"for each seed baseline, its overlap minus overlap(ST, AT) of the most-confident "
            f"{100 * C5_FRACTION:.0f}% has its 95% interval at or above {C5_MIN_DISTANCE} ({_HOLM})",
            _CHAPTER_3,
            decide_c5,
            C5_MIN_DISTANCE,
            "Jaccard distance below the seed baseline",
        ),
        Claim(
            "C6",
            "distilling an AT teacher on clean inputs gives robustness",
            "Distilling an AT teacher on clean inputs only gives the student some robustness.",
            "KD-AT minus each baseline (hard labels, KD-ST, KD-ST soft; robust accuracy, mean over seeds and images) "
            f"has its 95% interval at or above {100 * C6_MARGIN:.0f} points ({_HOLM})",
            _CHAPTER_4,
            decide_c6,
            C6_MARGIN,
            "robust-accuracy gain of KD-AT over a baseline",
        ),
        Claim(
            "C7",
            "information about incorrect classes is essential",
            "Information about incorrect classes is essential: removing what the AT teacher says about them, while "
            "keeping its confidence (shuffled, spread, ST order), removes the robustness the student inherits.",
            "with a gain to remove (KD-AT minus the best baseline, interval above 0), for each of the shuffled, spread "
            "and ST-order students, KD-AT - student - half the gain has its 95% interval at or above 0 (it removes "
            f"at least half the gain; {_HOLM})",
            _CHAPTER_4,
            decide_removal,
            0.0,
            "KD-AT - student - half the gain",
        ),
        Claim(
            "C8",
            "sample-wise confidences matter",
            "Sample-wise confidences matter: flattening the AT teacher's confidence to its data-set average, or label "
            "smoothing at that average, removes the robustness.",
            "with a gain to remove, for each of the flattened and label-smoothing students, KD-AT - student - half the "
            f"gain has its 95% interval at or above 0 ({_HOLM})",
            _CHAPTER_4,
            decide_removal,
            0.0,
            "KD-AT - student - half the gain",
        ),
        Claim(
            "C7c",
            "C7 once the teacher's relabelling is undone (ours)",
            "Our reading of C7 on the label-corrected AT teacher (its logits changed only where it is wrong): removing "
            "what it says about the incorrect classes removes the robustness its student inherits.",
            "with a gain to remove (the label-corrected teacher's KD student minus the best baseline, interval above "
            "0), for each of its shuffled, spread and ST-order students, its KD student - student - half its gain has "
            f"its 95% interval at or above 0 ({_HOLM})",
            _CHAPTER_4,
            decide_removal,
            0.0,
            "AT-corr KD - student - half its gain",
            ours=True,
        ),
        Claim(
            "C8c",
            "C8 once the teacher's relabelling is undone (ours)",
            "Our reading of C8 on the label-corrected AT teacher: flattening its confidence to its data-set average "
            "(and, where the design has it, giving each image another's confidence) removes the robustness.",
            "with a gain to remove, for each of the label-corrected teacher's flattened (and confidence-permuted) "
            f"students, its KD student - student - half its gain has its 95% interval at or above 0 ({_HOLM}); "
            "label smoothing of the true labels is a baseline here, not a manipulation",
            _CHAPTER_4,
            decide_removal,
            0.0,
            "AT-corr KD - student - half its gain",
            ours=True,
        ),
    )
}
CLAIMS = dict(sorted(CLAIMS.items(), key=lambda item: (int(item[0][1:2]), item[0])))  # C7, then our C7c, then C8
CLAIM_IDS: tuple[str, ...] = tuple(CLAIMS)
PAPER_CLAIM_IDS: tuple[str, ...] = tuple(cid for cid, c in CLAIMS.items() if not c.ours)
CHAPTERS: dict[str, tuple[str, ...]] = {}
for _claim in CLAIMS.values():
    CHAPTERS.setdefault(_claim.chapter, ())
    CHAPTERS[_claim.chapter] += (_claim.id,)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple) and hasattr(value, "_asdict"):  # Estimate, Tested, BootstrapTested
        value = value._asdict()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def record(id: str, decided: dict, *, measured: dict, flagged: Sequence[str] = ()) -> dict:
    """The record of claim ``id``: its registry wording, the decided `outcome`, what was measured and the students
    its verdict reads that a gradient-masking check flagged (``flagged``; the scorecard says so beside the verdict)."""
    check_choice("id", id, CLAIM_IDS)
    if not (isinstance(decided, dict) and decided.get("verdict") in VERDICTS):
        fail("decided", "an outcome of the claims registry (a dict with a verdict)", decided)
    claim = CLAIMS[id]
    keys = ("verdict", "estimate", "ci", "threshold", "n_seeds", "n_images", "holds", "primary", "checks")
    return {
        "id": id,
        "claim": claim.claim,
        "criterion": claim.criterion,
        "statistic": claim.statistic,
        **{k: _jsonable(decided[k]) for k in keys},
        "measured": _jsonable(measured),
        **({"flagged": list(flagged)} if flagged else {}),
    }
