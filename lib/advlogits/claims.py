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
