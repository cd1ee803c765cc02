"""The student line-up of the distillation chapter (claims C6, C7, C8 and two controls).

Every student has the teachers' architecture and sees only clean images: the profile's ``student_n_train``
training images (drawn with the profile's seed) for ``student_epochs`` epochs. What differs is what it is
trained to match (`advlogits.distill.make_targets`). This module names the students, evaluates them
(clean, PGD with CE and with CW loss, AutoAttack), applies the claims' fixed criteria and draws the chapter's
figure. Accuracies are fractions in [0, 1] throughout; tables and figures show percent.

The criteria (claims issue, fixed before any result): robust accuracy is AutoAttack accuracy on the first
``n_autoattack`` images of the profile's evaluation subset.

- C6 holds when the KD-AT student beats both the hard-label and the KD-ST student by at least
  `C6_MARGIN` (10 points). Its **gain** is ``robust(KD-AT) - max(robust(hard labels), robust(KD-ST))``,
  the margin by which KD-AT beats the stronger of the two, so C6 holds exactly when ``gain >= 0.10``.
- C7 (C8) holds when each of its manipulated students has robust accuracy ``<= robust(KD-AT) - gain / 2``.
  If C6 does not hold there is no gain to remove: C7 and C8 are then reported as not reproduced (not
  evaluable), with their numbers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from matplotlib.figure import Figure
from torch import nn

from . import experiments
from .distill import TARGET_KINDS
from .profiles import Profile
from .store import Store
from .train import TrainConfig

Role = Literal["teacher", "baseline", "claim", "control", "sweep"]

HARD, KD_ST, KD_AT = "hard labels", "KD-ST", "KD-AT"
C7_KINDS: dict[str, str] = {"shuffle": "shuffled", "mean": "mean", "reorder": "ST order"}  # kind -> row label
C8_KINDS: dict[str, str] = {"flatten": "flattened", "label_smoothing": "label smoothing"}
ARGMAX = "AT argmax"  # control (i): the AT teacher's predictions as hard labels
CORRECTED_PREFIX = "AT-corr"  # control (ii): the label-corrected AT teacher
SWEEP_TEMPERATURES: tuple[float, ...] = (1.0, 4.0)  # the temperature sweep (KD-AT and one manipulation)
SWEEP_KIND = "shuffle"  # the manipulation repeated in the temperature sweep

C6_MARGIN = 0.10  # C6: KD-AT must beat both baselines by this much robust accuracy (10 points)
_TOL = 1e-9  # accuracies are multiples of 1/n: compare them with a tolerance for float rounding


@dataclass(frozen=True)
class Student:
    """One row of the line-up: a model, the part it plays, and how it was trained."""

    name: str  # row label in tables and figures (unique in a line-up)
    role: Role  # "teacher", "baseline" (C6's references), "claim" (C6-C8), "control" (ours), "sweep"
    claim: str | None  # the claim whose criterion reads this model ("C6", "C7", "C8"), else None
    config: TrainConfig  # what the store trains and keys it by


def label(kind: str, *, corrected: bool = False) -> str:
    """Row label of the AT teacher manipulated by ``kind`` (e.g. "AT shuffled", "AT-corr shuffled")."""
    names = {"kd": "KD", **C7_KINDS, **C8_KINDS, "argmax": "argmax"}
    if kind not in names:
        raise ValueError(f"kind must be one of {tuple(names)}; got {kind!r}.")
    if not corrected:
        return KD_AT if kind == "kd" else f"AT {names[kind]}"
    return f"{CORRECTED_PREFIX} {names[kind]}"


def student_config(p: Profile, *, teacher: TrainConfig | None, targets: str = "kd", T: float = 1.0,
                   corrected: bool = False, reference: TrainConfig | None = None) -> TrainConfig:
    """A student of profile ``p``: the teachers' architecture, ``student_n_train`` clean images, ``student_epochs``.

    ``teacher=None`` gives the hard-label student: standard cross-entropy training on the true labels of the
    same images, same seed, same optimiser (a "standard" config; it does not depend on ``T``).
    """
    if targets not in TARGET_KINDS:
        raise ValueError(f"targets must be one of {TARGET_KINDS}; got {targets!r}.")
    if isinstance(T, bool) or not isinstance(T, (int, float)) or not (math.isfinite(T) and T > 0):
        raise ValueError(f"T must be a finite temperature > 0; got {T!r}.")
    if (targets == "reorder") != (reference is not None):
        raise ValueError("reference (the ST teacher's config) is required by, and only by, targets='reorder'.")
    base = dataclasses.replace(p.standard(), n_train=p.student_n_train, epochs=p.student_epochs)
    if teacher is None:
        return base
    return dataclasses.replace(base, method="distilled", teacher=teacher, targets=targets, reference=reference,
                               T=float(T), corrected=corrected)


def lineup(p: Profile, *, T: float | None = None, sweep: Sequence[float] = SWEEP_TEMPERATURES) -> list[Student]:
    """The chapter's models in table order: teachers, C6-C8 students, controls, then the temperature sweep.

    ``T`` is the KD temperature of every student (default: the profile's ``temperature``); ``sweep`` adds
    KD-AT and the `SWEEP_KIND` student at each other temperature. Teachers are the profile's ST and AT models
    (seed ``p.seed``), the same ones chapter 1 trains. The claims read AutoAttack accuracy, so a profile with
    ``n_autoattack == 0`` is refused here, before anything is trained.
    """
    if p.n_autoattack < 1:
        raise ValueError("n_autoattack must be >= 1 for the distillation line-up: the claims' robust accuracy is "
                         f"AutoAttack accuracy (got n_autoattack={p.n_autoattack}); keep the profile's value.")
    T = p.temperature if T is None else T
    st, at = p.standard(), p.adversarial()

    def kd(kind: str, *, corrected: bool = False, temperature: float = T) -> TrainConfig:
        return student_config(p, teacher=at, targets=kind, T=temperature, corrected=corrected,
                              reference=st if kind == "reorder" else None)

    out = [Student("ST teacher", "teacher", None, st), Student("AT teacher", "teacher", None, at),
           Student(HARD, "baseline", "C6", student_config(p, teacher=None)),
           Student(KD_ST, "baseline", "C6", student_config(p, teacher=st, T=T)),
           Student(KD_AT, "claim", "C6", kd("kd"))]
    for claim, kinds in (("C7", C7_KINDS), ("C8", C8_KINDS)):
        out += [Student(label(k), "claim", claim, kd(k)) for k in kinds]
    out.append(Student(ARGMAX, "control", None, kd("argmax")))
    out += [Student(label(k, corrected=True), "control", None, kd(k, corrected=True))
            for k in ("kd", *C7_KINDS, *C8_KINDS)]
    for temperature in sweep:
        if temperature != T:
            out += [Student(f"{label(k)} (T={temperature:g})", "sweep", None, kd(k, temperature=temperature))
                    for k in ("kd", SWEEP_KIND)]
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise ValueError(f"student names must be unique; got {names} (is a sweep temperature repeated?)")
    return out


def lineup_table(students: Sequence[Student]):
    """The line-up as a table (pandas DataFrame): role, claim, method, teacher, targets, correction, temperature."""
    import pandas as pd

    rows = {}
    for s in students:
        c = s.config
        distilled = c.method == "distilled"
        rows[s.name] = {"role": s.role, "claim": s.claim or "", "method": c.method,
                        "teacher": {"standard": "ST", "adversarial": "AT"}[c.teacher.method] if distilled else "",
                        "targets": c.targets if distilled else "", "corrected": "yes" if c.corrected else "",
                        "T": f"{c.T:g}" if distilled else ""}
    return pd.DataFrame(rows).T


# ---------------------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------------------


def train_all(students: Sequence[Student], *, store: Store, device: str | torch.device,
              progress: bool = True) -> dict[str, tuple[nn.Module, dict]]:
    """Each student's (model, history), from the store or trained now (teachers first, as configs need them)."""
    return {s.name: store.get_or_train(s.config, device=device, progress=progress) for s in students}


def pgd_cw(p: Profile, config: TrainConfig, *, store: Store, progress: bool = True) -> dict:
    """Accuracy of ``config``'s model under L-inf PGD with the CW margin loss ``max_{j != y} z_j - z_y``.

    Same images, radius, steps, step size, restarts and seed as `experiments.evaluate`'s CE attack; the
    margin loss does not saturate like cross-entropy on over-confident logits, so it is the check against
    gradient masking by sharp distillation targets. Stored once. Returns ``pgd_cw_acc`` (all ``n_eval``
    images), ``pgd_cw_correct`` (per image) and, if ``n_autoattack > 0``, ``pgd_cw_acc_on_autoattack_subset``
    (its first ``n_autoattack`` images).
    """
    params = {k: getattr(p, k) for k in ("eps", "eval_alpha", "eval_steps", "eval_restarts", "n_eval",
                                         "n_autoattack", "seed", "dataset")}
    params["loss"] = "cw"

    def compute() -> dict:
        model = experiments.evaluation_model(p, config, store=store, progress=progress)
        x, y = experiments.eval_split(p)
        robust = experiments.pgd_correct(model, x, y, eps=p.eps, alpha=p.eval_alpha, steps=p.eval_steps,
                                         restarts=p.eval_restarts, seed=p.seed, loss="cw")
        result = {"pgd_cw_acc": robust.float().mean().item(), "pgd_cw_correct": robust.tolist()}
        if p.n_autoattack > 0:
            result["pgd_cw_acc_on_autoattack_subset"] = robust[: p.n_autoattack].float().mean().item()
        return result

    return store.get_or_compute_json(config, "pgd-cw", params, compute)


def evaluate(p: Profile, config: TrainConfig, *, store: Store, progress: bool = True) -> dict:
    """`experiments.evaluate` (clean, PGD-CE, AutoAttack) merged with `pgd_cw`; both stored."""
    return {**experiments.evaluate(p, config, store=store, progress=progress),
            **pgd_cw(p, config, store=store, progress=progress)}


def evaluate_all(p: Profile, students: Sequence[Student], *, store: Store, progress: bool = True
                 ) -> dict[str, dict]:
    """`evaluate` for every student, keyed by name, in line-up order."""
    return {s.name: evaluate(p, s.config, store=store, progress=progress) for s in students}


def accuracy_table(results: Mapping[str, Mapping], *, pgd_steps: int):
    """Clean, PGD-CE, PGD-CW and AutoAttack accuracy in percent (pandas DataFrame, one row per model).

    The PGD columns marked "(AA images)" are re-measured on AutoAttack's images so the attacks compare there;
    the last column is AutoAttack's bootstrap 95% interval (`experiments.accuracy_interval` of its count).
    """
    import pandas as pd

    columns = {"clean_acc": "clean", "pgd_acc": f"PGD-{pgd_steps} CE", "pgd_cw_acc": f"PGD-{pgd_steps} CW",
               "pgd_acc_on_autoattack_subset": f"PGD-{pgd_steps} CE (AA images)",
               "pgd_cw_acc_on_autoattack_subset": f"PGD-{pgd_steps} CW (AA images)", "autoattack_acc": "AutoAttack"}
    rows = {}
    for name, r in results.items():
        rows[name] = {label: round(100 * r[key], 1) if key in r else math.nan for key, label in columns.items()}
        if "autoattack_acc" in r:
            n = r["n_autoattack"]
            k = round(r["autoattack_acc"] * n)
            _, low, high = experiments.accuracy_interval([True] * k + [False] * (n - k))
            rows[name]["AutoAttack 95% CI"] = f"[{low:.1f}, {high:.1f}]"
    return pd.DataFrame(rows).T


def gap_notes(results: Mapping[str, Mapping]) -> str:
    """`experiments.gap_note` for PGD-CE and for PGD-CW (each against AutoAttack on the same images)."""
    cw = {name: {"pgd_acc_on_autoattack_subset": r["pgd_cw_acc_on_autoattack_subset"],
                 "autoattack_acc": r["autoattack_acc"]}
          for name, r in results.items() if "autoattack_acc" in r and "pgd_cw_acc_on_autoattack_subset" in r}
    return f"PGD with CE loss: {experiments.gap_note(results)} PGD with CW loss: {experiments.gap_note(cw)}"


# ---------------------------------------------------------------------------------------------------------
# The claims' criteria
# ---------------------------------------------------------------------------------------------------------


def robust_accuracies(results: Mapping[str, Mapping]) -> dict[str, float]:
    """AutoAttack accuracy of every model, the claims' robust accuracy; an error if one was not attacked."""
    missing = [name for name, r in results.items() if "autoattack_acc" not in r]
    if missing:
        raise ValueError(f"no AutoAttack accuracy for {missing}: the claims' robust accuracy is AutoAttack "
                         "accuracy, so run the profile with n_autoattack > 0.")
    return {name: float(r["autoattack_acc"]) for name, r in results.items()}


def c6_gain(robust: Mapping[str, float]) -> float:
    """The C6 gain: ``robust[KD-AT] - max(robust[hard labels], robust[KD-ST])`` (fraction; may be negative)."""
    _require(robust, (HARD, KD_ST, KD_AT))
    return robust[KD_AT] - max(robust[HARD], robust[KD_ST])


def removal(robust: Mapping[str, float], names: Sequence[str], *, reference: str = KD_AT) -> dict[str, dict]:
    """For each student in ``names``: its robust accuracy, the share of the gain it removes, and the C7/C8 test.

    The gain is the C6 gain (see `c6_gain`) when ``reference`` is KD-AT, and ``robust[reference] -
    max(baselines)`` for another unmanipulated teacher (the corrected one, for the controls). A student meets
    the test (``meets``) when ``robust <= robust[reference] - gain / 2``, i.e. it removes at least half of the
    gain; without a positive gain there is nothing to remove and ``meets`` is None. ``share_removed`` is
    ``(robust[reference] - robust) / gain``, NaN when the gain is not positive.
    """
    _require(robust, (HARD, KD_ST, reference, *names))
    gain = robust[reference] - max(robust[HARD], robust[KD_ST])
    threshold = robust[reference] - gain / 2
    return {name: {"robust": robust[name], "threshold": threshold,
                   "meets": robust[name] <= threshold + _TOL if gain > 0 else None,
                   "share_removed": (robust[reference] - robust[name]) / gain if gain > 0 else math.nan}
            for name in names}


def verdicts(robust: Mapping[str, float]) -> dict[str, dict]:
    """C6, C7 and C8 on the robust accuracies of the line-up: per claim ``holds``, ``evaluable`` and numbers.

    For C7 and C8 also ``criterion_met`` (the inequality for every student; None without a positive gain) and
    ``failing`` (the students that keep more than half of the gain).
    """
    gain = c6_gain(robust)
    c6_holds = gain >= C6_MARGIN - _TOL
    out = {"C6": {"holds": c6_holds, "evaluable": True, "gain": gain, "over_hard": robust[KD_AT] - robust[HARD],
                  "over_kd_st": robust[KD_AT] - robust[KD_ST]}}
    for claim, kinds in (("C7", C7_KINDS), ("C8", C8_KINDS)):
        students = removal(robust, [label(k) for k in kinds])
        met = all(s["meets"] is True for s in students.values())
        out[claim] = {"holds": c6_holds and met, "evaluable": c6_holds, "criterion_met": met if gain > 0 else None,
                      "gain": gain, "threshold": robust[KD_AT] - gain / 2, "students": students,
                      "failing": [name for name, s in students.items() if s["meets"] is False]}
    return out


def _require(robust: Mapping[str, float], names: Sequence[str]) -> None:
    missing = [n for n in names if n not in robust]
    if missing:
        raise ValueError(f"robust accuracies are missing for {missing}; evaluate the whole line-up first.")


def _pct(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(100 * value, 2)


def claim_records(results: Mapping[str, Mapping]) -> list[dict]:
    """The chapter's C6, C7, C8 records for `advlogits.claims.write_claims` (accuracies in percent)."""
    from . import claims

    robust = robust_accuracies(results)
    v = verdicts(robust)
    pgd = {name: _pct(r["pgd_acc_on_autoattack_subset"]) for name, r in results.items()}
    base = {"robust_kd_at_pct": _pct(robust[KD_AT]), "robust_hard_pct": _pct(robust[HARD]),
            "robust_kd_st_pct": _pct(robust[KD_ST]), "gain_points": _pct(v["C6"]["gain"])}
    records = [claims.claim(
        "C6", claim="Distilling an AT teacher on clean inputs only gives the student some robustness.",
        criterion="AutoAttack accuracy of the KD-AT student >= that of the hard-label student + 10 points and >= "
                  "that of the KD-ST student + 10 points (gain = KD-AT - max(hard, KD-ST) >= 10 points).",
        measured={**base, "pgd_ce_kd_at_pct": pgd[KD_AT], "pgd_ce_hard_pct": pgd[HARD], "pgd_ce_kd_st_pct": pgd[KD_ST]},
        holds=v["C6"]["holds"])]
    texts = {"C7": ("Information about incorrect classes is essential: manipulating the AT teacher's non-max "
                    "logits (shuffled, mean, ST ordering) removes the robustness the student inherits.",
                    "shuffled, mean and ST-order"),
             "C8": ("Sample-wise confidences matter: flattening the AT teacher's confidence to its data-set "
                    "average, or label smoothing at that average, removes the robustness.",
                    "flattened-confidence and label-smoothing")}
    for claim, (text, which) in texts.items():
        verdict = v[claim]
        measured = {**base, "threshold_pct": _pct(verdict["threshold"]), "evaluable": verdict["evaluable"],
                    **{f"robust_{_slug(name)}_pct": _pct(s["robust"]) for name, s in verdict["students"].items()},
                    **{f"share_removed_{_slug(name)}": _round(s["share_removed"])
                       for name, s in verdict["students"].items()}}
        if not verdict["evaluable"]:
            measured["note"] = "C6 does not hold, so there is no gain to remove: reported as not reproduced."
        records.append(claims.claim(
            claim, claim=text,
            criterion=f"C6 holds and each of the {which} students has AutoAttack accuracy <= KD-AT - gain / 2 "
                      "(it removes at least half of the C6 gain).",
            measured=measured, holds=verdict["holds"]))
    return records


def _slug(name: str) -> str:
    """"AT ST order" -> "at_st_order": a row label as a JSON key."""
    return "_".join(name.lower().replace("-", " ").split())


def _round(value: float) -> float | None:
    return None if not math.isfinite(value) else round(value, 3)


def removal_table(results: Mapping[str, Mapping]):
    """Robust accuracy (%) and share of the gain removed of every manipulated student, AT and corrected AT."""
    import pandas as pd

    robust = robust_accuracies(results)
    rows = {}
    for corrected, reference in ((False, KD_AT), (True, label("kd", corrected=True))):
        names = [label(k, corrected=corrected) for k in (*C7_KINDS, *C8_KINDS)]
        for name, s in removal(robust, names, reference=reference).items():
            rows[name] = {"teacher": reference, "AutoAttack (%)": 100 * s["robust"],
                          "teacher's student (%)": 100 * robust[reference],
                          "threshold (%)": 100 * s["threshold"], "share of gain removed": s["share_removed"],
                          "removes half": {True: "yes", False: "no", None: "n/a (no gain)"}[s["meets"]]}
    return pd.DataFrame(rows).T.round(2)


# ---------------------------------------------------------------------------------------------------------
# Figure
# ---------------------------------------------------------------------------------------------------------


def accuracy_figure(results: Mapping[str, Mapping], *, pgd_steps: int, roles: Mapping[str, str] | None = None
                    ) -> Figure:
    """Horizontal grouped bars (percent): clean, PGD-CE, PGD-CW and AutoAttack accuracy of every model.

    Dotted lines mark the KD-AT student's AutoAttack accuracy, the stronger baseline's and the C7/C8 threshold
    halfway between them (drawn when those students are present). ``roles`` (name -> role) labels the rows.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(results)
    columns = {"clean_acc": "clean", "pgd_acc": f"PGD-{pgd_steps} CE", "pgd_cw_acc": f"PGD-{pgd_steps} CW",
               "autoattack_acc": "AutoAttack"}
    fig, ax = plt.subplots(figsize=(8.5, 1.2 + 0.42 * len(names)), constrained_layout=True)
    height = 0.8 / len(columns)
    for j, (key, text) in enumerate(columns.items()):
        values = [100 * results[n].get(key, np.nan) for n in names]
        bars = ax.barh(np.arange(len(names)) + (j - (len(columns) - 1) / 2) * height, values, height, label=text)
        ax.bar_label(bars, fmt="%.0f", fontsize=6, padding=1)
    if all(n in results and "autoattack_acc" in results[n] for n in (HARD, KD_ST, KD_AT)):
        robust = {n: results[n]["autoattack_acc"] for n in (HARD, KD_ST, KD_AT)}
        best = max(robust[HARD], robust[KD_ST])
        for value, style, text in ((robust[KD_AT], ":", "KD-AT (AutoAttack)"), (best, "-.", "stronger baseline"),
                                   (robust[KD_AT] - c6_gain(robust) / 2, "--", "C7/C8 threshold")):
            ax.axvline(100 * value, color="black", linestyle=style, linewidth=1, label=text)
    ticks = [f"{n} [{roles[n]}]" if roles and n in roles else n for n in names]
    ax.set_yticks(np.arange(len(names)), ticks, fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel="accuracy on the evaluation images (%)", xlim=(0, 105))
    ax.legend(loc="lower right", fontsize=7)
    ax.grid(axis="x", alpha=0.3)
    return fig


# ---------------------------------------------------------------------------------------------------------
# The teachers on the students' images
# ---------------------------------------------------------------------------------------------------------


def teacher_facts(p: Profile, *, store: Store) -> dict[str, dict]:
    """ST and AT teachers on the students' training images: accuracy and mean confidence, raw and label-corrected.

    The AT teacher's mistakes there are the relabelling a student inherits; its mean confidence is the target
    of the flattened and label-smoothing students (computed by `experiments.distillation_targets` the same way).
    """
    from .data import load_dataset
    from .distill import correct_labels
    from .logits import confidence

    _, y = load_dataset(p.dataset, "train", n=p.student_n_train, seed=p.seed)
    out = {}
    for name, config in (("ST teacher", p.standard()), ("AT teacher", p.adversarial())):
        z = experiments.train_logits(config, dataset=p.dataset, n_train=p.student_n_train, seed=p.seed,
                                     device=p.device, store=store)
        out[name] = {"accuracy": (z.argmax(1) == y).float().mean().item(),
                     "mean_confidence": confidence(z).mean().item(),
                     "mean_confidence_corrected": confidence(correct_labels(z, y)).mean().item()}
    return out
