"""The verbs of the chapters: ``advlogits chapter`` executes one with papermill as a hand run, into
``_build/hand-runs/<profile>`` and never among the build's; ``advlogits scorecard`` prints a built profile's
scorecard, or compares it with a committed record."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..buildfiles import SCORECARD, build_dir, claims_path, hand_run_dir, papermill_command
from ..chapters.numbers import NBSP, claim_estimate, claim_threshold
from ..paths import absolute_environment
from ..paths import repository_root as find_repository
from ..record_check import RecordError, compare_folders
from .errors import fail
from .profile_args import resolve_profile

if TYPE_CHECKING:
    from ..profiles import Profile

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def repository_root() -> Path:
    """The repository holding the chapters: the working directory or a parent with ``_toc.yml``."""
    root = find_repository()
    if root is None:
        fail("the chapters are not here: run `advlogits chapter` inside the repository (a folder with _toc.yml)")
    return root


def _chapter_name(root: Path, name: str) -> str:
    chapters = sorted(p.stem for p in (root / "chapters").glob("*.ipynb"))
    matches = [c for c in chapters if c == name or c.split("_", 1)[0] == name or c.split("_", 1)[-1] == name]
    if len(matches) != 1:
        fail(f"argument NAME: must be one of {', '.join(chapters)} (got {name!r})")
    return matches[0]


def _check_store_for_chapter(profile: Profile) -> None:
    """A chapter on a store it cannot write needs every unit stored: else refuse in one line before it runs."""
    from ..fileio import StoreError
    from ..pipeline import plan as plan_module
    from ..pipeline.executors import PlanSpec
    from ..store import Store

    store = Store()
    try:
        store.check_writable()
    except StoreError as err:
        units = PlanSpec(profile, (), None).units()
        missing = sum(1 for u in units if plan_module.state(u, store) != "stored")
        if missing:
            raise StoreError(f"{err} ({missing} of the book's {len(units)} units are missing from it)") from err


def _papermill_error(stderr: str) -> str:
    """The last line of a failed papermill run's output that names an error (``Name: message``)."""
    lines = [ANSI.sub("", line).strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line and not set(line) <= set("-^ ")]
    named = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b", line)]
    return (named or lines or ["no output"])[-1]


def cmd_chapter(args: argparse.Namespace) -> int:
    """`advlogits chapter NAME`: papermill executes the chapter into the hand runs' folder; exit status 1 with the
    error's last line when it fails."""
    root = repository_root()
    chapter = _chapter_name(root, args.name)
    profile = resolve_profile(args)
    _check_store_for_chapter(profile)
    out = hand_run_dir(profile.name, root)
    claims = claims_path(out, chapter)
    claims.unlink(missing_ok=True)  # the claims of this chapter are those of this run, or none
    out.mkdir(parents=True, exist_ok=True)
    parameters = {"profile": profile.name, "device": args.device or "auto", "seed": args.seed, "eps": args.eps}
    parameters = {k: v for k, v in parameters.items() if v is not None}
    if args.set:
        parameters["overrides"] = dict(item.split("=", 1) for item in args.set)
    cmd = papermill_command(root, chapter, out, parameters, flags=("--no-progress-bar",))
    env = absolute_environment()  # the chapter runs in chapters/: every path setting made absolute
    env.pop("ADVLOGITS_EXECUTED_DIR", None)  # a hand run: the build's folder is the build's alone
    print(f"hand run of {chapter} (profile {profile.name}) into {out}/", file=sys.stderr)
    if args.verbose:
        returncode = subprocess.run(cmd, env=env).returncode
        stderr = ""
    else:
        proc = subprocess.run(cmd, env=env, stderr=subprocess.PIPE, text=True)
        returncode, stderr = proc.returncode, proc.stderr or ""
    if returncode != 0:
        claims.unlink(missing_ok=True)  # a failed chapter leaves no claims behind
        print(
            f"advlogits: error: chapter {chapter} failed: {_papermill_error(stderr)} (the partly executed notebook "
            f"is {out / f'{chapter}.ipynb'}; --verbose shows the traceback)",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_scorecard(args: argparse.Namespace) -> int:
    """`advlogits scorecard`: one line per claim of the built (or hand-run) scorecard, or with --against its
    comparison with a committed record."""
    profile = args.profile
    folder = hand_run_dir(profile, repository_root()) if args.hand_runs else build_dir(profile)
    path = folder / SCORECARD
    if not path.exists():
        fail(
            f"no scorecard at {path}: build the book first (make book PROFILE={profile}) or run "
            f"`advlogits chapter 05_scorecard --profile {profile}` and read it with --hand-runs"
        )
    if args.against is not None:
        return _against(path, args.against, profile)
    records = json.loads(path.read_text())
    print(f"{'id':<4} {'verdict':<15} {'estimate [95% CI]':<30} {'threshold':<13} chapter")
    for r in records:
        number, threshold = (text.replace(NBSP, " ") for text in (claim_estimate(r), claim_threshold(r)))
        print(f"{r['id']:<4} {r['verdict']:<15} {number:<30} {threshold:<13} {r['chapter']}")
    return 0


def _against(scorecard: Path, record: Path, profile: str) -> int:
    """`advlogits scorecard --against`: the build's scorecard against a committed record, in one line (then one
    line per claim that differs); 0 when every verdict is the recorded one, 1 when one changed."""
    if not (record / "scorecard.json").is_file():
        fail(
            f"argument --against: no committed record at {record / 'scorecard.json'}: give a folder such as "
            f"results/{profile}, which `make results PROFILE={profile}` writes after `make book PROFILE={profile}`"
        )
    try:
        comparison = compare_folders(scorecard, record, profile=profile)
    except RecordError as err:
        fail(f"argument --against: {err}")
    print(comparison.line())
    for line in comparison.details():
        print(f"  {line}")
    return 0 if comparison.verdicts_match else 1
