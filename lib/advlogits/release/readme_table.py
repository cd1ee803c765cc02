"""The README's "Results at a glance" table, rendered from the committed record of the ``cpu`` profile.

The block between ``<!-- results:start -->`` and ``<!-- results:end -->`` holds one row per claim record of
``results/cpu/scorecard.json`` (the claim, its verdict, the statistic with its 95% interval and the threshold in the
claim's unit, the chapter), formatted as the scorecard chapter formats them, and a line on the environment from
``results/cpu/environment.json``. `make results` rewrites it after recording a build (`advlogits.release.record`);
``tests/test_release_readme_table.py`` checks that the README and the committed JSON agree.

Examples::

    from advlogits.release import readme_table
    readme_table.readme_from_results(root=".")   # the README block again, from the committed JSON only

    python -m advlogits.release.readme_table     # the same, from the command line
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ..buildfiles import ENVIRONMENT, SCORECARD, record_dir
from ..chapters.claims import VERDICTS, verdict_label
from ..chapters.numbers import claim_threshold
from ..chapters.scorecard import CHAPTER_TITLES, fmt_estimate, markdown_table
from .readme import Markers, ResultsError, rewrite_block

README_PROFILE = "cpu"  # the profile whose results the README shows
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


def render_block(records: list[dict] | None, env: dict | None, *, profile: str = README_PROFILE) -> str:
    """The README's results block, markers included: one row per record and a line on the environment; without
    records, a line saying how to record them."""
    lines = [MARKERS.start, f"<!-- written by `make results` from results/{profile}/; do not edit by hand -->"]
    if not records:
        lines.append(
            f"No build of the `{profile}` profile has been recorded here yet: `make book` and then "
            f"`make results` write this table."
        )
        return "\n".join([*lines, MARKERS.end])
    rows = [
        {
            "claim": f"**{r['id']}** {r['claim']}",
            "verdict": verdict_label(r["verdict"]),
            "statistic": r["statistic"],
            "estimate [95% CI]": fmt_estimate(r),
            "threshold": claim_threshold(r),
            "chapter": _chapter_link(r["chapter"]),
        }
        for r in records
    ]
    return "\n".join([*lines, markdown_table(rows), "", _environment_line(env or {}, profile), MARKERS.end])


def load_results(root: str | Path, profile: str = README_PROFILE) -> tuple[list[dict] | None, dict | None]:
    """The committed ``results/<profile>/`` records and environment; ``(None, None)`` where none are recorded."""
    out = record_dir(profile, root)
    if not (out / SCORECARD).is_file():
        return None, None
    records = load_scorecard(out / SCORECARD, profile=profile)
    env_path = out / ENVIRONMENT
    env = json.loads(env_path.read_text(encoding="utf8")) if env_path.is_file() else None
    return records, env


def readme_from_results(root: str | Path = ".", *, readme: str | Path | None = None) -> Path:
    """Rewrite the README's results block from the committed ``results/cpu/`` files; returns the README's path."""
    path = Path(readme) if readme is not None else Path(root) / "README.md"
    return rewrite_block(path, render_block(*load_results(root)), MARKERS)


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite the README's results block from the committed record; 1 with one line when it cannot."""
    parser = argparse.ArgumentParser(
        prog="python -m advlogits.release.readme_table", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--root", default=".", help="the repository (default: the current folder)")
    args = parser.parse_args(argv)
    try:
        path = readme_from_results(args.root)
    except ResultsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"==> wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
