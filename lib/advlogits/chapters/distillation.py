"""Chapter 4, distillation on clean images (claims C6, C7, C8 and our controls): the students' robust accuracy over
seeds with seed-and-image intervals (`advlogits.inference`), the claims' records, the 2x2 of C7 and C8, the targets'
confidence and entropy, each student's fidelity to its teacher, the design's power, and the chapter's figures.

The students themselves (names, roles, configs, seeds) are `advlogits.pipeline.lineup`'s; the statistics and
criteria are the claims registry's (`advlogits.chapters.claims`). Accuracies are fractions in [0, 1] throughout;
tables and figures show percent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from torch import Tensor

from .. import inference, pipeline
from ..checks import fail
from ..data import load_dataset
from ..inference import Tested, seed_image_interval
from ..logits import confidence
from ..pipeline.lineup import ARGMAX, PERMUTED, TWO_BY_TWO, Student, student_label
from ..profiles import Profile
from ..store import Store
from . import claims, numbers, style


def lineup_table(students: Sequence[Student]) -> pd.DataFrame:
    """The line-up as a table, one row per student name: role, claim, teacher, targets, label correction, T, seeds."""
    rows: dict[str, dict] = {}
    for s in students:
        c = s.config
        distilled = c.method == "distilled"
        row = rows.setdefault(
            s.name,
            {
                "role": s.role,
                "claim": s.claim or "",
                "teacher": {"standard": "ST", "adversarial": "AT"}[c.teacher.method] if distilled else "",
                "targets": c.targets if distilled else ("true labels" if s.role != "teacher" else ""),
                "label-corrected": "yes" if c.label_corrected else "",
                "T": f"{c.T:g}" if distilled else "",
                "seeds": [],
            },
        )
        row["seeds"].append(s.seed)
    for row in rows.values():
        row["seeds"] = ", ".join(map(str, row["seeds"]))
    return pd.DataFrame(rows).T


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


def robust_outcomes_by_teacher(
    students: Sequence[Student], results: Mapping[tuple[str, int], Mapping]
) -> dict[str, dict[str, np.ndarray]]:
    """`robust_outcomes` of each teacher group, labelled by its AT teacher's row name ("AT teacher", "AT teacher
    (seed 1)"), the main seed's first: students are nested within teachers, and each group is decided alone."""
    labels = {s.teacher_seed: s.name for s in students if s.role == "teacher" and s.name.startswith("AT teacher")}
    members: dict[int, list[Student]] = {}
    for s in students:
        if s.role not in ("teacher", "sweep"):
            members.setdefault(s.teacher_seed, []).append(s)
    return {labels.get(t, f"AT teacher (seed {t})"): robust_outcomes(group, results) for t, group in members.items()}


def student_estimates(outcomes: Mapping[str, np.ndarray]) -> dict[str, Tested]:
    """Each student's robust accuracy, mean over seeds and images, with its seed-and-image interval."""
    return {name: seed_image_interval(o) for name, o in outcomes.items()}


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
) -> tuple[list[dict], dict[str, dict[str, Tested]]]:
    """The chapter's C6, C7, C8 records and our label-corrected readings C7c and C8c (decided by the registry), and
    the tests of the AT reading behind them.

    ``groups`` maps each teacher's label to its students' outcomes (default: ``outcomes``, one teacher); every
    comparison is decided within its group. Each record keeps what a reader needs to recompute its intervals: the
    per-seed value of every comparison, and (C6) ``per_seed``, every student's clean and robust accuracy and
    fidelity per seed, with ``images``, the evaluation images' seed and count."""
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
    records = [claims.record("C6", claims.decide_c6(tests["C6"], **size), measured=c6_measured)]
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
            records.append(claims.record(f"{claim}{suffix}", decided, measured=measured))
    return records, tests


def _interval_points(e: Tested) -> list[float]:
    return [round(100 * v, 2) for v in e.interval]


MANIPULATIONS = ("shuffle", "spread", "reorder", "mean", "flatten", "label_smoothing", PERMUTED)


def removal_rows(outcomes: Mapping[str, np.ndarray]) -> dict[str, dict]:
    """Every manipulated student of the AT teacher and of the label-corrected one (the control), each against its
    own teacher's KD student: that KD student, its gain over the best baseline, the student's contrast
    ``KD - student - half the gain`` (seed-and-image interval; >= 0: it removes at least half) and its share of the
    gain removed (Fieller interval)."""
    rows = {}
    for corrected in (False, True):
        reference = student_label("kd", label_corrected=corrected)
        if reference not in outcomes:
            continue
        gain = seed_image_interval(claims.gain_values(outcomes, reference=reference), threshold=0.0)
        for name in (student_label(k, label_corrected=corrected) for k in MANIPULATIONS):
            if name in outcomes:
                rows[name] = {
                    "reference": reference,
                    "gain": gain,
                    "contrast": seed_image_interval(claims.removal_contrast(outcomes, name, reference=reference)),
                    "share": claims.removed_share(outcomes, name, reference=reference),
                }
    return rows


def removal_table(outcomes: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """`removal_rows` as a table, in points and percent."""
    return pd.DataFrame(
        {
            name: {
                "teacher's KD student": row["reference"],
                "its gain (points)": _fmt_points(row["gain"]),
                "KD - student - half the gain (points)": _fmt_points(row["contrast"]),
                "share of the gain removed": _fmt_share(row["share"], row["gain"]),
            }
            for name, row in removal_rows(outcomes).items()
        }
    ).T


def _fmt_points(e: Tested) -> str:
    return numbers.estimate(e.estimate, (e.low, e.high), digits=1, scale=100.0)


def _fmt_share(share: tuple[float, float, float], gain: Tested) -> str:
    ratio, low, high = share
    if math.isnan(ratio) or gain.estimate <= 0:
        return "n/a (no gain)"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{100 * ratio:.1f}% [unbounded: the gain is not clearly above 0]"
    return numbers.estimate(ratio, (low, high), digits=1, scale=100.0, unit="%")


def two_by_two(estimates: Mapping[str, Tested], *, label_corrected: bool = False) -> pd.DataFrame:
    """C7 and C8 as a 2x2: robust accuracy (%) of KD, spread, flattened and label smoothing, by whether the targets
    keep the teacher's per-image confidence (rows) and its information about the incorrect classes (columns)."""
    table = pd.DataFrame(
        index=["confidence kept", "confidence removed"],
        columns=["class information kept", "class information removed"],
        dtype=object,
    )
    for kind, (conf_kept, info_kept) in TWO_BY_TWO.items():
        name = student_label(kind, label_corrected=label_corrected)
        if name in estimates:
            table.loc[
                "confidence kept" if conf_kept else "confidence removed",
                "class information kept" if info_kept else "class information removed",
            ] = f"{name}: {_fmt_points(estimates[name])}"
    return table


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


def robust_figure(
    outcomes: Mapping[str, np.ndarray],
    estimates: Mapping[str, Tested],
    *,
    roles: Mapping[str, str],
    gain: Tested | None = None,
) -> Figure:
    """Dot-and-whisker: each student's robust accuracy (%), one dot per seed and the mean with its 95% interval,
    grouped by role; dashed lines: the best C6 baseline and the C7/C8 threshold (KD-AT minus half the gain)."""
    names = list(outcomes)
    fig, ax = style.figure(1.1 + 0.3 * len(names))
    role_colors = {
        "baseline": style.OKABE_ITO["blue"],
        "claim": style.OKABE_ITO["vermillion"],
        "mixed": style.OKABE_ITO["purple"],
        "control": style.OKABE_ITO["green"],
    }
    for row, name in enumerate(names):
        c = role_colors.get(roles.get(name, ""), "black")
        per_seed = 100 * outcomes[name].mean(axis=1)
        ax.scatter(per_seed, np.full(len(per_seed), row), s=14, color=c, alpha=0.45, linewidths=0, zorder=2)
        e = estimates[name]
        ax.errorbar(
            100 * e.estimate,
            row,
            xerr=[[100 * (e.estimate - e.low)], [100 * (e.high - e.estimate)]],
            fmt="o",
            color=c,
            markersize=5,
            capsize=3,
            zorder=3,
        )
    if gain is not None and claims.KD_AT in estimates:
        kd_at = estimates[claims.KD_AT].estimate
        best = kd_at - gain.estimate
        ax.axvline(100 * best, color="grey", linestyle=":", linewidth=1.2, label="best C6 baseline")
        ax.axvline(
            100 * (kd_at - claims.REMOVED_SHARE * gain.estimate),
            color="black",
            linestyle="--",
            linewidth=1,
            label="C7/C8 threshold",
        )
    for role, c in role_colors.items():
        ax.plot([], [], "o", color=c, label=role)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set(xlabel="robust accuracy, worst case over all attacks (%)", xlim=(0, None))
    ax.grid(axis="y", visible=False)
    fig.legend(loc="outside upper center", ncols=3)
    return fig
