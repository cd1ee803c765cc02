"""Chapter 4, distillation on clean images (claims C6, C7, C8 and our controls): the students' robust accuracy over
seeds with seed-and-image intervals (`advlogits.inference`), the claims' records, the 2x2 of C7 and C8, the targets'
confidence and entropy, each student's fidelity to its teacher, the design's power, and the chapter's figures.

The students themselves (names, roles, configs, seeds) are `advlogits.pipeline.lineup`'s; the statistics and
criteria are the claims registry's (`advlogits.chapters.claims`). Accuracies are fractions in [0, 1] throughout;
tables and figures show percent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from torch import Tensor

from .. import inference, pipeline
from ..checks import fail
from ..data import load_dataset
from ..inference import Tested, seed_image_interval
from ..logits import confidence
from ..pipeline.lineup import ARGMAX, KD_AT, TWO_BY_TWO, Student, student_label
from ..profiles import Profile
from ..store import Store
from . import claims, comparisons, numbers, wording


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
        best = float(outcomes[comparisons.best_baseline(outcomes)].mean())
        gain = float(outcomes[KD_AT].mean()) - best
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
        for name in comparisons.students_read(outcomes, claim, label_corrected=label_corrected):
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
                "robust, worst case (%)": fmt_points(seed_image_interval(o)),
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
    readings = {"": comparisons.grouped_values(groups)}
    if _has_corrected(groups):
        readings["c"] = comparisons.grouped_values(groups, label_corrected=True)
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
                shares[f"{name}{suffix}"] = list(comparisons.removed_share(outcomes, name, reference=reference))
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
    values = comparisons.grouped_values(groups)
    tests = comparisons.tested(values)
    n_seeds, n_images = next(iter(first.values())).shape
    best = comparisons.best_baseline(first)
    kd = first[KD_AT]
    means = {name: float(o.mean()) for name, o in first.items()}
    gain_values = comparisons.gain_values(first)
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
    if ARGMAX in means and means[KD_AT] > means[best]:  # how much of the gain the relabelling alone keeps
        common["argmax_share"] = round((means[ARGMAX] - means[best]) / (means[KD_AT] - means[best]), 3)
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
        corrected = comparisons.grouped_values(groups, label_corrected=True)
        readings.append(("c", corrected, comparisons.tested(corrected), True))
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


def fmt_points(e: Tested) -> str:
    return numbers.estimate(e.estimate, (e.low, e.high), digits=1, scale=100.0)


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
                rows.setdefault(row, {})[column] = f"{name}: {fmt_points(seed_image_interval(outcomes[name]))}"
    return pd.DataFrame(rows, index=columns).T


def gain_interval(outcomes: Mapping[str, np.ndarray], *, label_corrected: bool = False) -> tuple[float, tuple]:
    """One teacher group's gain over the best baseline (of its KD student, or of the label-corrected reading's), as
    ``(estimate, (low, high))`` with its seed-and-image interval."""
    reference = student_label("kd", label_corrected=label_corrected)
    e = seed_image_interval(comparisons.gain_values(outcomes, reference=reference))
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
