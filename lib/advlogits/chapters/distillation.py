"""Chapter 4, distillation on clean images (claims C6, C7, C8 and two controls): the line-up as a table, robust
accuracies, the claims' records, the removal table, the chapter's figure, and the teachers on the students' images.

The students themselves (names, roles, configs) are `advlogits.pipeline.lineup`'s; the criteria are in the claims
registry (`advlogits.chapters.claims`). Accuracies are fractions in [0, 1] throughout; tables and figures show
percent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .. import pipeline
from ..checks import fail
from ..data import load_dataset
from ..distill import label_correct
from ..logits import confidence
from ..pipeline.lineup import C7_KINDS, C8_KINDS, HARD, KD_AT, KD_ST, Student, student_label
from ..profiles import Profile
from ..store import Store
from . import claims
from .claims import c6_gain, removal

def lineup_table(students: Sequence[Student]):
    """The line-up as a table (pandas DataFrame): role, claim, method, teacher, targets, label correction, T."""
    rows = {}
    for s in students:
        c = s.config
        distilled = c.method == "distilled"
        rows[s.name] = {"role": s.role, "claim": s.claim or "", "method": c.method,
                        "teacher": {"standard": "ST", "adversarial": "AT"}[c.teacher.method] if distilled else "",
                        "targets": c.targets if distilled else "", "label-corrected": "yes" if c.label_corrected else "",
                        "T": f"{c.T:g}" if distilled else ""}
    return pd.DataFrame(rows).T


def robust_accuracies(results: Mapping[str, Mapping]) -> dict[str, float]:
    """AutoAttack accuracy of every model, the claims' robust accuracy; an error if one was not attacked."""
    missing = [name for name, r in results.items() if "autoattack_acc" not in r]
    if missing:
        fail("results", "AutoAttack accuracies of every model (the claims' robust accuracy is AutoAttack "
             "accuracy)", sorted(results), shown=f"none for {missing}", hint="run the profile with n_autoattack > 0")
    return {name: float(r["autoattack_acc"]) for name, r in results.items()}


def _pct(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(100 * value, 2)


def claim_records(results: Mapping[str, Mapping]) -> list[dict]:
    """The chapter's C6, C7, C8 records for `claims.write_claims` (accuracies in percent), decided by the registry."""
    robust = robust_accuracies(results)
    outcome = {cid: claims.CLAIMS[cid].decide(robust) for cid in ("C6", "C7", "C8")}
    pgd = {name: _pct(r["pgd_acc_on_autoattack_subset"]) for name, r in results.items()}
    base = {"robust_kd_at_pct": _pct(robust[KD_AT]), "robust_hard_pct": _pct(robust[HARD]),
            "robust_kd_st_pct": _pct(robust[KD_ST]), "gain_points": _pct(outcome["C6"]["gain"])}
    records = [claims.record("C6", measured={**base, "pgd_ce_kd_at_pct": pgd[KD_AT], "pgd_ce_hard_pct": pgd[HARD],
                                             "pgd_ce_kd_st_pct": pgd[KD_ST]}, holds=outcome["C6"]["holds"])]
    for claim in ("C7", "C8"):
        result = outcome[claim]
        measured = {**base, "threshold_pct": _pct(result["threshold"]), "evaluable": result["evaluable"],
                    **{f"robust_{_slug(name)}_pct": _pct(s["robust"]) for name, s in result["students"].items()},
                    **{f"share_removed_{_slug(name)}": _round(s["share_removed"])
                       for name, s in result["students"].items()}}
        if not result["evaluable"]:
            measured["note"] = "C6 does not hold, so there is no gain to remove: reported as not reproduced."
        records.append(claims.record(claim, measured=measured, holds=result["holds"]))
    return records


def _slug(name: str) -> str:
    """"AT ST order" -> "at_st_order": a row label as a JSON key."""
    return "_".join(name.lower().replace("-", " ").split())


def _round(value: float) -> float | None:
    return None if not math.isfinite(value) else round(value, 3)


def removal_table(results: Mapping[str, Mapping]):
    """Robust accuracy (%) and share of the gain removed of every manipulated student, AT and corrected AT."""
    robust = robust_accuracies(results)
    rows = {}
    for corrected, reference in ((False, KD_AT), (True, student_label("kd", label_corrected=True))):
        names = [student_label(k, label_corrected=corrected) for k in (*C7_KINDS, *C8_KINDS)]
        for name, s in removal(robust, names, reference=reference).items():
            rows[name] = {"teacher": reference, "AutoAttack (%)": 100 * s["robust"],
                          "teacher's student (%)": 100 * robust[reference],
                          "threshold (%)": 100 * s["threshold"], "share of gain removed": s["share_removed"],
                          "removes half": {True: "yes", False: "no", None: "n/a (no gain)"}[s["meets"]]}
    return pd.DataFrame(rows).T.round(2)


def accuracy_figure(results: Mapping[str, Mapping], *, pgd_steps: int, roles: Mapping[str, str] | None = None
                    ) -> Figure:
    """Horizontal grouped bars (percent): clean, PGD-CE, PGD-CW and AutoAttack accuracy of every model.

    Dotted lines mark the KD-AT student's AutoAttack accuracy, the stronger baseline's and the C7/C8 threshold
    halfway between them (drawn when those students are present). ``roles`` (name -> role) labels the rows.
    """
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
                                   (robust[KD_AT] - c6_gain(robust) * claims.REMOVED_SHARE, "--", "C7/C8 threshold")):
            ax.axvline(100 * value, color="black", linestyle=style, linewidth=1, label=text)
    ticks = [f"{n} [{roles[n]}]" if roles and n in roles else n for n in names]
    ax.set_yticks(np.arange(len(names)), ticks, fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel="accuracy on the evaluation images (%)", xlim=(0, 105))
    ax.legend(loc="lower right", fontsize=7)
    ax.grid(axis="x", alpha=0.3)
    return fig


def teacher_facts(profile: Profile, *, store: Store | None = None) -> dict[str, dict]:
    """ST and AT teachers on the students' training images: accuracy and mean confidence, raw and label-corrected.

    The AT teacher's mistakes there are the relabelling a student inherits; its mean confidence is the target
    of the flattened and label-smoothing students (`advlogits.pipeline.training.distillation_targets` computes it
    the same way).
    """
    _, y = load_dataset(profile.dataset, "train", n=profile.student_n_train, seed=profile.seed)
    out = {}
    for name, config in (("ST teacher", profile.standard()), ("AT teacher", profile.adversarial())):
        z = pipeline.train_logits(config, dataset=profile.dataset, n_train=profile.student_n_train, seed=profile.seed,
                                  device=profile.device, store=store)
        out[name] = {"accuracy": (z.argmax(1) == y).float().mean().item(),
                     "mean_confidence": confidence(z).mean().item(),
                     "mean_confidence_corrected": confidence(label_correct(z, y)).mean().item()}
    return out
