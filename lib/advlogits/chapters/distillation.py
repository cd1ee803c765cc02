"""Chapter 4, distillation on clean images (claims C6, C7, C8 and our controls): the students' robust accuracy over
seeds with seed-and-image intervals (`advlogits.inference`), the claims' records, the 2x2 of C7 and C8, the targets'
confidence and entropy, each student's fidelity to its teacher, the design's power, and the chapter's figures.

The students themselves (names, roles, configs, seeds) are `advlogits.pipeline.lineup`'s; the statistics and
criteria are the claims registry's (`advlogits.chapters.claims`). Accuracies are fractions in [0, 1] throughout;
tables and figures show percent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from torch import Tensor

from .. import inference, pipeline
from ..checks import fail
from ..data import load_dataset
from ..inference import Tested, seed_image_interval
from ..logits import confidence
from ..pipeline.lineup import ARGMAX, CONFIDENCE_LEVELS, PERMUTED, TWO_BY_TWO, Student, student_label
from ..profiles import Profile
from ..store import Store
from . import claims, figures, numbers, style, wording

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


def learns_from(config) -> str:
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


def robust_outcomes(students: Sequence[Student], results: Mapping[tuple[str, int], Mapping]) -> dict[str, np.ndarray]:
    """Per student name with every student seed: its per-image worst-case outcomes, an (S, N) array (seeds in the
    line-up's order); ``results`` maps (name, seed) to `advlogits.pipeline.evaluate` results."""
    seeds: dict[str, list[int]] = {}
    for s in students:
        if s.role not in ("teacher", "sweep"):
            seeds.setdefault(s.name, []).append(s.seed)
    missing = [key for name, ss in seeds.items() for key in ((name, s) for s in ss) if key not in results]
    if missing:
        fail("results", "an evaluation of every student and seed", len(results), shown=f"missing {missing[:3]}")
    return {
        name: np.array([results[(name, s)]["robust_correct"] for s in ss], dtype=np.float64)
        for name, ss in seeds.items()
    }


def teacher_labels(students: Sequence[Student]) -> dict[int, str]:
    """Each teacher group's label by its seed, the main seed's first: its AT teacher's row name ("AT teacher", "AT
    teacher (seed 1)")."""
    labels = {s.teacher_seed: s.name for s in students if s.role == "teacher" and s.name.startswith("AT teacher")}
    for s in students:
        if s.role not in ("teacher", "sweep"):
            labels.setdefault(s.teacher_seed, f"AT teacher (seed {s.teacher_seed})")
    return labels


def robust_outcomes_by_teacher(
    students: Sequence[Student], results: Mapping[tuple[str, int], Mapping]
) -> dict[str, dict[str, np.ndarray]]:
    """`robust_outcomes` of each teacher group, labelled by `teacher_labels`: students are nested within teachers,
    and each group is decided alone."""
    labels = teacher_labels(students)
    members: dict[int, list[Student]] = {}
    for s in students:
        if s.role not in ("teacher", "sweep"):
            members.setdefault(s.teacher_seed, []).append(s)
    return {labels[t]: robust_outcomes(group, results) for t, group in members.items()}


def grouped_name(name: str, label: str, groups: Mapping[str, object]) -> str:
    """A student's name within its teacher group, as the claims name comparisons: ``name`` alone with one group,
    "name (label)" with several."""
    return f"{name} ({label})" if len(groups) > 1 else name


def per_teacher(groups: Mapping[str, Mapping[str, np.ndarray]], text: Callable[[Mapping[str, np.ndarray]], str]) -> str:
    """``text`` of each teacher group's outcomes, for the prose: the text alone with one group, "a (AT teacher) and
    b (AT teacher (seed 1))" with several."""
    said = {label: text(outcomes) for label, outcomes in groups.items()}
    if len(said) == 1:
        return next(iter(said.values()))
    return numbers.join_words([f"{t} ({label})" for label, t in said.items()])


def control_shares(groups: Mapping[str, Mapping[str, np.ndarray]]) -> tuple[dict[str, float], dict[str, float]] | None:
    """Per teacher group, the share of the KD-AT student's gain over the best baseline that the AT-argmax student
    keeps, and the share the label-corrected teacher's KD student keeps; None where a group has no gain (or lacks
    the controls)."""
    kd_corrected = student_label("kd", label_corrected=True)
    argmax, corrected = {}, {}
    for label, outcomes in groups.items():
        if ARGMAX not in outcomes or kd_corrected not in outcomes:
            return None
        best = float(outcomes[claims.best_baseline(outcomes)].mean())
        gain = float(outcomes[claims.KD_AT].mean()) - best
        if gain <= 0:
            return None
        argmax[label] = (float(outcomes[ARGMAX].mean()) - best) / gain
        corrected[label] = (float(outcomes[kd_corrected].mean()) - best) / gain
    return argmax, corrected


def masking_table(masking: Mapping[str, Mapping]) -> pd.DataFrame:
    """The gradient-masking checks, one row per checked student: robust accuracy (%) against the radius, the images
    the white-box worst case left standing that Square and the transfer attack break, and whether it is flagged."""
    return pd.DataFrame(
        {
            name: {
                **{f"eps {r:.3g} (%)": f"{100 * a:.1f}" for r, a in zip(m["radii"], m["robust_at_radius"])},
                "Square breaks": m["square_breaks"],
                "transfer breaks": m["transfer_breaks"],
                "flagged": "yes" if m["masked"] else "no",
            }
            for name, m in masking.items()
        }
    ).T


def masking_by_teacher(
    students: Sequence[Student], masking: Mapping[tuple[str, int], Mapping]
) -> dict[str, dict[str, Mapping]]:
    """The gradient-masking results (``masking``: (name, seed) -> `pipeline.masking_checks`) of each teacher group,
    by student name, labelled as `robust_outcomes_by_teacher` labels the groups."""
    labels = teacher_labels(students)
    out: dict[str, dict[str, Mapping]] = {label: {} for label in labels.values() if label}
    for s in students:
        if (s.name, s.seed) in masking and s.role not in ("teacher", "sweep"):
            out.setdefault(labels[s.teacher_seed], {})[s.name] = masking[(s.name, s.seed)]
    return out


def _masking_of_claim(
    groups: Mapping[str, Mapping[str, np.ndarray]],
    masking: Mapping[str, Mapping[str, Mapping]],
    claim: str,
    *,
    label_corrected: bool,
) -> tuple[dict[str, dict], list[str]]:
    """The checks of the students one claim's reading reads (every group): a summary of each, and those flagged."""
    summary, flagged = {}, []
    for label, outcomes in groups.items():
        for name in claims.students_read(outcomes, claim, label_corrected=label_corrected):
            m = masking.get(label, {}).get(name)
            if m is None:
                continue
            key = grouped_name(name, label, groups)
            summary[key] = {
                "flagged": bool(m["masked"]),
                "square_breaks": int(m["square_breaks"]),
                "transfer_breaks": int(m["transfer_breaks"]),
                "robust_at_largest_radius": round(float(m["robust_at_radius"][-1]), 5),
            }
            if m["masked"]:
                flagged.append(key)
    return summary, flagged


def student_estimates(outcomes: Mapping[str, np.ndarray]) -> dict[str, Tested]:
    """Each student's robust accuracy, mean over seeds and images, with its seed-and-image interval."""
    return {name: seed_image_interval(o) for name, o in outcomes.items()}


def robust_table(
    students: Sequence[Student],
    results: Mapping[tuple[str, int], Mapping],
    groups: Mapping[str, Mapping[str, np.ndarray]],
) -> pd.DataFrame:
    """Every student of every teacher group (rows named as `grouped_name`): its robust accuracy (%, worst case) with
    the 95% seed-and-image interval, each seed's value, and PGD with the CE loss alone (mean over the seeds)."""
    labels = teacher_labels(students)
    pgd: dict[str, list[float]] = {}
    for s in students:
        if s.role not in ("teacher", "sweep"):
            key = grouped_name(s.name, labels[s.teacher_seed], groups)
            pgd.setdefault(key, []).append(results[(s.name, s.seed)]["pgd_acc_on_autoattack_subset"])
    rows = {}
    for label, outcomes in groups.items():
        for name, o in outcomes.items():
            key = grouped_name(name, label, groups)
            rows[key] = {
                "robust, worst case (%)": _fmt_points(seed_image_interval(o)),
                "per seed (%)": ", ".join(f"{100 * v:.1f}" for v in o.mean(axis=1)),
                "PGD-CE alone (%)": f"{100 * float(np.mean(pgd[key])):.1f}",
            }
    return pd.DataFrame(rows).T


def per_seed_table(
    students: Sequence[Student],
    results: Mapping[tuple[str, int], Mapping],
    fidelity_of: Mapping[tuple[str, int], Mapping[str, float]] | None = None,
) -> dict[str, dict[str, list[float]]]:
    """Per student and seed (in the line-up's order): clean accuracy on the evaluation subset, worst-case robust
    accuracy on the AutoAttack images and, where given, top-1 agreement with its teacher; fractions in [0, 1]."""
    table: dict[str, dict[str, list[float]]] = {}
    for s in students:
        if s.role in ("teacher", "sweep"):
            continue
        r = results[(s.name, s.seed)]
        row = table.setdefault(s.name, {"seeds": [], "clean": [], "robust": [], "agreement": []})
        row["seeds"].append(s.seed)
        row["clean"].append(round(float(np.mean(r["clean_correct"])), 5))
        row["robust"].append(round(float(np.mean(r["robust_correct"])), 5))
        if fidelity_of and (s.name, s.seed) in fidelity_of:
            row["agreement"].append(round(fidelity_of[(s.name, s.seed)]["top-1 agreement"], 5))
    return {name: {k: v for k, v in row.items() if v} for name, row in table.items()}


def _seed_means(values: np.ndarray) -> list[float]:
    return [round(float(v), 5) for v in np.asarray(values).mean(axis=1)]


def _has_corrected(groups: Mapping[str, Mapping[str, np.ndarray]]) -> bool:
    kd = student_label("kd", label_corrected=True)
    return all(kd in outcomes for outcomes in groups.values())


def comparison_values(groups: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, tuple[np.ndarray, float]]:
    """Every comparison of C6 to C8 (and of our label-corrected readings C7c and C8c) as per-seed, per-image values
    with its threshold, named "<comparison> (<claim>)"; ``groups`` maps each teacher's label to its students'
    outcomes (`robust_outcomes_by_teacher`)."""
    readings = {"": claims.grouped_values(groups)}
    if _has_corrected(groups):
        readings["c"] = claims.grouped_values(groups, label_corrected=True)
    out = {}
    for suffix, values in readings.items():
        for claim in ("C6", "C7", "C8"):
            if claim == "C6" and suffix:
                continue  # C6 is decided once, on the AT teacher's KD student
            out |= {f"{name} ({claim}{suffix})": v for name, v in values[claim].items()}
    return out


def power_table(groups: Mapping[str, Mapping[str, np.ndarray]]) -> pd.DataFrame:
    """For each comparison of C6 to C8 (and C7c, C8c): its estimate and threshold (points), the smallest difference
    this design detects (80% power at the 5% level) and how many seeds it would need to be decided at the effect
    seen."""
    rows = {}
    for name, (values, threshold) in comparison_values(groups).items():
        needed = inference.seeds_needed(values, threshold)
        rows[name] = {
            "estimate (points)": round(100 * float(values.mean()), 1),
            "threshold (points)": round(100 * threshold, 1),
            "detectable now (points)": round(100 * inference.minimal_detectable(values), 1),
            "seeds needed": "more than 100" if needed is None else str(needed),
        }
    return pd.DataFrame(rows).T


def _gain_of(groups: Mapping[str, Mapping], tests: Mapping[str, Tested]) -> Tested | dict[str, Tested]:
    """The precondition's gain interval(s): one Tested for one teacher, teacher label -> Tested for several."""
    gains = list(tests.values())
    return gains[0] if len(groups) == 1 else dict(zip(groups, gains))


def _removal_measured(
    groups: Mapping[str, Mapping[str, np.ndarray]], values: Mapping[str, tuple], *, label_corrected: bool
) -> dict:
    """Per comparison of a C7/C8 reading: its per-seed values, and the share of the gain removed (Fieller)."""
    reference = student_label("kd", label_corrected=label_corrected)
    shares = {}
    for label, outcomes in groups.items():
        suffix = f" ({label})" if len(groups) > 1 else ""
        for name in outcomes:
            if f"{name}{suffix}" in values:
                shares[f"{name}{suffix}"] = list(claims.removed_share(outcomes, name, reference=reference))
    return {"per_seed_values": {n: _seed_means(v) for n, (v, _) in values.items()}, "shares_fieller": shares}


def claim_records(
    outcomes: Mapping[str, np.ndarray],
    *,
    groups: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    per_seed: Mapping[str, dict] | None = None,
    images: Mapping | None = None,
    masking: Mapping[str, Mapping[str, Mapping]] | None = None,
) -> tuple[list[dict], dict[str, dict[str, Tested]]]:
    """The chapter's C6, C7, C8 records and our label-corrected readings C7c and C8c (decided by the registry), and
    the tests of the AT reading behind them.

    ``groups`` maps each teacher's label to its students' outcomes (default: ``outcomes``, one teacher); every
    comparison is decided within its group. Each record keeps what a reader needs to recompute its intervals: the
    per-seed value of every comparison, and (C6) ``per_seed``, every student's clean and robust accuracy and
    fidelity per seed, with ``images``, the evaluation images' seed and count. With ``masking`` (teacher label ->
    student -> gradient-masking checks, `masking_by_teacher`), each record keeps the checks of the students it reads
    and names those flagged."""
    groups = dict(groups) if groups else {"AT teacher": outcomes}
    first = next(iter(groups.values()))
    values = claims.grouped_values(groups)
    tests = claims.tested(values)
    n_seeds, n_images = next(iter(first.values())).shape
    best = claims.best_baseline(first)
    kd = first[claims.KD_AT]
    means = {name: float(o.mean()) for name, o in first.items()}
    gain_values = claims.gain_values(first)
    common = {
        "teachers": list(groups),
        "robust_pct": {name: round(100 * float(o.mean()), 2) for name, o in outcomes.items()},
        "best_baseline": best,
        "gain_points": _interval_points(next(iter(tests["gain"].values()))),
        "gain_per_seed": _seed_means(gain_values),
        "minimal_detectable_points": {
            "gain": round(100 * inference.minimal_detectable(gain_values), 2),
            "student vs student": round(100 * inference.minimal_detectable(kd - first[best]), 2),
        },
        "seeds_needed": {name: inference.seeds_needed(v, t) for name, (v, t) in comparison_values(groups).items()},
    }
    if ARGMAX in means and means[claims.KD_AT] > means[best]:  # how much of the gain the relabelling alone keeps
        common["argmax_share"] = round((means[ARGMAX] - means[best]) / (means[claims.KD_AT] - means[best]), 3)
    size = dict(n_seeds=n_seeds, n_images=n_images)
    c6_measured = {
        **common,
        "per_seed_values": {name: _seed_means(v) for name, (v, _) in values["C6"].items()},
        "students_per_seed": dict(per_seed or {}),
        "images": dict(images or {}),
    }
    masking = masking or {}
    checks, flagged = _masking_of_claim(groups, masking, "C6", label_corrected=False)
    c6_measured["masking"] = checks
    records = [claims.record("C6", claims.decide_c6(tests["C6"], **size), measured=c6_measured, flagged=flagged)]
    readings = [("", values, tests, False)]
    if _has_corrected(groups):
        corrected = claims.grouped_values(groups, label_corrected=True)
        readings.append(("c", corrected, claims.tested(corrected), True))
    for suffix, vals, tst, label_corrected in readings:
        gain = _gain_of(groups, tst["gain"])
        for claim in ("C7", "C8"):
            decided = claims.decide_removal(gain, tst[claim], **size)
            measured = {**common, **_removal_measured(groups, vals[claim], label_corrected=label_corrected)}
            if label_corrected:
                measured["gain_points"] = _interval_points(next(iter(tst["gain"].values())))
            measured["masking"], flagged = _masking_of_claim(groups, masking, claim, label_corrected=label_corrected)
            records.append(claims.record(f"{claim}{suffix}", decided, measured=measured, flagged=flagged))
    by_id = {r["id"]: r for r in records}
    for claim in ("C7", "C8"):  # what the two readings found together, for the chapter's answer and the scorecard
        by_id[claim]["measured"]["finding"] = wording.removal_finding(by_id, claim)
    return records, tests


def _interval_points(e: Tested) -> list[float]:
    return [round(100 * v, 2) for v in e.interval]


MANIPULATIONS = ("shuffle", "spread", "reorder", "mean", "flatten", "label_smoothing", PERMUTED)


def _manipulated(outcomes: Mapping[str, np.ndarray], *, label_corrected: bool) -> list[str]:
    """The manipulated students of one teacher (or of its label-corrected reading) present in ``outcomes``: those of
    `MANIPULATIONS`, then the constant confidences of `CONFIDENCE_LEVELS`. Label smoothing of the label-corrected
    teacher is plain label smoothing of the true labels, a baseline, not a manipulation (`claims.c8_kinds`)."""
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
            gain = seed_image_interval(claims.gain_values(outcomes, reference=reference), threshold=0.0)
            for name in _manipulated(outcomes, label_corrected=corrected):
                rows[grouped_name(name, label, groups)] = {
                    "teacher": label,
                    "student": name,
                    "label_corrected": corrected,
                    "reference": reference,
                    "gain": gain,
                    "contrast": seed_image_interval(claims.removal_contrast(outcomes, name, reference=reference)),
                    "share": claims.removed_share(outcomes, name, reference=reference),
                }
    return rows


def removal_table(rows: Mapping[str, Mapping]) -> pd.DataFrame:
    """`removal_rows` as a table, in points and percent."""
    return pd.DataFrame(
        {
            name: {
                "teacher's KD student": row["reference"],
                "its gain (points)": _fmt_points(row["gain"]),
                "KD - student - half the gain (points)": _fmt_points(row["contrast"]),
                "share of the gain removed": _fmt_share(row["share"], row["gain"]),
            }
            for name, row in rows.items()
        }
    ).T


def removal_figure(rows: Mapping[str, Mapping]) -> Figure:
    """`removal_rows`' contrasts (points), one panel per teacher group, rows shared: the AT teacher's students in
    vermillion, the label-corrected reading's in green; dashed line at 0 (the C7 and C8 threshold)."""
    panels: dict[str, dict[str, tuple[float, float, float]]] = {}
    colors = {}
    for row in rows.values():
        c = row["contrast"]
        panels.setdefault(row["teacher"], {})[row["student"]] = (100 * c.estimate, 100 * c.low, 100 * c.high)
        colors[row["student"]] = style.OKABE_ITO["green" if row["label_corrected"] else "vermillion"]
    return figures.interval_panels(panels, xlabel="KD - student - half the gain (points)", threshold=0.0, colors=colors)


def _fmt_points(e: Tested) -> str:
    return numbers.estimate(e.estimate, (e.low, e.high), digits=1, scale=100.0)


def _fmt_share(share: tuple[float, float, float], gain: Tested) -> str:
    ratio, low, high = share
    if math.isnan(ratio) or gain.estimate <= 0:
        return "n/a (no gain)"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{100 * ratio:.1f}% [unbounded: the gain is not clearly above 0]"
    return numbers.estimate(ratio, (low, high), digits=1, scale=100.0, unit="%")


def two_by_two(groups: Mapping[str, Mapping[str, np.ndarray]], *, label_corrected: bool = False) -> pd.DataFrame:
    """C7 and C8 as a 2x2 per teacher group: robust accuracy (%) of KD, spread, flattened and label smoothing, by
    whether the targets keep the teacher's per-image confidence (rows; with several groups, one pair of rows per
    group) and its information about the incorrect classes (columns)."""
    columns = ["class information kept", "class information removed"]
    rows: dict[str, dict[str, str]] = {}
    for label, outcomes in groups.items():
        for kind, (conf_kept, info_kept) in TWO_BY_TWO.items():
            name = student_label(kind, label_corrected=label_corrected)
            if name in outcomes:
                row = grouped_name("confidence kept" if conf_kept else "confidence removed", label, groups)
                column = columns[0] if info_kept else columns[1]
                rows.setdefault(row, {})[column] = f"{name}: {_fmt_points(seed_image_interval(outcomes[name]))}"
    return pd.DataFrame(rows, index=columns).T


def gain_interval(outcomes: Mapping[str, np.ndarray], *, label_corrected: bool = False) -> tuple[float, tuple]:
    """One teacher group's gain over the best baseline (of its KD student, or of the label-corrected reading's), as
    ``(estimate, (low, high))`` with its seed-and-image interval."""
    reference = student_label("kd", label_corrected=label_corrected)
    e = seed_image_interval(claims.gain_values(outcomes, reference=reference))
    return e.estimate, (e.low, e.high)


def target_statistics(targets: Mapping[str, Tensor]) -> pd.DataFrame:
    """Mean confidence and mean entropy (nats) of each target set's softmax, one row per target set."""
    rows = {}
    for name, z in targets.items():
        p = z.double().softmax(dim=1)
        entropy = -(p * p.clamp_min(1e-300).log()).sum(dim=1)
        rows[name] = {"mean confidence": p.amax(dim=1).mean().item(), "mean entropy (nats)": entropy.mean().item()}
    return pd.DataFrame(rows).T


def fidelity(student: Tensor, teacher: Tensor) -> dict[str, float]:
    """Top-1 agreement with the teacher and the mean KL divergence KL(teacher || student) in nats, from logits of
    the same images."""
    log_p_t, log_p_s = teacher.double().log_softmax(1), student.double().log_softmax(1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)
    return {
        "top-1 agreement": (student.argmax(1) == teacher.argmax(1)).double().mean().item(),
        "KL to the teacher (nats)": kl.mean().item(),
    }


def teacher_facts(profile: Profile, *, store: Store | None = None) -> dict[str, dict]:
    """ST and AT teachers on the first student seed's training images: accuracy and mean confidence.

    The AT teacher's mistakes there are the relabelling a student inherits; its mean confidence is the target of
    the flattened and label-smoothing students and of the softened ST teacher.
    """
    seed = profile.student_seeds[0]
    _, y = load_dataset(profile.dataset, "train", n=profile.student_n_train, seed=seed)
    out = {}
    for name, config in (("ST teacher", profile.standard()), ("AT teacher", profile.adversarial())):
        z = pipeline.train_logits(
            config,
            dataset=profile.dataset,
            n_train=profile.student_n_train,
            seed=seed,
            device=profile.device,
            store=store,
        )
        out[name] = {
            "accuracy": (z.argmax(1) == y).float().mean().item(),
            "mean confidence": confidence(z).mean().item(),
        }
    return out


# ---------------------------------------------------------------------------------------------------------
# Figure
# ---------------------------------------------------------------------------------------------------------


ROLE_COLORS = {
    "baseline": style.OKABE_ITO["blue"],
    "claim": style.OKABE_ITO["vermillion"],
    "mixed": style.OKABE_ITO["purple"],
    "control": style.OKABE_ITO["green"],
}


def _thresholds(outcomes: Mapping[str, np.ndarray]) -> dict[bool, float]:
    """The C7/C8 threshold of one teacher group, KD minus half its gain over the best baseline, for the AT teacher's
    students (False) and, where the group has them, the label-corrected reading's (True), held against its own KD
    student and its own gain."""
    out = {}
    for corrected in (False, True):
        reference = student_label("kd", label_corrected=corrected)
        if reference in outcomes:
            gain = float(claims.gain_values(outcomes, reference=reference).mean())
            out[corrected] = float(outcomes[reference].mean()) - claims.REMOVED_SHARE * gain
    return out


def robust_figure(groups: Mapping[str, Mapping[str, np.ndarray]], *, roles: Mapping[str, str]) -> Figure:
    """Dot-and-whisker, one panel per teacher group (``groups``: `robust_outcomes_by_teacher`), rows shared: each
    student's robust accuracy (%), one dot per seed and the mean with its 95% seed-and-image interval, coloured by
    role. Dotted line: the group's best C6 baseline; dashed ticks on each manipulated student's row: the threshold it
    is held against (KD minus half the gain: KD-AT's for the AT teacher's students, the label-corrected KD student's
    for the corrected reading's)."""
    names = list(dict.fromkeys(name for outcomes in groups.values() for name in outcomes))
    fig, axes = style.figure(1.3 + 0.3 * len(names), ncols=len(groups), sharey=True, sharex=True, squeeze=False)
    for ax, (label, outcomes) in zip(axes[0], groups.items()):
        thresholds = _thresholds(outcomes)
        manipulated = {n: c for c in thresholds for n in _manipulated(outcomes, label_corrected=c)}
        for row, name in enumerate(names):
            if name not in outcomes:
                continue
            c = ROLE_COLORS.get(roles.get(name, ""), "black")
            per_seed = 100 * outcomes[name].mean(axis=1)
            ax.scatter(per_seed, np.full(len(per_seed), row), s=12, color=c, alpha=0.45, linewidths=0, zorder=2)
            e = seed_image_interval(outcomes[name])
            xerr = [[100 * (e.estimate - e.low)], [100 * (e.high - e.estimate)]]
            ax.errorbar(100 * e.estimate, row, xerr=xerr, fmt="o", color=c, markersize=4, capsize=2, zorder=3)
            if name in manipulated:
                x = 100 * thresholds[manipulated[name]]
                ax.vlines(x, row - 0.45, row + 0.45, color="black", linestyle="--", linewidth=1, zorder=1)
        best = float(outcomes[claims.best_baseline(outcomes)].mean())
        ax.axvline(100 * best, color="grey", linestyle=":", linewidth=1.2)
        ax.set(title=label, xlabel="robust accuracy (%)" if len(groups) == 1 else "", xlim=(0, None))
        ax.locator_params(axis="x", nbins=4)
        ax.grid(axis="y", visible=False)
    if len(groups) > 1:
        fig.supxlabel("robust accuracy, worst case over all attacks (%)", fontsize=style.FONT_PT)
    axes[0][0].set_yticks(range(len(names)), names)
    axes[0][0].invert_yaxis()
    for role, c in ROLE_COLORS.items():
        axes[0][0].plot([], [], "o", color=c, label=role)
    axes[0][0].plot([], [], ":", color="grey", label="best C6 baseline")
    axes[0][0].plot([], [], "--", color="black", label="C7/C8 threshold")
    fig.legend(loc="outside upper center", ncols=3)
    return fig
