"""Chapter 5, the scorecard: every claim's record gathered into one table, with counts for the prose."""

from __future__ import annotations

import json
from typing import Any

from .claims import CHAPTERS, CLAIMS, verdict_label


def _fmt(value: Any) -> str:
    """A measured value for the table: 3 significant digits, lists in brackets, dicts as ``key value`` pairs."""
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_words(k)}: {_fmt(v)}" for k, v in value.items()) + "}"
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _words(key: str) -> str:
    """``robust_kd_at_pct`` -> ``robust kd at pct``: names that wrap in a narrow table column."""
    return str(key).replace("_", " ")


def scorecard_rows(records: list[dict]) -> list[dict]:
    """One row per record (id, verdict, claim, criterion, measured), claims without a record marked not measured."""
    rows = []
    for cid, claim in CLAIMS.items():
        found = [r for r in records if r["id"] == cid]
        rows += [{"id": cid, "verdict": verdict_label(r["holds"]), "claim": f"{r['claim']} ({r['chapter']})",
                  "criterion": r["criterion"],
                  "measured": "; ".join(f"{_words(k)} = {_fmt(v)}" for k, v in r["measured"].items())} for r in found]
        if not found:
            rows.append({"id": cid, "verdict": verdict_label(None), "claim": f"{claim.statement} ({claim.chapter})",
                         "criterion": "(no record)", "measured": ""})
    return rows


def markdown_table(rows: list[dict]) -> str:
    """A Markdown table of ``rows`` (dicts with the same keys), pipes in cells escaped."""
    columns = list(rows[0]) if rows else []
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]).replace("|", "\\|") for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def summary(records: list[dict]) -> dict:
    """Counts for the scorecard's prose: reproduced, measured, all claims, and a note on what is missing.

    A claim counts as reproduced only when every record of it holds.
    """
    measured = {r["id"] for r in records}
    reproduced = {i for i in measured if all(r["holds"] for r in records if r["id"] == i)}
    missing = [i for i in CLAIMS if i not in measured]
    silent = [chapter for chapter in CHAPTERS if chapter not in {r.get("chapter") for r in records}]
    note = "Every claim has a record." if not missing else (
        f"Claims without a record: {', '.join(missing)}. Chapters that wrote no claims at this profile: "
        f"{', '.join(silent) or 'none'} (run them first).")
    return {"n_reproduced": len(reproduced), "n_measured": len(measured), "n_claims": len(CLAIMS),
            "missing_note": note}
