"""A build recorded where a reader sees it without building: ``results/<profile>/``, committed.

`make results` (after `make book`) runs ``python -m advlogits.release.record --profile cpu``, which

* copies the build's ``scorecard.json`` (`advlogits.buildfiles.build_dir`) to ``results/<profile>/scorecard.json``,
  refusing a missing, old-format or out-of-date one with the build command to run;
* writes ``results/<profile>/environment.json``: the commit, the date, Python and the key packages' versions, the
  device, and the chapters' execution time (their papermill durations, summed);
* for the profiles the README shows (``decisive`` and ``cpu``), rewrites the README's results table from their
  files (`advlogits.release.readme_table`).

Examples::

    from advlogits.release import record
    record.record_results("cpu", root=".")   # results/cpu/*.json and the README's table
    record.versions_sentence()               # "Python 3.12.3, advlogits 0.1.0, torch 2.5.1, ..."
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ..accel import resolve_device
from ..buildfiles import ENVIRONMENT, SCORECARD, build_dir, record_dir
from ..fileio import atomic_write_bytes
from ..profiles import PROFILES
from ..record_check import cpu_model
from .readme import ResultsError
from .readme_table import README_PROFILES, build_command, load_scorecard, readme_from_results

# Versions recorded in environment.json; a package that is not installed (ray, without the cluster extra) is left out.
KEY_PACKAGES = (
    "advlogits",
    "torch",
    "torchvision",
    "numpy",
    "pandas",
    "pyautoattack",
    "jupyter-book",
    "papermill",
    "ray",
)


def check_fresh(scorecard: str | Path, *, root: str | Path, profile: str) -> None:
    """Refuse a scorecard older than the library, a chapter or the set-up (``pyproject.toml``, the lock): `make book`
    would execute the chapters again, so the scorecard is not what the recorded commit computes."""
    scorecard, root = Path(scorecard), Path(root)
    sources = [
        *root.glob("lib/advlogits/**/*.py"),
        *root.glob("chapters/*.ipynb"),
        *root.glob("pyproject.toml"),
        *root.glob("requirements/lock.txt"),
    ]
    if not sources:
        return
    newest = max(sources, key=lambda p: p.stat().st_mtime)
    if newest.stat().st_mtime > scorecard.stat().st_mtime:
        raise ResultsError(
            f"{scorecard} is older than {newest.relative_to(root)}: the {profile} build is out of date; "
            f"run {build_command(profile)}"
        )


def chapter_timings(executed: str | Path) -> dict[str, dict]:
    """Each executed chapter's papermill metadata: ``{stem: {"seconds", "end_time", "parameters"}}``."""
    out = {}
    for path in sorted(Path(executed).glob("*.ipynb")):
        meta = json.loads(path.read_text(encoding="utf8")).get("metadata", {}).get("papermill", {})
        out[path.stem] = {
            "seconds": meta.get("duration"),
            "end_time": meta.get("end_time"),
            "parameters": meta.get("parameters", {}),
        }
    return out


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def package_versions() -> dict[str, str]:
    """The installed versions of `KEY_PACKAGES` (those installed), read from their metadata."""
    packages = {}
    for name in KEY_PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return packages


def versions_sentence() -> str:
    """Python and the key packages' versions in one line, for the pages a build produces."""
    return ", ".join([f"Python {platform.python_version()}", *(f"{k} {v}" for k, v in package_versions().items())])


def _device(timings: dict[str, dict]) -> tuple[str, str]:
    """(the device the chapters ran on, resolved on this machine; the DEVICE they were given)."""
    requested = next((t["parameters"]["device"] for t in timings.values() if "device" in t["parameters"]), "auto")
    try:
        return resolve_device(requested), requested
    except ValueError:
        return requested, requested


def environment(executed: str | Path, *, profile: str, root: str | Path) -> dict[str, Any]:
    """What produced a build: commit, dates, Python and package versions, device, and the chapters' seconds.

    Versions and the device are read in this process (the venv the build ran in); the seconds are the executed
    chapters' papermill durations, summed into ``wall_seconds`` (``None`` where a chapter has none). The site
    build and an `advlogits run` before the chapters are not part of it.
    """
    root = Path(root)
    timings = chapter_timings(executed)
    ran_at = {stem: t["parameters"].get("profile") for stem, t in timings.items()}
    wrong = {stem: name for stem, name in ran_at.items() if name not in (None, profile)}
    if wrong:
        raise ResultsError(
            f"the chapters in {executed} were executed at another profile ({wrong}), not {profile}; "
            f"run {build_command(profile)}"
        )
    seconds = [t["seconds"] for t in timings.values()]
    ends = [t["end_time"] for t in timings.values() if t["end_time"]]
    device, requested = _device(timings)
    # what `make results` itself rewrites does not count as a local change
    dirty = _git(
        root, "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results", ":(exclude)README.md"
    )
    return {
        "profile": profile,
        "commit": _git(root, "rev-parse", "HEAD"),
        "uncommitted_changes": None if dirty is None else bool(dirty),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # when the results were recorded
        "build_finished": max(ends) if ends else None,  # the last chapter's papermill end time
        "python": platform.python_version(),
        "packages": package_versions(),
        "device": device,  # the build's DEVICE, "auto" resolved on this machine
        "device_requested": requested,
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else None,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "wall_seconds": round(sum(seconds), 1) if seconds and None not in seconds else None,
        "chapter_seconds": {stem: None if s is None else round(s, 1) for stem, s in zip(timings, seconds)},
    }


def record_results(profile: str = "cpu", *, root: str | Path = ".") -> list[Path]:
    """Copy the build's scorecard and write its environment into ``results/<profile>/``; for a profile the README
    shows (`README_PROFILES`), rewrite the README's table too. Returns the paths written."""
    root = Path(root)
    executed = build_dir(profile, root)
    source = executed / SCORECARD
    load_scorecard(source, profile=profile)
    check_fresh(source, root=root, profile=profile)
    env = environment(executed, profile=profile, root=root)
    if env["uncommitted_changes"]:
        raise ResultsError(
            "the working tree has uncommitted changes, so no commit names what computed this build: commit them, "
            f"then run {build_command(profile)}"
        )
    out = record_dir(profile, root)
    atomic_write_bytes(source.read_bytes(), out / SCORECARD)
    atomic_write_bytes((json.dumps(env, indent=1) + "\n").encode("utf8"), out / ENVIRONMENT)
    written = [out / SCORECARD, out / ENVIRONMENT]
    if profile in README_PROFILES and (root / "README.md").is_file():
        written.append(readme_from_results(root))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Record the build of ``--profile``; 1 with one line when it cannot."""
    parser = argparse.ArgumentParser(prog="python -m advlogits.release.record", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu", choices=PROFILES, help="the built profile (default cpu)")
    parser.add_argument("--root", default=".", help="the repository (default: the current folder)")
    args = parser.parse_args(argv)
    try:
        paths = record_results(args.profile, root=args.root)
    except ResultsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print("==> wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
