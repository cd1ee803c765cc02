"""Chapter 4's C7 and C8 contrasts, student by student: every manipulated student of each teacher group (and of its
label-corrected reading) against its own KD student and its own gain, with the share of the gain it removes."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..inference import Tested, seed_image_interval
from ..pipeline.lineup import CONFIDENCE_LEVELS, PERMUTED, student_label
from . import comparisons, numbers
from .distillation import fmt_points, grouped_name

MANIPULATIONS = ("shuffle", "spread", "reorder", "mean", "flatten", "label_smoothing", PERMUTED)


def manipulated(outcomes: Mapping[str, np.ndarray], *, label_corrected: bool) -> list[str]:
    """The manipulated students of one teacher (or of its label-corrected reading) present in ``outcomes``: those of
    `MANIPULATIONS`, then the constant confidences of `CONFIDENCE_LEVELS`. Label smoothing of the label-corrected
    teacher is plain label smoothing of the true labels, a baseline, not a manipulation (`comparisons.c8_kinds`)."""
    kinds = [k for k in MANIPULATIONS if not (label_corrected and k == "label_smoothing")]
    names = [student_label(k, label_corrected=label_corrected) for k in kinds]
    names += [student_label("flatten", label_corrected=label_corrected, confidence=c) for c in CONFIDENCE_LEVELS]
    return [n for n in names if n in outcomes]


def removal_rows(groups: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, dict]:
    """Every manipulated student of each teacher group, of the AT teacher and of its label-corrected reading, each
    against its own KD student: that KD student, its gain over the best baseline, the student's contrast ``KD -
    student - half the gain`` (seed-and-image interval; >= 0: it removes at least half) and its share of the gain
    removed (Fieller interval). Named as the claims name comparisons (`grouped_name`); ``groups``:
    `robust_outcomes_by_teacher`."""
    rows = {}
    for label, outcomes in groups.items():
        for corrected in (False, True):
            reference = student_label("kd", label_corrected=corrected)
            if reference not in outcomes:
                continue
            gain = seed_image_interval(comparisons.gain_values(outcomes, reference=reference), threshold=0.0)
            for name in manipulated(outcomes, label_corrected=corrected):
                rows[grouped_name(name, label, groups)] = {
                    "teacher": label,
                    "student": name,
                    "label_corrected": corrected,
                    "reference": reference,
                    "gain": gain,
                    "contrast": seed_image_interval(comparisons.removal_contrast(outcomes, name, reference=reference)),
                    "share": comparisons.removed_share(outcomes, name, reference=reference),
                }
    return rows


def removal_table(rows: Mapping[str, Mapping]) -> pd.DataFrame:
    """`removal_rows` as a table, in points and percent."""
    return pd.DataFrame(
        {
            name: {
                "teacher's KD student": row["reference"],
                "its gain (points)": fmt_points(row["gain"]),
                "KD - student - half the gain (points)": fmt_points(row["contrast"]),
                "share of the gain removed": _fmt_share(row["share"], row["gain"]),
            }
            for name, row in rows.items()
        }
    ).T


def _fmt_share(share: tuple[float, float, float], gain: Tested) -> str:
    ratio, low, high = share
    if math.isnan(ratio) or gain.estimate <= 0:
        return "n/a (no gain)"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{100 * ratio:.1f}% [unbounded: the gain is not clearly above 0]"
    return numbers.estimate(ratio, (low, high), digits=1, scale=100.0, unit="%")
