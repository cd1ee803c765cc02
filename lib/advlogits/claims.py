"""Claim records: each chapter writes the claims it tests, the scorecard gathers them.

A record is ``{"id": "C1", "claim": ..., "criterion": ..., "measured": {...}, "holds": bool, "chapter": ...}``.
Chapters write ``<claims_dir>/<chapter>.json``; the scorecard reads every such file into
``<executed_dir>/scorecard.json``. The criteria are fixed in the claims issue and PAPER.md; they are never
tuned after seeing results.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from .store import atomic_write_bytes

CLAIM_IDS = ("C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8")


def executed_dir(profile: str) -> Path:
    """Where the chapters of ``profile`` are executed: ``$ADVLOGITS_EXECUTED_DIR`` or ``<repo>/_build/executed/<profile>``.

    The Makefile sets the variable; without it, the path is found from the working directory (papermill runs
    chapters from ``chapters/``, so the repository root is its parent when a ``_toc.yml`` is there).
    """
    if os.environ.get("ADVLOGITS_EXECUTED_DIR"):
        return Path(os.environ["ADVLOGITS_EXECUTED_DIR"])
    here = Path.cwd()
    root = next((p for p in (here, *here.parents) if (p / "_toc.yml").exists()), here)
    return root / "_build" / "executed" / profile


def claims_dir(profile: str) -> Path:
    return executed_dir(profile) / "claims"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def claim(id: str, *, claim: str, criterion: str, measured: dict, holds: bool) -> dict:
    """One claim record, validated (known id, boolean verdict, JSON-able measurements)."""
    if id not in CLAIM_IDS:
        raise ValueError(f"id must be one of {', '.join(CLAIM_IDS)} (got {id!r})")
    return {"id": id, "claim": claim, "criterion": criterion, "measured": _jsonable(measured), "holds": bool(holds)}


def write_claims(profile: str, chapter: str, records: list[dict]) -> Path:
    """Write a chapter's claim records atomically to ``claims/<chapter>.json``; returns the path."""
    path = claims_dir(profile) / f"{chapter}.json"
    payload = [{**r, "chapter": chapter} for r in records]
    atomic_write_bytes(json.dumps(payload, indent=1).encode(), path)
    return path


def gather(profile: str) -> list[dict]:
    """Every chapter's claim records of ``profile``, sorted by claim id (then chapter)."""
    records = []
    for path in sorted(claims_dir(profile).glob("*.json")):
        records.extend(json.loads(path.read_text()))
    return sorted(records, key=lambda r: (r["id"], r.get("chapter", "")))


def write_scorecard(profile: str) -> Path:
    """Gather every claim record of ``profile`` into ``scorecard.json`` (atomically); returns the path."""
    path = executed_dir(profile) / "scorecard.json"
    atomic_write_bytes(json.dumps(gather(profile), indent=1).encode(), path)
    return path


# The claims as the introduction states them, and the chapter expected to test each.
STATEMENTS = {
    "C1": "AT models have lower max logits than ST models",
    "C2": "AT models have smaller logit gaps than ST models",
    "C3": "theory explains the smaller max logits and gaps",
    "C4": "AT and ST models differ on which samples get high or low confidence",
    "C5": "the samples with the largest confidence difference differ visibly",
    "C6": "distilling an AT teacher on clean inputs gives the student robustness",
    "C7": "information about incorrect classes is essential",
    "C8": "sample-wise confidences matter",
}
CHAPTERS = {"02_logit_distributions": ("C1", "C2", "C3"), "03_sample_confidence": ("C4", "C5"),
            "04_distillation": ("C6", "C7", "C8")}
CHAPTER_OF = {cid: chapter for chapter, ids in CHAPTERS.items() for cid in ids}
VERDICT = {True: "✓ reproduced", False: "✗ not reproduced"}


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
    for cid, statement in STATEMENTS.items():
        found = [r for r in records if r["id"] == cid]
        rows += [{"id": cid, "verdict": VERDICT[r["holds"]], "claim": f"{r['claim']} ({r['chapter']})",
                  "criterion": r["criterion"],
                  "measured": "; ".join(f"{_words(k)} = {_fmt(v)}" for k, v in r["measured"].items())} for r in found]
        if not found:
            rows.append({"id": cid, "verdict": "– not measured", "claim": f"{statement} ({CHAPTER_OF[cid]})",
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
    missing = [i for i in STATEMENTS if i not in measured]
    silent = [chapter for chapter in CHAPTERS if chapter not in {r.get("chapter") for r in records}]
    note = "Every claim has a record." if not missing else (
        f"Claims without a record: {', '.join(missing)}. Chapters that wrote no claims at this profile: "
        f"{', '.join(silent) or 'none'} (run them first).")
    return {"n_reproduced": len(reproduced), "n_measured": len(measured), "n_claims": len(STATEMENTS),
            "missing_note": note}
