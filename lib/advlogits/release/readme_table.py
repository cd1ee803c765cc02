"""The README's "Results at a glance" table, rendered from the committed records of the ``decisive`` profile (the
headline) and the ``cpu`` profile (the laptop build) beside it.

The block between ``<!-- results:start -->`` and ``<!-- results:end -->`` holds one row per claim record of the
headline's ``results/<profile>/scorecard.json`` (the claim, its verdict, the statistic with its 95% interval and the
threshold in the claim's unit, the other build's verdict and estimate, the chapter), formatted as the scorecard
chapter formats them, and a line on each record's environment from its ``environment.json``. `make results`
rewrites it after recording a build (`advlogits.release.record`);
``tests/test_release_readme_table.py`` checks that the README and the committed JSON agree.

Examples::

    from advlogits.release import readme_table
    readme_table.readme_from_results(root=".")   # the README block again, from the committed JSON only

    python -m advlogits.release.readme_table     # the same, from the command line
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ..buildfiles import ENVIRONMENT, SCORECARD, record_dir
from ..chapters.numbers import claim_threshold
from ..chapters.scorecard import CHAPTER_TITLES, fmt_estimate, markdown_table
from ..chapters.verdicts import VERDICTS, verdict_label
from .readme import Markers, ResultsError, rewrite_block, rewrite_main

# The profiles whose records the README shows: the headline (the design that decides C6 to C8) and, beside it, the
# laptop build.
README_PROFILES: tuple[str, ...] = ("decisive", "cpu")
MARKERS = Markers("<!-- results:start -->", "<!-- results:end -->", "make results")
# Fields every scorecard record must have; a scorecard without them was written by an older version of the book.
RECORD_FIELDS = ("id", "claim", "statistic", "verdict", "estimate", "ci", "threshold", "checks", "chapter")


def build_command(profile: str) -> str:
    """The commands that build and record ``profile``: the advice of every refusal here and in `record`."""
    return f"`make book PROFILE={profile}`, then `make results PROFILE={profile}`"


def _check_record(i: int, r: dict, path: Path, profile: str) -> None:
    missing = [f for f in RECORD_FIELDS if f not in r]
    if missing:
        raise ResultsError(
            f"record {i} ({r.get('id', '?')}) of {path} has no {', '.join(map(repr, missing))}: it was written by "
            f"an older version of the book; rebuild it with {build_command(profile)}"
        )
    if r["verdict"] not in VERDICTS:
        raise ResultsError(
            f"record {i} ({r['id']}) of {path} has verdict {r['verdict']!r}, not one of {', '.join(VERDICTS)}; "
            f"rebuild it with {build_command(profile)}"
        )


def load_scorecard(path: str | Path, *, profile: str) -> list[dict]:
    """The records of a ``scorecard.json``, each checked for the fields `render_block` reads."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"no scorecard at {path}: build the {profile} profile first with {build_command(profile)}")
    try:
        records = json.loads(path.read_text(encoding="utf8"))
    except json.JSONDecodeError as err:
        raise ResultsError(f"{path} is not valid JSON ({err}); rebuild it with {build_command(profile)}") from None
    if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
        raise ResultsError(
            f"{path} must be a non-empty list of claim records; rebuild it with {build_command(profile)}"
        )
    for i, r in enumerate(records):
        _check_record(i, r, path, profile)
    return records


def _chapter_link(chapter: str) -> str:
    return f"[{CHAPTER_TITLES.get(chapter, chapter)}](chapters/{chapter}.ipynb)"


def _day(stamp: str | None) -> str:
    return stamp[:10] if stamp else "unknown date"


def _environment_line(env: dict, profile: str) -> str:
    commit = (env.get("commit") or "unknown")[:7]
    torch_version = env.get("packages", {}).get("torch", "unknown")
    seconds = env.get("wall_seconds")
    took = f"; the chapters executed in {seconds / 60:.1f} minutes" if seconds is not None else ""
    record = f"results/{profile}"
    return (
        f"Profile `{profile}`, commit `{commit}`, built {_day(env.get('build_finished') or env.get('date'))} "
        f"with Python {env.get('python', 'unknown')} and torch {torch_version} on {env.get('device', 'unknown')}"
        f"{took}. Records: [{record}/{SCORECARD}]({record}/{SCORECARD}); environment: "
        f"[{record}/{ENVIRONMENT}]({record}/{ENVIRONMENT})."
    )


def _missing_line(profile: str) -> str:
    return f"No build of the `{profile}` profile has been recorded here yet: {build_command(profile)} write its record."


def _rows(records: list[dict], beside: tuple[str, list[dict]] | None) -> list[dict]:
    """One row per headline record, with the other profile's verdict and estimate of the same claim beside it."""
    others = {r["id"]: r for r in beside[1]} if beside else {}
    rows = []
    for r in records:
        row = {
            "claim": f"**{r['id']}** {r['claim']}",
            "verdict": verdict_label(r["verdict"]),
            "statistic": r["statistic"],
            "estimate [95% CI]": fmt_estimate(r),
            "threshold": claim_threshold(r),
        }
        if beside:
            other = others.get(r["id"])
            row[f"`{beside[0]}` build"] = (
                f"{verdict_label(other['verdict'])}; {fmt_estimate(other)}" if other else "not in its record"
            )
        row["chapter"] = _chapter_link(r["chapter"])
        rows.append(row)
    return rows


def render_block(recorded: dict[str, tuple[list[dict] | None, dict | None]]) -> str:
    """The README's results block, markers included, from ``recorded`` (profile -> its committed records and
    environment, `load_results`; the first profile is the headline): one row per record of the first recorded
    profile with the next one's verdict and estimate beside it, a line on each record's environment, and for a
    profile with no record the commands that write it."""
    sources = ", ".join(f"results/{p}/" for p in recorded)
    lines = [MARKERS.start, f"<!-- written by `make results` from {sources}; do not edit by hand -->"]
    present = [(p, records, env) for p, (records, env) in recorded.items() if records]
    missing = [_missing_line(p) for p, (records, _) in recorded.items() if not records]
    if not present:
        return "\n".join([*lines, " ".join(missing), MARKERS.end])
    head, records, _ = present[0]
    beside = (present[1][0], present[1][1]) if len(present) > 1 else None
    if beside:
        lines += [
            f"The verdicts of the `{head}` profile's record, the book's headline; the `{beside[0]}` build's beside "
            "them.",
            "",
        ]
    lines += [markdown_table(_rows(records, beside)), ""]
    notes = [_environment_line(env or {}, p) for p, _, env in present] + missing
    lines += [line for note in notes for line in (note, "")][:-1]  # one paragraph each
    return "\n".join([*lines, MARKERS.end])


def load_results(root: str | Path, profile: str) -> tuple[list[dict] | None, dict | None]:
    """The committed ``results/<profile>/`` records and environment; ``(None, None)`` where none are recorded."""
    out = record_dir(profile, root)
    if not (out / SCORECARD).is_file():
        return None, None
    records = load_scorecard(out / SCORECARD, profile=profile)
    env_path = out / ENVIRONMENT
    env = json.loads(env_path.read_text(encoding="utf8")) if env_path.is_file() else None
    return records, env


def load_readme_results(root: str | Path) -> dict[str, tuple[list[dict] | None, dict | None]]:
    """`load_results` of every profile the README shows, the headline first (`README_PROFILES`)."""
    return {profile: load_results(root, profile) for profile in README_PROFILES}


def readme_from_results(root: str | Path = ".", *, readme: str | Path | None = None) -> Path:
    """Rewrite the README's results block from the committed ``results/<profile>/`` files of `README_PROFILES`;
    returns the README's path."""
    path = Path(readme) if readme is not None else Path(root) / "README.md"
    return rewrite_block(path, render_block(load_readme_results(root)), MARKERS)


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite the README's results block from the committed record; 1 with one line when it cannot."""
    return rewrite_main("python -m advlogits.release.readme_table", __doc__, readme_from_results, argv)


if __name__ == "__main__":
    sys.exit(main())
