"""Chapter 4's line-up in words: what each student learns from, and the teacher groups with their student seeds, for
the reader (never code identifiers)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..pipeline.lineup import PERMUTED, Student
from ..train import TrainConfig

TARGET_WORDS: dict[str, str] = {
    "logits": "logits",
    "kd": "logits",
    "soften": "logits, softened to the AT teacher's mean confidence",
    "shuffle": "logits, each image's non-max logits permuted at random",
    "spread": "confidence on its prediction, the rest spread evenly over the other classes",
    "reorder": "logits, the incorrect classes ranked as the ST teacher ranks them",
    "mean": "logits, the non-max logits replaced by their mean",
    "flatten": "logits, rescaled to its mean confidence on every image",
    "label_smoothing": "mean confidence on its prediction, the rest spread evenly (label smoothing)",
    PERMUTED: "logits, each image given another image's confidence",
    "argmax": "predictions, as hard labels",
}


def learns_from(config: TrainConfig) -> str:
    """What a student is trained to match, in words: "the true labels", "the AT teacher's logits, ...", "the
    label-corrected AT teacher's ...", "... rescaled to confidence 0.95 on every image"."""
    if config.method != "distilled":
        return "the true labels (cross-entropy)"
    teacher = {"standard": "ST", "adversarial": "AT"}[config.teacher.method]
    owner = f"the {'label-corrected ' if config.label_corrected else ''}{teacher} teacher's"
    what = TARGET_WORDS.get(config.targets, config.targets)
    if config.targets == "flatten" and getattr(config, "confidence", None) is not None:
        what = f"logits, rescaled to confidence {config.confidence:g} on every image"
    return f"{owner} {what}"


def lineup_table(students: Sequence[Student]) -> pd.DataFrame:
    """The line-up as a table in words, one row per student: the part it plays, the claim that reads it and what it
    learns from (every seed of every teacher group trains the same students)."""
    roles = {
        "baseline": "baseline (C6)",
        "claim": "claim",
        "mixed": "reported, in no criterion",
        "control": "control (ours)",
    }
    rows: dict[str, dict] = {}
    for s in students:
        if s.role in ("teacher", "sweep") or s.name in rows:
            continue
        rows[s.name] = {
            "part": roles.get(s.role, s.role) if s.role != "claim" else f"{s.claim}",
            "learns from": learns_from(s.config),
        }
    return pd.DataFrame(rows).T.rename_axis("student")


def roster_sentence(students: Sequence[Student]) -> str:
    """The teacher groups and their student seeds in one sentence: "2 AT teachers (seeds 0 and 1), each with 8
    student seeds (300-307 and 310-317)"."""
    groups: dict[int, list[int]] = {}
    for s in students:
        if s.role not in ("teacher", "sweep"):
            seeds = groups.setdefault(s.teacher_seed, [])
            if s.seed not in seeds:
                seeds.append(s.seed)

    def span(seeds: list[int]) -> str:
        if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
            return f"{seeds[0]}-{seeds[-1]}"
        return ", ".join(map(str, seeds))

    teachers = " and ".join(map(str, groups))
    per = {len(v) for v in groups.values()}
    n = f"{per.pop()}" if len(per) == 1 else "several"
    if len(groups) == 1:
        return f"one AT teacher (seed {teachers}) with {n} student seeds ({span(next(iter(groups.values())))})"
    spans = " and ".join(span(v) for v in groups.values())
    return f"{len(groups)} AT teachers (seeds {teachers}), each with {n} student seeds ({spans})"
