"""The claims registry: each claim of the paper once, with its criterion, threshold, chapter and decision.

A chapter measures; the registry turns the measurements into the claim's statistic with a 95% interval and decides
the verdict against the threshold fixed in docs/protocol.md before any result:

* **reproduced**: the whole interval lies on the claim's side of the threshold;
* **not reproduced**: the whole interval lies on the other side;
* **inconclusive**: the interval straddles the threshold;
* **not testable**: the claim's precondition fails (C7 and C8 without a C6 gain to remove).

A claim that needs several comparisons is their conjunction: reproduced when every one is, not reproduced when any
is, inconclusive otherwise. Statements, criteria, thresholds and verdict wording live here only.

A record is ``{"id", "claim", "criterion", "measured", "verdict", "estimate", "ci", "threshold", "n_seeds",
"n_images", "holds", "chapter"}`` (``holds``: True when reproduced, False when not reproduced, None otherwise).
Chapters write ``<claims_dir>/<chapter>.json``; the scorecard gathers them into ``<executed_dir>/scorecard.json``.
Only the build writes into its own folder (``_build/executed/<profile>``); a chapter run by hand writes into
``_build/hand-runs/<profile>`` and says so in one printed line (`executed_dir`).
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..checks import check_choice, fail
from ..fileio import atomic_write_bytes
from ..pipeline.lineup import C7_KINDS, C8_KINDS, HARD, KD_AT, KD_ST, KD_ST_SOFT, student_label
from ..stats import Estimate, Interval, seed_image_bootstrap

# ---------------------------------------------------------------------------------------------------------------
# thresholds (fixed before any result; docs/protocol.md)

C3_TOLERANCE = 1e-4  # C3: PGD on a linear model reaches the closed form within this (logit units)
C4_MIN_DISTANCE = 0.1  # C4: Spearman(ST, AT) at least this far below each seed baseline's Spearman
C5_FRACTION = 0.1  # C5: the most-confident 10% of the evaluation images
C5_MIN_DISTANCE = 0.05  # C5: Jaccard(ST, AT) at least this far below each seed baseline's
C6_MARGIN = 0.10  # C6: KD-AT beats the best baseline by this much robust accuracy (10 points)
REMOVED_SHARE = 0.5  # C7, C8: every manipulated student removes at least this share of the C6 gain
C6_BASELINES: tuple[str, ...] = (HARD, KD_ST, KD_ST_SOFT)
C7_STUDENTS: tuple[str, ...] = tuple(student_label(k) for k in C7_KINDS)
C8_STUDENTS: tuple[str, ...] = tuple(student_label(k) for k in C8_KINDS)

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


def _as_interval(value: object, name: str) -> Interval:
    if isinstance(value, Estimate):
        return value.interval
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


def outcome(
    verdict: str,
    primary: Interval | Estimate | None,
    threshold: float,
    *,
    n_seeds: int,
    n_images: int,
    checks: Mapping[str, dict] | None = None,
) -> dict:
    """A decided claim: its verdict, the primary statistic with its interval, the threshold, the design's size,
    and the comparisons it was decided on (``checks``: name -> {estimate, ci, verdict})."""
    check_choice("verdict", verdict, VERDICTS)
    estimate, ci = (None, None)
    if primary is not None:
        e, lo, hi = _as_interval(primary, "primary")
        estimate, ci = e, [lo, hi]
    return {
        "verdict": verdict,
        "holds": {"reproduced": True, "not reproduced": False}.get(verdict),
        "estimate": estimate,
        "ci": ci,
        "threshold": threshold,
        "n_seeds": n_seeds,
        "n_images": n_images,
        "checks": dict(checks or {}),
    }


def _check(interval: Interval | Estimate, threshold: float, side: Side) -> dict:
    e, lo, hi = _as_interval(interval, "interval")
    return {"estimate": e, "ci": [lo, hi], "verdict": side_verdict(lo, hi, threshold, side)}


# ---------------------------------------------------------------------------------------------------------------
# decisions, one per claim


def decide_lower(comparisons: Mapping[str, Interval], *, n_seeds: int, n_images: int) -> dict:
    """C1, C2: every paired difference AT - ST (name -> interval) lies below 0; the first is the row's estimate."""
    if not comparisons:
        fail("comparisons", "at least one AT - ST difference", comparisons)
    checks = {name: _check(interval, 0.0, "below") for name, interval in comparisons.items()}
    primary = next(iter(comparisons.values()))
    return outcome(
        conjunction([c["verdict"] for c in checks.values()]),
        primary,
        0.0,
        n_seeds=n_seeds,
        n_images=n_images,
        checks=checks,
    )


def decide_c3(max_error: float, slopes: Mapping[str, Interval], *, n_images: int) -> dict:
    """C3: the closed form is exact (PGD within `C3_TOLERANCE`), and the gap's shrinkage grows with the
    proposition's penalty: every least-squares slope of shrinkage on penalty (name -> interval) lies above 0.
    The first slope is the row's estimate. An inexact closed form is not reproduced whatever the slopes."""
    if not slopes:
        fail("slopes", "at least one slope of shrinkage on penalty", slopes)
    checks = {
        "closed form": {
            "estimate": max_error,
            "ci": None,
            "verdict": "reproduced" if max_error < C3_TOLERANCE else "not reproduced",
        }
    }
    checks |= {name: _check(interval, 0.0, "above") for name, interval in slopes.items()}
    return outcome(
        conjunction([c["verdict"] for c in checks.values()]),
        next(iter(slopes.values())),
        0.0,
        n_seeds=1,
        n_images=n_images,
        checks=checks,
    )


def decide_c4(distance: Interval, *, n_images: int, checks: Mapping[str, dict] | None = None) -> dict:
    """C4: the smallest distance (baseline's Spearman - Spearman(ST, AT)) is at least `C4_MIN_DISTANCE`."""
    e, lo, hi = _as_interval(distance, "distance")
    return outcome(
        side_verdict(lo, hi, C4_MIN_DISTANCE, "at least"),
        (e, lo, hi),
        C4_MIN_DISTANCE,
        n_seeds=1,
        n_images=n_images,
        checks=checks,
    )


def decide_c5(distance: Interval, *, n_images: int, checks: Mapping[str, dict] | None = None) -> dict:
    """C5: the smallest distance (baseline's Jaccard - Jaccard(ST, AT)) is at least `C5_MIN_DISTANCE`."""
    e, lo, hi = _as_interval(distance, "distance")
    return outcome(
        side_verdict(lo, hi, C5_MIN_DISTANCE, "at least"),
        (e, lo, hi),
        C5_MIN_DISTANCE,
        n_seeds=1,
        n_images=n_images,
        checks=checks,
    )


# C6-C8 are statistics of the students' robust accuracies, mean over seeds and images.


def _require(means: Mapping[str, Any], names: Sequence[str]) -> None:
    missing = [n for n in names if n not in means]
    if missing:
        fail(
            "outcomes",
            "a robust accuracy for every student the claim reads",
            sorted(means),
            shown=f"missing {missing}",
            hint="evaluate the whole line-up first",
        )


def gain(means: Mapping[str, Any], *, reference: str = KD_AT) -> Any:
    """The C6 gain: ``reference`` (KD-AT) minus the best of `C6_BASELINES`; works on floats and (R,) arrays."""
    _require(means, (reference, *C6_BASELINES))
    return means[reference] - np.maximum.reduce([np.asarray(means[b], dtype=np.float64) for b in C6_BASELINES])


def removed_share(means: Mapping[str, Any], names: Sequence[str], *, reference: str = KD_AT) -> Any:
    """The smallest share of the gain that the students ``names`` remove: min over them of (reference - student) /
    gain (NaN where the gain is not positive)."""
    _require(means, names)
    g = np.asarray(gain(means, reference=reference), dtype=np.float64)
    shares = [(np.asarray(means[reference], dtype=np.float64) - np.asarray(means[n], dtype=np.float64)) for n in names]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(g > 0, np.minimum.reduce(shares) / np.where(g > 0, g, 1.0), np.nan)
    return out


def distillation_statistics(
    outcomes: Mapping[str, Any], *, label_corrected: bool = False, n_resamples: int = 2000, seed: int = 0
) -> dict[str, Estimate]:
    """The C6 gain and the C7 and C8 shares with two-level bootstrap intervals, from per-student robust outcomes
    ``{name: (seeds, images)}``. With ``label_corrected`` the same statistics of the label-corrected AT teacher's
    students (the control), against the same baselines."""
    boot = dict(n_resamples=n_resamples, seed=seed)
    reference = student_label("kd", label_corrected=label_corrected)
    out = {"gain": seed_image_bootstrap(outcomes, lambda m: gain(m, reference=reference), **boot)}
    for claim, kinds in (("C7", C7_KINDS), ("C8", C8_KINDS)):
        names = tuple(student_label(k, label_corrected=label_corrected) for k in kinds)
        out[claim] = seed_image_bootstrap(
            outcomes, lambda m, names=names: removed_share(m, names, reference=reference), **boot
        )
    return out


def decide_c6(gain_estimate: Estimate, *, n_seeds: int, n_images: int) -> dict:
    """C6: the gain (KD-AT minus the best baseline, mean robust accuracy) is at least `C6_MARGIN`."""
    e, lo, hi = _as_interval(gain_estimate, "gain")
    return outcome(
        side_verdict(lo, hi, C6_MARGIN, "at least"), (e, lo, hi), C6_MARGIN, n_seeds=n_seeds, n_images=n_images
    )


def decide_removal(gain_estimate: Estimate, share: Estimate, *, n_seeds: int, n_images: int) -> dict:
    """C7, C8: not testable unless the C6 gain's interval lies above 0 (a gain to remove); then the smallest share
    of it that the claim's students remove is at least `REMOVED_SHARE`."""
    _, g_lo, _ = _as_interval(gain_estimate, "gain")
    checks = {"a gain to remove": _check(gain_estimate, 0.0, "above")}
    if not g_lo > 0:
        return outcome(
            "not testable",
            share if not math.isnan(share[1]) else None,
            REMOVED_SHARE,
            n_seeds=n_seeds,
            n_images=n_images,
            checks=checks,
        )
    e, lo, hi = _as_interval(share, "share")
    return outcome(
        side_verdict(lo, hi, REMOVED_SHARE, "at least"),
        (e, lo, hi),
        REMOVED_SHARE,
        n_seeds=n_seeds,
        n_images=n_images,
        checks=checks,
    )


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


_CHAPTER_2, _CHAPTER_3, _CHAPTER_4 = "02_logit_distributions", "03_sample_confidence", "04_distillation"
_BOTH_PAIRS = (
    "for both seed pairs (ST/AT, ST'/AT'), on all images and on the images both models classify "
    "correctly, and for the budget-matched pair of the eps sweep"
)

CLAIMS: dict[str, Claim] = {
    c.id: c
    for c in (
        Claim(
            "C1",
            "AT models have lower max logits than ST models",
            "AT models have lower max logits than ST models, on average",
            f"the paired difference of mean max logit AT - ST has its 95% interval below 0 {_BOTH_PAIRS}",
            _CHAPTER_2,
            decide_lower,
            0.0,
            "mean max logit, AT - ST (logit units)",
        ),
        Claim(
            "C2",
            "AT models have smaller logit gaps than ST models",
            "AT models have smaller logit gaps than ST models, on average",
            f"the paired difference of mean logit gap AT - ST has its 95% interval below 0 {_BOTH_PAIRS}",
            _CHAPTER_2,
            decide_lower,
            0.0,
            "mean logit gap, AT - ST (logit units)",
        ),
        Claim(
            "C3",
            "theory explains the smaller max logits and gaps",
            "the smaller gaps are consistent with our proposition (worst-case margin = margin - eps * dual norm of "
            "w_y - w_j)",
            f"PGD on the linear models reaches the closed form within {C3_TOLERANCE:g}, and across the eps sweep the "
            "slope of the gap's shrinkage on the proposition's penalty has its 95% interval above 0, for the networks "
            "and for the linear models",
            _CHAPTER_2,
            decide_c3,
            0.0,
            "slope of gap shrinkage on the penalty, networks",
        ),
        Claim(
            "C4",
            "AT and ST models differ on which samples get high or low confidence",
            "AT and ST models differ significantly on which samples get high or low confidence",
            f"the smaller distance (seed baseline's Spearman - Spearman(ST, AT)) over ST vs ST' and AT vs AT' has "
            f"its 95% interval at or above {C4_MIN_DISTANCE}",
            _CHAPTER_3,
            decide_c4,
            C4_MIN_DISTANCE,
            "Spearman distance to the closer seed baseline",
        ),
        Claim(
            "C5",
            "the samples with the largest confidence difference differ visibly",
            "the samples with the largest confidence difference between AT and ST differ visibly",
            f"the smaller distance (seed baseline's overlap - overlap(ST, AT)) of the most-confident "
            f"{100 * C5_FRACTION:.0f}% has its 95% interval at or above {C5_MIN_DISTANCE}",
            _CHAPTER_3,
            decide_c5,
            C5_MIN_DISTANCE,
            "Jaccard distance to the closer seed baseline",
        ),
        Claim(
            "C6",
            "distilling an AT teacher on clean inputs gives the student robustness",
            "Distilling an AT teacher on clean inputs only gives the student some robustness.",
            "the gain, KD-AT minus the best of hard labels, KD-ST and KD-ST soft (robust accuracy, mean over seeds), "
            f"has its 95% interval at or above {100 * C6_MARGIN:.0f} points",
            _CHAPTER_4,
            decide_c6,
            C6_MARGIN,
            "robust-accuracy gain of KD-AT over the best baseline",
        ),
        Claim(
            "C7",
            "information about incorrect classes is essential",
            "Information about incorrect classes is essential: removing what the AT teacher says about them, while "
            "keeping its confidence (shuffled, spread, ST order), removes the robustness the student inherits.",
            "with a C6 gain (interval above 0), the smallest share of it that the shuffled, spread and ST-order "
            f"students remove has its 95% interval at or above {REMOVED_SHARE}",
            _CHAPTER_4,
            decide_removal,
            REMOVED_SHARE,
            "smallest share of the gain removed",
        ),
        Claim(
            "C8",
            "sample-wise confidences matter",
            "Sample-wise confidences matter: flattening the AT teacher's confidence to its data-set average, or label "
            "smoothing at that average, removes the robustness.",
            "with a C6 gain (interval above 0), the smaller share of it that the flattened and label-smoothing "
            f"students remove has its 95% interval at or above {REMOVED_SHARE}",
            _CHAPTER_4,
            decide_removal,
            REMOVED_SHARE,
            "smallest share of the gain removed",
        ),
    )
}
CLAIM_IDS: tuple[str, ...] = tuple(CLAIMS)
CHAPTERS: dict[str, tuple[str, ...]] = {}
for _claim in CLAIMS.values():
    CHAPTERS.setdefault(_claim.chapter, ())
    CHAPTERS[_claim.chapter] += (_claim.id,)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Estimate):
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


def record(id: str, decided: dict, *, measured: dict) -> dict:
    """The record of claim ``id``: its registry wording, the decided `outcome` and what was measured."""
    check_choice("id", id, CLAIM_IDS)
    if not (isinstance(decided, dict) and decided.get("verdict") in VERDICTS):
        fail("decided", "an outcome of the claims registry (a dict with a verdict)", decided)
    claim = CLAIMS[id]
    keys = ("verdict", "estimate", "ci", "threshold", "n_seeds", "n_images", "holds", "checks")
    return {
        "id": id,
        "claim": claim.claim,
        "criterion": claim.criterion,
        "statistic": claim.statistic,
        **{k: _jsonable(decided[k]) for k in keys},
        "measured": _jsonable(measured),
    }


# ---------------------------------------------------------------------------------------------------------------
# records on disk

from ..paths import resolve_path  # noqa: E402 - kept with the code of this section, which alone reads paths

BUILD_ENV = "ADVLOGITS_EXECUTED_DIR"  # set by the build (the Makefile, `advlogits chapter`) to its folder
HAND_RUNS = "hand-runs"  # the folder under <repo>/_build/ of the chapters run by hand


def is_build() -> bool:
    """Whether this run is the build's (``$ADVLOGITS_EXECUTED_DIR`` is set), not a chapter run by hand."""
    return bool(os.environ.get(BUILD_ENV))


def executed_dir(profile: str) -> Path:
    """Where this run's claims and scorecard of ``profile`` go.

    The build says where: the Makefile and ``advlogits chapter`` set ``$ADVLOGITS_EXECUTED_DIR`` to the build's
    folder, ``<repo>/_build/executed/<profile>``, whose scorecard the book shows. Without it the chapter runs by
    hand (papermill with other parameters, or in Jupyter) and writes into ``<repo>/_build/hand-runs/<profile>``,
    so it never overwrites the build's claims. The repository is found from the working directory (chapters run
    from ``chapters/``, whose parent holds ``_toc.yml``).

    Examples::

        >>> claims.executed_dir("cpu")  # in chapters/, run by hand
        PosixPath('/path/to/advlogits/_build/hand-runs/cpu')
    """
    if is_build():
        return resolve_path(os.environ[BUILD_ENV])  # one resolution of every path setting (`advlogits.paths`)
    here = Path.cwd()
    root = next((p for p in (here, *here.parents) if (p / "_toc.yml").exists()), here)
    return root / "_build" / HAND_RUNS / profile


def claims_dir(profile: str) -> Path:
    """The folder of the chapters' claim files of ``profile`` in this run (see `executed_dir`)."""
    return executed_dir(profile) / "claims"


def _say_hand_run(profile: str, written: str) -> None:
    """One line on where a chapter run by hand wrote; a build's page shows none."""
    if not is_build():
        print(f"hand run: {written} (the build's claims, in _build/executed/{profile}/, are untouched)")


IGNORED_PARAMETERS = ("device",)  # where a chapter ran changes no claim: chapters run on any device may be gathered


def _name(profile: Any) -> str:
    """The profile's name, given a name or a resolved profile."""
    return profile if isinstance(profile, str) else profile.name


def run_parameters(profile: Any) -> dict | None:
    """The parameters a chapter ran with (every field of its resolved profile, in JSON form); None when only the
    profile's name is known."""
    if isinstance(profile, str):
        return None
    import dataclasses

    return json.loads(json.dumps(dataclasses.asdict(profile)))


def write_claims(profile: Any, chapter: str, records: list[dict]) -> Path:
    """Write a chapter's claim records atomically to ``claims/<chapter>.json`` of `executed_dir`; returns the path.

    ``profile`` is the chapter's resolved profile (or its name): given the profile, every record holds the
    parameters the chapter ran with under ``"parameters"``, so that `gather` can refuse claims of different runs."""
    name = _name(profile)
    path = claims_dir(name) / f"{chapter}.json"
    parameters = run_parameters(profile)
    extra = {} if parameters is None else {"parameters": parameters}
    payload = [{**r, "chapter": chapter, **extra} for r in records]
    atomic_write_bytes(json.dumps(payload, indent=1).encode(), path)
    _say_hand_run(name, f"this chapter's claims are in {path.parent}/")
    return path


def _differences(a: dict, b: dict) -> list[str]:
    """The parameters (but `IGNORED_PARAMETERS`) whose values differ between two runs."""
    return sorted(k for k in set(a) | set(b) if k not in IGNORED_PARAMETERS and a.get(k) != b.get(k))


def gather(profile: Any) -> list[dict]:
    """Every chapter's claim records of ``profile``, sorted by claim id (then chapter).

    ValueError naming the chapters and the parameters when chapters ran with different parameters (a chapter run
    with another eps beside the others): a scorecard of one run only."""
    records, runs = [], {}
    for path in sorted(claims_dir(_name(profile)).glob("*.json")):
        chapter_records = json.loads(path.read_text())
        records.extend(chapter_records)
        recorded = [r["parameters"] for r in chapter_records if r.get("parameters") is not None]
        if recorded:
            runs[path.stem] = recorded[0]
    if runs:
        first, reference = next(iter(runs.items()))
        for chapter, parameters in runs.items():
            differ = _differences(reference, parameters)
            if differ:
                raise ValueError(
                    f"claims must come from chapters run with the same parameters (got {first} and {chapter}, "
                    f"which differ in {', '.join(differ)}); run {chapter} again with the parameters of the others, "
                    f"or remove {claims_dir(_name(profile)) / (chapter + '.json')}"
                )
    return sorted(records, key=lambda r: (r["id"], r.get("chapter", "")))


def write_scorecard(profile: Any) -> Path:
    """Gather every claim record of ``profile`` in `claims_dir` into ``scorecard.json`` beside it (atomically);
    returns the path."""
    name = _name(profile)
    path = executed_dir(name) / "scorecard.json"
    atomic_write_bytes(json.dumps(gather(profile), indent=1).encode(), path)
    _say_hand_run(name, f"the scorecard of the claims in {claims_dir(name)}/ is {path}")
    return path
