"""What claims C6 to C8 compare: statistics of the students' per-seed, per-image robust outcomes, (S, N) arrays
with seeds paired, one teacher group at a time or every group merged into one family per claim (docs/protocol.md,
second amendment of 2026-12-04). The claims registry (`advlogits.chapters.claims`) decides on them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..checks import check_choice, fail
from ..inference import Tested, fieller_ratio, seed_image_interval
from ..pipeline.lineup import C7_KINDS, C8_KINDS, HARD, KD_AT, KD_ST, KD_ST_SOFT, PERMUTED, student_label

C6_MARGIN = 0.10  # C6: KD-AT beats the best baseline by this much robust accuracy (10 points)
REMOVED_SHARE = 0.5  # C7, C8: each manipulated student removes at least this share of the gain over the best baseline
C6_BASELINES: tuple[str, ...] = (HARD, KD_ST, KD_ST_SOFT)

# C6-C8 are statistics of the students' per-seed, per-image robust outcomes: (S, N) arrays, seeds paired.


def _require(outcomes: Mapping[str, Any], names: Sequence[str]) -> None:
    missing = [n for n in names if n not in outcomes]
    if missing:
        fail(
            "outcomes",
            "a robust accuracy for every student the claim reads",
            sorted(outcomes),
            shown=f"missing {missing}",
            hint="evaluate the whole line-up first",
        )


def best_baseline(outcomes: Mapping[str, Any]) -> str:
    """The C6 baseline with the highest mean robust accuracy: the one the gain is measured against."""
    _require(outcomes, C6_BASELINES)
    return max(C6_BASELINES, key=lambda b: float(np.mean(outcomes[b])))


def _array(outcomes: Mapping[str, Any], name: str) -> np.ndarray:
    return np.asarray(outcomes[name], dtype=np.float64)


def gain_values(outcomes: Mapping[str, Any], *, reference: str = KD_AT) -> np.ndarray:
    """Per seed and image: ``reference`` (KD-AT) minus the best baseline, (S, N)."""
    _require(outcomes, (reference,))
    return _array(outcomes, reference) - _array(outcomes, best_baseline(outcomes))


def removal_contrast(outcomes: Mapping[str, Any], student: str, *, reference: str = KD_AT) -> np.ndarray:
    """Per seed and image: ``reference - student - REMOVED_SHARE * gain``, (S, N): its mean is >= 0 exactly when the
    student removes at least `REMOVED_SHARE` of a positive gain, and it is defined whatever the gain."""
    _require(outcomes, (reference, student))
    return (
        _array(outcomes, reference)
        - _array(outcomes, student)
        - REMOVED_SHARE * gain_values(outcomes, reference=reference)
    )


def removed_share(outcomes: Mapping[str, Any], student: str, *, reference: str = KD_AT) -> tuple[float, float, float]:
    """The share of the gain that ``student`` removes, ``(reference - student) / gain``, with its Fieller interval
    (unbounded when the gain is not clearly positive): reported beside the contrast, never decided on."""
    _require(outcomes, (reference, student))
    removed = _array(outcomes, reference) - _array(outcomes, student)
    return fieller_ratio(removed, gain_values(outcomes, reference=reference))


def c8_kinds(outcomes: Mapping[str, Any], *, label_corrected: bool = False) -> list[str]:
    """The C8 family's students present in ``outcomes``: flattened and label smoothing, and the permuted
    confidences where the design has them. On the label-corrected teacher, label smoothing is plain label smoothing
    of the true labels, a baseline, not a manipulation: its reading has flattened (and permuted) only."""
    kinds = [k for k in (*C8_KINDS, PERMUTED) if not (label_corrected and k == "label_smoothing")]
    return [student_label(k, label_corrected=label_corrected) for k in kinds]


def distillation_values(
    outcomes: Mapping[str, Any], *, label_corrected: bool = False
) -> dict[str, dict[str, tuple[np.ndarray, float]]]:
    """What C6 to C8 are decided on, as per-seed, per-image values (S, N) with the threshold each is held against:
    C6's comparisons (KD-AT minus each baseline, against `C6_MARGIN`), the gain over the best baseline (against 0:
    C7 and C8's precondition), and C7's and C8's contrasts (against 0). With ``label_corrected``, the same for the
    label-corrected AT teacher's students: its own KD student and its own gain over the same baselines."""
    reference = student_label("kd", label_corrected=label_corrected)
    _require(outcomes, (reference, *C6_BASELINES))
    kd = _array(outcomes, reference)
    out: dict[str, dict[str, tuple[np.ndarray, float]]] = {
        "C6": {f"{reference} - {b}": (kd - _array(outcomes, b), C6_MARGIN) for b in C6_BASELINES},
        "gain": {f"{reference} - {best_baseline(outcomes)}": (gain_values(outcomes, reference=reference), 0.0)},
    }
    families = {
        "C7": [student_label(k, label_corrected=label_corrected) for k in C7_KINDS],
        "C8": c8_kinds(outcomes, label_corrected=label_corrected),
    }
    for claim, names in families.items():
        out[claim] = {n: (removal_contrast(outcomes, n, reference=reference), 0.0) for n in names if n in outcomes}
    return out


def students_read(outcomes: Mapping[str, Any], claim: str, *, label_corrected: bool = False) -> list[str]:
    """The students whose outcomes a claim's comparisons read in one teacher group: the KD student and the C6
    baselines (C6, and the gain that C7 and C8 need), and the claim's manipulated students (C7, C8)."""
    check_choice("claim", claim, ("C6", "C7", "C8"))
    reference = student_label("kd", label_corrected=label_corrected)
    names = [reference, *C6_BASELINES]
    if claim == "C7":
        names += [student_label(k, label_corrected=label_corrected) for k in C7_KINDS]
    elif claim == "C8":
        names += c8_kinds(outcomes, label_corrected=label_corrected)
    return [n for n in names if n in outcomes]


def grouped_values(
    groups: Mapping[str, Mapping[str, Any]], *, label_corrected: bool = False
) -> dict[str, dict[str, tuple[np.ndarray, float]]]:
    """`distillation_values` of each teacher group (``groups``: teacher label -> its students' outcomes), merged into
    one family per claim: a teacher is a replication, so every comparison is decided within its group and the claim
    needs every comparison of every group (docs/protocol.md, second amendment of 2026-12-04). With several groups
    each comparison's name ends with its teacher's label, e.g. "KD-AT - hard labels (AT teacher (seed 1))"."""
    if not groups:
        fail("groups", "at least one teacher group of student outcomes", groups)
    merged: dict[str, dict[str, tuple[np.ndarray, float]]] = {}
    for label, outcomes in groups.items():
        suffix = f" ({label})" if len(groups) > 1 else ""
        for part, values in distillation_values(outcomes, label_corrected=label_corrected).items():
            merged.setdefault(part, {}).update({f"{name}{suffix}": v for name, v in values.items()})
    return merged


def tested(values: Mapping[str, Mapping[str, tuple[np.ndarray, float]]]) -> dict[str, dict[str, Tested]]:
    """Each comparison of `distillation_values` (or `grouped_values`) with its seed-and-image interval and p-values."""
    return {
        part: {name: seed_image_interval(v, threshold=threshold) for name, (v, threshold) in comparisons.items()}
        for part, comparisons in values.items()
    }


def distillation_tests(outcomes: Mapping[str, Any], *, label_corrected: bool = False) -> dict[str, dict[str, Tested]]:
    """`distillation_values` of one teacher's students, each with its seed-and-image interval."""
    return tested(distillation_values(outcomes, label_corrected=label_corrected))
