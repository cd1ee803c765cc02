"""Tables shared by the chapters: accuracies with intervals, statistics with intervals, PGD against AutoAttack."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from ..stats import Interval, accuracy_interval

PGD_EXCESS_FLAG = 0.05  # the protocol flags a model whose PGD accuracy exceeds AutoAttack's by more than 5 points
_SLACK = 1e-9  # accuracies are multiples of 1/n: an excess of exactly 5 points is not "more than" 5 points


def _aa_interval(r: Mapping) -> Interval:
    """AutoAttack accuracy with its bootstrap interval, from its count of robust images (the same distribution
    as resampling its per-image outcomes)."""
    n = r["n_autoattack"]
    k = round(r["autoattack_acc"] * n)
    return accuracy_interval([True] * k + [False] * (n - k))


def accuracy_table(results: Mapping[str, Mapping], *, pgd_steps: int, intervals: bool = True,
                   cw: bool = False) -> pd.DataFrame:
    """Accuracies in percent, one row per model, from `advlogits.pipeline.evaluate` results.

    ``intervals=True``: cells "estimate [low, high]" (bootstrap 95% intervals over images) for clean, PGD-CE,
    PGD-CE on AutoAttack's images and AutoAttack. ``intervals=False``: numbers for clean, PGD-CE (and PGD-CW
    with ``cw``), on all images and on AutoAttack's images, and AutoAttack, then AutoAttack's interval.
    """
    rows = {}
    for name, r in results.items():
        if intervals:
            row = {"clean": accuracy_interval(r["clean_correct"]), f"PGD-{pgd_steps}": accuracy_interval(r["pgd_correct"])}
            if "autoattack_acc" in r:
                row[f"PGD-{pgd_steps}, AutoAttack subset"] = accuracy_interval(r["pgd_correct"][: r["n_autoattack"]])
                row["AutoAttack"] = _aa_interval(r)
            rows[name] = {key: f"{e:.1f} [{lo:.1f}, {hi:.1f}]" for key, (e, lo, hi) in row.items()}
            continue
        columns = {"clean_acc": "clean", "pgd_acc": f"PGD-{pgd_steps} CE"}
        if cw:
            columns["pgd_cw_acc"] = f"PGD-{pgd_steps} CW"
        columns["pgd_acc_on_autoattack_subset"] = f"PGD-{pgd_steps} CE (AA images)"
        if cw:
            columns["pgd_cw_acc_on_autoattack_subset"] = f"PGD-{pgd_steps} CW (AA images)"
        columns["autoattack_acc"] = "AutoAttack"
        rows[name] = {label: round(100 * r[key], 1) if key in r else math.nan for key, label in columns.items()}
        if "autoattack_acc" in r:
            _, low, high = _aa_interval(r)
            rows[name]["AutoAttack 95% CI"] = f"[{low:.1f}, {high:.1f}]"
    return pd.DataFrame(rows).T


def interval_table(rows: Mapping[str, Mapping[str, Interval]], *, digits: int = 2) -> pd.DataFrame:
    """A table with one row per entry of ``rows`` and cells "estimate [low, high]"."""
    return pd.DataFrame({name: {stat: f"{e:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
                                for stat, (e, lo, hi) in cols.items()} for name, cols in rows.items()}).T


def pgd_excess_note(results: Mapping[str, Mapping], *, loss: str = "CE") -> str:
    """A sentence flagging models whose PGD accuracy (``loss`` "CE" or "CW") exceeds their AutoAttack accuracy by
    more than `PGD_EXCESS_FLAG` on the same images."""
    key = "pgd_acc_on_autoattack_subset" if loss == "CE" else "pgd_cw_acc_on_autoattack_subset"
    flagged = [f"{name} ({100 * (r[key] - r['autoattack_acc']):.1f} points)"
               for name, r in results.items()
               if "autoattack_acc" in r and key in r and r[key] - r["autoattack_acc"] > PGD_EXCESS_FLAG + _SLACK]
    if not flagged:
        return "No model's PGD accuracy exceeds its AutoAttack accuracy by more than 5 points on the same images."
    return ("Flagged: PGD overstates the robustness of " + ", ".join(flagged) +
            " compared with AutoAttack on the same images; trust the AutoAttack number.")


def pgd_excess_notes(results: Mapping[str, Mapping]) -> str:
    """`pgd_excess_note` for PGD with the CE loss and with the CW loss."""
    return f"PGD with CE loss: {pgd_excess_note(results)} PGD with CW loss: {pgd_excess_note(results, loss='CW')}"
