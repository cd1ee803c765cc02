"""Tables shared by the chapters: accuracies with intervals, statistics with intervals, PGD against AutoAttack."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from ..checks import fail
from ..stats import Interval, accuracy_interval
from .numbers import estimate, join_words

PGD_EXCESS_FLAG = 0.05  # the protocol flags a model whose PGD accuracy exceeds the worst case by more than 5 points
_SLACK = 1e-9  # accuracies are multiples of 1/n: an excess of exactly 5 points is not "more than" 5 points


ATTACK_COLUMNS = {
    "clean_correct": "clean (%)",
    "pgd_correct": "PGD-{steps} CE (%)",
    "pgd_cw_correct": "PGD-{steps} CW (%)",
    "autoattack_correct": "AutoAttack (%)",
    "robust_correct": "worst case (%)",
}


def accuracy_table(results: Mapping[str, Mapping], *, pgd_steps: int, intervals: bool = True) -> pd.DataFrame:
    """Accuracies in percent on AutoAttack's images, one row per model, from `advlogits.pipeline.evaluate` results:
    clean, PGD with the CE and with the CW loss, AutoAttack's own number (where it was measured; "n/a" where
    AutoAttack ran only on the images PGD left standing), and the per-image worst case over all of them (the robust
    accuracy the claims read). All on the same images, so the attacks compare. ``intervals``: cells "estimate [low,
    high]" (bootstrap 95% intervals over the images) instead of numbers."""
    rows = {}
    for name, r in results.items():
        if "n_autoattack" not in r:
            fail("results", "evaluations with AutoAttack (n_autoattack > 0)", name)
        k = r["n_autoattack"]
        row = {}
        for key, label in ATTACK_COLUMNS.items():
            label = label.format(steps=pgd_steps)
            if key not in r:
                row[label] = "n/a"
                continue
            values = r[key][:k]
            if intervals:
                row[label] = estimate(*_split(accuracy_interval(values)), digits=1)
            else:
                row[label] = round(100 * sum(values) / k, 1)
        rows[name] = row
    return pd.DataFrame(rows).T


def interval_table(rows: Mapping[str, Mapping[str, Interval]], *, digits: int = 2) -> pd.DataFrame:
    """A table with one row per entry of ``rows`` and cells "estimate [low, high]"."""
    return pd.DataFrame(
        {name: {stat: estimate(*_split(iv), digits=digits) for stat, iv in cols.items()} for name, cols in rows.items()}
    ).T


def _split(interval: Interval) -> tuple[float, tuple[float, float]]:
    e, lo, hi = interval
    return e, (lo, hi)


MAX_LISTED = 3  # flagged models named one by one; more are summarised in one clause


def _pgd_excess(results: Mapping[str, Mapping], loss: str) -> dict[str, float]:
    """Models whose PGD accuracy (``loss`` "CE" or "CW") exceeds their worst-case robust accuracy by more than
    `PGD_EXCESS_FLAG` on the same images: name -> excess in points."""
    key = "pgd_acc_on_autoattack_subset" if loss == "CE" else "pgd_cw_acc_on_autoattack_subset"
    return {
        name: 100 * (r[key] - r["robust_acc"])
        for name, r in results.items()
        if "robust_acc" in r and key in r and r[key] - r["robust_acc"] > PGD_EXCESS_FLAG + _SLACK
    }


def _models_phrase(excess: Mapping[str, float], n_models: int) -> str:
    """The flagged models with their excesses, named one by one up to `MAX_LISTED`, else how many, by how much and
    the worst one."""
    if len(excess) <= MAX_LISTED:
        return join_words([f"{name} ({points:.1f} points)" for name, points in excess.items()])
    worst = max(excess, key=excess.get)
    return (
        f"{len(excess)} of {n_models} models by {min(excess.values()):.1f} to {excess[worst]:.1f} points "
        f"(most: {worst})"
    )


def pgd_excess_note(results: Mapping[str, Mapping], *, loss: str = "CE") -> str:
    """A sentence flagging models whose PGD accuracy (``loss`` "CE" or "CW") exceeds their worst-case robust accuracy
    (which includes AutoAttack) by more than `PGD_EXCESS_FLAG` on the same images."""
    excess = _pgd_excess(results, loss)
    if not excess:
        return (
            "No model's PGD accuracy exceeds its worst case over all attacks (AutoAttack included) by more than "
            f"{100 * PGD_EXCESS_FLAG:.0f} points on the same images."
        )
    return (
        f"Flagged: PGD overstates the robustness of {_models_phrase(excess, len(results))} compared with the worst "
        "case over all attacks on the same images; trust the worst case."
    )


def pgd_excess_notes(results: Mapping[str, Mapping]) -> str:
    """One sentence on PGD with the CE loss and with the CW loss: which models' PGD accuracy exceeds their worst case
    over all attacks by more than `PGD_EXCESS_FLAG`, or that none does."""
    flag = f"{100 * PGD_EXCESS_FLAG:.0f} points"
    excess = {loss: _pgd_excess(results, loss) for loss in ("CE", "CW")}
    if not any(excess.values()):
        return (
            "Neither PGD with the CE loss nor PGD with the CW loss overstates any model's robustness by more than "
            f"{flag} against the worst case over all attacks on the same images."
        )
    ce, cw = (_models_phrase(e, len(results)) if e else "none" for e in excess.values())
    return (
        f"Against the worst case over all attacks on the same images, PGD with the CE loss overstates by more than "
        f"{flag} the robustness of {ce}; PGD with the CW loss, of {cw}. Every claim reads the worst case."
    )
