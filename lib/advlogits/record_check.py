"""A build's scorecard against its profile's committed record (``results/<profile>/``), in one line.

Byte identity across kinds of CPU is not to be had: vector units of different widths add floating-point numbers in
different orders, so trained weights, and every number built on them, differ in their last bits. So the line says,
for every comparison of every claim, whether the build's estimate is identical to the recorded one, differs but lies
within the record's 95% interval, or lies outside it (by how much); it names every verdict, of a claim or of one of
its comparisons, that changed; and where this machine's CPU is not the record's, it names both and the record's
commit. A profile without a committed record gets "no committed record for profile X".

`make book` (and `make site`) print the line after the site is built, and the scorecard chapter shows it::

    python -m advlogits.record_check --profile cpu --scorecard _build/executed/cpu/scorecard.json

exits 0 whatever the line says: a difference never fails a build. ``advlogits scorecard --against results/cpu``
prints it on demand and exits 1 when a verdict changed.

Examples::

    from advlogits import record_check
    record_check.build_line("_build/executed/cpu/scorecard.json", "cpu")   # the line, never an error
    comparison = record_check.compare_folders("_build/executed/cpu/scorecard.json", "results/cpu")
    comparison.verdicts_match, comparison.line()
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .buildfiles import ENVIRONMENT, SCORECARD, record_dir
from .paths import repository_root

IDENTICAL, WITHIN, OUTSIDE = "identical", "within", "outside"
LISTED = 3  # differences named in the line; the rest are counted


class RecordError(ValueError):
    """A scorecard or record that cannot be compared (missing, not JSON, an older format); the message says why."""


def cpu_model() -> str:
    """This machine's CPU as ``/proc/cpuinfo`` names it (else the platform's name for it)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ---------------------------------------------------------------------------------------------------------------
# reading


def load_claims(path: str | Path, *, fix: str) -> list[dict]:
    """The claim records of a ``scorecard.json``, each with an id, a verdict and its comparisons (``checks``);
    ``fix`` says what writes a new one, for the error of a missing or old-format file."""
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"no scorecard at {path}: {fix}")
    try:
        records = json.loads(path.read_text(encoding="utf8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RecordError(f"{path} is not valid JSON ({err}): {fix}") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise RecordError(f"{path} is not a list of claim records: {fix}")
    seen: set[str] = set()
    for i, r in enumerate(records):
        missing = [f for f in ("id", "verdict", "checks") if f not in r]
        if missing or not isinstance(r["checks"], dict):
            what = f"no {', '.join(map(repr, missing))}" if missing else "'checks' that is not a mapping"
            raise RecordError(
                f"record {i} ({r.get('id', '?')}) of {path} has {what}: it was written by an older version of the "
                f"book; {fix}"
            )
        if r["id"] in seen:
            raise RecordError(f"{path} has claim {r['id']} twice: {fix}")
        seen.add(r["id"])
    return records


def load_environment(folder: str | Path) -> dict[str, Any]:
    """A record's ``environment.json`` (commit, CPU, ...), or an empty mapping where there is none."""
    path = Path(folder) / ENVIRONMENT
    if not path.is_file():
        return {}
    try:
        env = json.loads(path.read_text(encoding="utf8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RecordError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(env, dict):
        raise RecordError(f"{path} is not a mapping of the record's environment")
    return env


# ---------------------------------------------------------------------------------------------------------------
# comparing


@dataclass(frozen=True)
class CheckDiff:
    """One comparison of one claim, as built and as recorded (None where one side lacks it)."""

    claim: str
    name: str
    estimate: Any
    recorded: Any
    ci: tuple[float, float] | None
    verdict: str | None
    recorded_verdict: str | None

    @property
    def place(self) -> str:
        """IDENTICAL, WITHIN the record's 95% interval or OUTSIDE it (no interval, or no estimate on one side)."""
        return place(self.estimate, self.recorded, self.ci)

    @property
    def verdict_changed(self) -> bool:
        return self.verdict != self.recorded_verdict

    @property
    def label(self) -> str:
        return f"{self.claim} {self.name}"

    def shift(self) -> float | None:
        """How far the estimate moved from the recorded one, as a fraction of the interval's half-width."""
        if self.ci is None or not _number(self.estimate) or not _number(self.recorded):
            return None
        half = (self.ci[1] - self.ci[0]) / 2
        return abs(self.estimate - self.recorded) / half if half > 0 else None

    def where(self) -> str:
        """The estimate against the recorded one with its interval, e.g. "0.2, recorded 0.128 [0.111, 0.146]"."""
        ci = f" [{_fmt(self.ci[0])}, {_fmt(self.ci[1])}]" if self.ci else ""
        return f"{_fmt(self.estimate)}, recorded {_fmt(self.recorded)}{ci}"


@dataclass(frozen=True)
class ClaimDiff:
    """One claim's verdict as built and as recorded (None: missing on that side) and its comparisons."""

    id: str
    verdict: str | None
    recorded_verdict: str | None
    checks: tuple[CheckDiff, ...]

    @property
    def verdict_changed(self) -> bool:
        return self.verdict != self.recorded_verdict


@dataclass(frozen=True)
class Comparison:
    """A build's scorecard against a record; `line` says it in one line."""

    claims: tuple[ClaimDiff, ...]
    record_cpu: str | None = None
    record_commit: str | None = None
    cpu: str | None = None

    @property
    def checks(self) -> list[CheckDiff]:
        return [c for claim in self.claims for c in claim.checks]

    @property
    def verdicts_match(self) -> bool:
        """Every claim's and every comparison's verdict is the recorded one (and no claim is missing or new)."""
        return not any(c.verdict_changed for c in self.claims) and not any(c.verdict_changed for c in self.checks)

    def line(self) -> str:
        """The comparison in one line: the verdicts that match (or what changed), where the estimates lie, and the
        record's CPU and commit against this machine's where the CPUs differ."""
        claims, checks = self.claims, self.checks
        same = sum(not c.verdict_changed for c in claims)
        if self.verdicts_match:
            head = f"reproduces the record: {same} of {len(claims)} verdicts"
        else:
            same_checks = sum(not c.verdict_changed for c in checks)
            changed = [_verdict_change(c.id, c) for c in claims if c.verdict_changed]
            changed += [_verdict_change(f"{c.label}", c) for c in checks if c.verdict_changed]
            head = (
                f"differs from the record: {same} of {len(claims)} claims' verdicts and {same_checks} of "
                f"{len(checks)} comparisons' verdicts match (changed: {_listed(changed)})"
            )
        return f"{head}, {self._estimates()}{self._machines()}"

    def _estimates(self) -> str:
        compared = [c for c in self.checks if c.verdict is not None and c.recorded_verdict is not None]
        by_place = {p: [c for c in compared if c.place == p] for p in (IDENTICAL, WITHIN, OUTSIDE)}
        if len(by_place[IDENTICAL]) == len(compared):
            return "every estimate identical"
        parts = [f"{len(by_place[IDENTICAL])} of {len(compared)} estimates identical"]
        within = by_place[WITHIN]
        if within:
            largest = max(within, key=lambda c: c.shift() or 0.0)
            parts.append(
                f"{len(within)} within the record's 95% intervals (the largest move: {largest.label} "
                f"{largest.where()}, {largest.shift():.0%} of the half-width)"
            )
        outside = by_place[OUTSIDE]
        if outside:
            parts.append(f"{len(outside)} outside them ({_listed([f'{c.label}: {c.where()}' for c in outside])})")
        return ", ".join(parts)

    def _machines(self) -> str:
        if self.record_cpu and self.cpu and self.record_cpu == self.cpu:
            return ""
        commit = (self.record_commit or "unknown")[:7]
        record_cpu, cpu = self.record_cpu or "an unnamed CPU", self.cpu or "an unnamed CPU"
        return f"; the record (commit {commit}) was computed on {record_cpu}, this build on {cpu}"

    def details(self) -> list[str]:
        """One line per claim that differs from the record in a verdict or an estimate."""
        out = []
        for claim in self.claims:
            moved = [c for c in claim.checks if c.verdict_changed or c.place != IDENTICAL]
            if not claim.verdict_changed and not moved:
                continue
            verdict = (
                _verdict_change("verdict", claim) if claim.verdict_changed else f"verdict {claim.verdict} (as recorded)"
            )
            items = [
                _verdict_change(c.name, c) if c.verdict_changed else f"{c.name} {c.place}: {c.where()}" for c in moved
            ]
            out.append(f"{claim.id}: {'; '.join([verdict, *items])}")
        return out


def _verdict_change(what: str, diff: CheckDiff | ClaimDiff) -> str:
    if diff.verdict is None:
        return f"{what} missing from this build (recorded {diff.recorded_verdict})"
    if diff.recorded_verdict is None:
        return f"{what} {diff.verdict}, not in the record"
    return f"{what} {diff.verdict}, recorded {diff.recorded_verdict}"


def _listed(items: list[str]) -> str:
    shown = "; ".join(items[:LISTED])
    return shown + (f"; and {len(items) - LISTED} more" if len(items) > LISTED else "")


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _fmt(x: Any) -> str:
    return f"{x:.3g}" if _number(x) else str(x)


def _same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN (a record may hold NaN for an undefined estimate)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _interval(ci: Any) -> tuple[float, float] | None:
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_number(x) for x in ci):
        return float(ci[0]), float(ci[1])
    return None


def place(estimate: Any, recorded: Any, ci: tuple[float, float] | None) -> str:
    """IDENTICAL when ``estimate`` is exactly the recorded one, WITHIN when it differs but lies in the record's 95%
    interval ``ci``, else OUTSIDE (also where the record has no interval or one side has no number)."""
    if _same(estimate, recorded):
        return IDENTICAL
    if ci is not None and _number(estimate) and ci[0] <= estimate <= ci[1]:
        return WITHIN
    return OUTSIDE


def _check_diffs(claim: str, built: dict, recorded: dict) -> tuple[CheckDiff, ...]:
    names = [*recorded, *(n for n in built if n not in recorded)]
    out = []
    for name in names:
        b, r = built.get(name) or {}, recorded.get(name) or {}
        out.append(
            CheckDiff(
                claim=claim,
                name=name,
                estimate=b.get("estimate"),
                recorded=r.get("estimate"),
                ci=_interval(r.get("ci")),
                verdict=b.get("verdict") if name in built else None,
                recorded_verdict=r.get("verdict") if name in recorded else None,
            )
        )
    return tuple(out)


def compare(built: list[dict], recorded: list[dict], env: dict | None = None, *, cpu: str | None = None) -> Comparison:
    """Compare a build's claim records with the recorded ones, claim by claim (by id) and comparison by comparison
    (by name); ``env`` is the record's environment (its ``cpu`` and ``commit``), ``cpu`` this machine's."""
    by_id = {r["id"]: r for r in built}
    rec_by_id = {r["id"]: r for r in recorded}
    claims = []
    for cid in [*rec_by_id, *(i for i in by_id if i not in rec_by_id)]:
        b, r = by_id.get(cid, {}), rec_by_id.get(cid, {})
        claims.append(
            ClaimDiff(
                id=cid,
                verdict=b.get("verdict"),
                recorded_verdict=r.get("verdict"),
                checks=_check_diffs(cid, b.get("checks", {}), r.get("checks", {})),
            )
        )
    env = env or {}
    return Comparison(tuple(claims), record_cpu=env.get("cpu"), record_commit=env.get("commit"), cpu=cpu)


def compare_folders(scorecard: str | Path, record: str | Path, *, profile: str | None = None) -> Comparison:
    """Compare the build's ``scorecard`` with the committed record in folder ``record`` (its ``scorecard.json`` and
    ``environment.json``); a record of another profile than ``profile`` is refused."""
    record = Path(record)
    name = profile or "PROFILE"
    built = load_claims(scorecard, fix=f"build it with `make book PROFILE={name}`")
    recorded = load_claims(
        record / SCORECARD,
        fix=f"`make book PROFILE={name}` and then `make results PROFILE={name}` record one",
    )
    env = load_environment(record)
    if profile is not None and env.get("profile") not in (None, profile):
        raise RecordError(f"the record in {record} is of profile {env['profile']}, not {profile}")
    return compare(built, recorded, env, cpu=cpu_model())


def record_folder(profile: str, root: str | Path | None = None) -> Path | None:
    """Where ``profile``'s record is committed (``results/<profile>/`` of the checkout), or None outside one."""
    root = Path(root) if root is not None else repository_root()
    return None if root is None else record_dir(profile, root)


def build_line(scorecard: str | Path, profile: str, *, root: str | Path | None = None) -> str:
    """The build's line: the comparison with ``profile``'s committed record; "no committed record for profile X"
    where there is none, and what is wrong with a record that cannot be compared. Never raises RecordError."""
    folder = record_folder(profile, root)
    if folder is None or not (folder / SCORECARD).is_file():
        return f"no committed record for profile {profile}"
    try:
        return compare_folders(scorecard, folder, profile=profile).line()
    except RecordError as err:
        return f"not compared with the record: {err}"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the build's line (`build_line`); exit 0 whatever it says."""
    parser = argparse.ArgumentParser(prog="python -m advlogits.record_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", required=True, help="the built profile, whose results/PROFILE/ is the record")
    parser.add_argument("--scorecard", required=True, help="the build's scorecard.json")
    parser.add_argument("--root", default=None, help="the checkout holding results/ (default: the one around here)")
    args = parser.parse_args(argv)
    print(build_line(args.scorecard, args.profile, root=args.root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
