"""Results a reader can see without a build: a profile's scorecard and build environment in ``results/<profile>/``,
and the README's "Results at a glance" table rendered from them; and the README's "How to cite" section, rendered
from ``CITATION.cff``.

`make results` (after `make book`) runs ``python -m advlogits.chapters.results --profile cpu``, which

* copies ``_build/executed/<profile>/scorecard.json`` to ``results/<profile>/scorecard.json``, refusing a missing,
  old-format or out-of-date one with the build command to run;
* writes ``results/<profile>/environment.json``: the commit, the date, Python and the key packages' versions, the
  device, and the chapters' execution time (their papermill durations, summed);
* for the ``cpu`` profile, rewrites the README's block between ``<!-- results:start -->`` and
  ``<!-- results:end -->`` from those two files (`render_block`), so that the README and the committed JSON agree
  (``tests/test_results.py`` checks it).

`make cite` runs ``python -m advlogits.chapters.results --cite-only``, which rewrites the README's block between
``<!-- cite:start -->`` and ``<!-- cite:end -->`` from ``CITATION.cff`` (`render_citation`): a one-line citation
and a BibTeX entry for the paper (the file's ``references``) and for this replication.

Examples::

    from advlogits.chapters import results
    results.record_results("cpu", root=".")   # results/cpu/*.json and the README block
    results.readme_from_results(root=".")     # the README block again, from the committed JSON only
    results.readme_from_citation(root=".")    # the README's citation block, from CITATION.cff
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ..accel import resolve_device
from ..profiles import PROFILES
from ..record_check import cpu_model
from .claims import VERDICTS, verdict_label
from .numbers import claim_threshold
from .scorecard import CHAPTER_TITLES, fmt_estimate, markdown_table

README_PROFILE = "cpu"  # the profile whose results the README shows
START, END = "<!-- results:start -->", "<!-- results:end -->"
CITE_START, CITE_END = "<!-- cite:start -->", "<!-- cite:end -->"
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
# Fields every scorecard record must have; a scorecard without them was written by an older version of the book.
RECORD_FIELDS = ("id", "claim", "statistic", "verdict", "estimate", "ci", "threshold", "checks", "chapter")


class ResultsError(RuntimeError):
    """The build's results cannot be recorded (missing, old or out-of-date build); the message says what to run."""


def _build_command(profile: str) -> str:
    return f"`make book PROFILE={profile}`, then `make results PROFILE={profile}`"


def executed_dir(root: str | Path, profile: str) -> Path:
    """Where `make book PROFILE=<profile>` leaves the executed chapters and ``scorecard.json``."""
    return Path(root) / "_build" / "executed" / profile


def results_dir(root: str | Path, profile: str) -> Path:
    """Where `make results PROFILE=<profile>` writes ``scorecard.json`` and ``environment.json`` (committed)."""
    return Path(root) / "results" / profile


# ---------------------------------------------------------------------------------------------------------------
# reading the build


def load_scorecard(path: str | Path, *, profile: str) -> list[dict]:
    """The records of a built ``scorecard.json``, each checked for the fields `render_block` reads."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"no scorecard at {path}: build the {profile} profile first with {_build_command(profile)}")
    try:
        records = json.loads(path.read_text(encoding="utf8"))
    except json.JSONDecodeError as err:
        raise ResultsError(f"{path} is not valid JSON ({err}); rebuild it with {_build_command(profile)}") from None
    if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
        raise ResultsError(
            f"{path} must be a non-empty list of claim records; rebuild it with {_build_command(profile)}"
        )
    for i, r in enumerate(records):
        missing = [f for f in RECORD_FIELDS if f not in r]
        if missing:
            raise ResultsError(
                f"record {i} ({r.get('id', '?')}) of {path} has no {', '.join(map(repr, missing))}: "
                f"it was written by an older version of the book; rebuild it with "
                f"{_build_command(profile)}"
            )
        if r["verdict"] not in VERDICTS:
            raise ResultsError(
                f"record {i} ({r['id']}) of {path} has verdict {r['verdict']!r}, not one of "
                f"{', '.join(VERDICTS)}; rebuild it with {_build_command(profile)}"
            )
    return records


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
            f"run {_build_command(profile)}"
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


def environment(executed: str | Path, *, profile: str, root: str | Path) -> dict[str, Any]:
    """What produced a build: commit, dates, Python and package versions, device, and the chapters' seconds.

    Versions and the device are read in this process (the venv the build ran in); the seconds are the executed
    chapters' papermill durations, summed into ``wall_seconds`` (``None`` where a chapter has none). The site
    build and an `advlogits run` before the chapters are not part of it.
    """
    root = Path(root)
    timings = chapter_timings(executed)
    wrong = {
        stem: t["parameters"].get("profile")
        for stem, t in timings.items()
        if t["parameters"].get("profile") not in (None, profile)
    }
    if wrong:
        raise ResultsError(
            f"the chapters in {executed} were executed at another profile ({wrong}), not {profile}; "
            f"run {_build_command(profile)}"
        )
    seconds = [t["seconds"] for t in timings.values()]
    ends = [t["end_time"] for t in timings.values() if t["end_time"]]
    requested = next((t["parameters"]["device"] for t in timings.values() if "device" in t["parameters"]), "auto")
    try:
        device = resolve_device(requested)
    except ValueError:
        device = requested
    commit = _git(root, "rev-parse", "HEAD")
    # what `make results` itself rewrites does not count as a local change
    dirty = _git(
        root, "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results", ":(exclude)README.md"
    )
    packages = package_versions()
    return {
        "profile": profile,
        "commit": commit,
        "uncommitted_changes": None if dirty is None else bool(dirty),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # when the results were recorded
        "build_finished": max(ends) if ends else None,  # the last chapter's papermill end time
        "python": platform.python_version(),
        "packages": packages,
        "device": device,  # the build's DEVICE, "auto" resolved on this machine
        "device_requested": requested,
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else None,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "wall_seconds": round(sum(seconds), 1) if seconds and None not in seconds else None,
        "chapter_seconds": {stem: None if s is None else round(s, 1) for stem, s in zip(timings, seconds)},
    }


# ---------------------------------------------------------------------------------------------------------------
# the README block


def _chapter_link(chapter: str) -> str:
    return f"[{CHAPTER_TITLES.get(chapter, chapter)}](chapters/{chapter}.ipynb)"


def _day(stamp: str | None) -> str:
    return stamp[:10] if stamp else "unknown date"


def render_block(records: list[dict] | None, env: dict | None, *, profile: str = README_PROFILE) -> str:
    """The README's results block, markers included: one row per record (the claim, its verdict, the statistic with
    its 95% interval and the threshold in the claim's unit, the chapter) and a line on the environment, formatted as
    the scorecard chapter formats them. Without records, a line
    saying how to record them."""
    lines = [START, f"<!-- written by `make results` from results/{profile}/; do not edit by hand -->"]
    if not records:
        lines.append(
            f"No build of the `{profile}` profile has been recorded here yet: `make book` and then "
            f"`make results` write this table."
        )
        return "\n".join([*lines, END])
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
    env = env or {}
    commit = (env.get("commit") or "unknown")[:7]
    torch_version = env.get("packages", {}).get("torch", "unknown")
    minutes = env.get("wall_seconds")
    took = f"; the chapters executed in {minutes / 60:.1f} minutes" if minutes is not None else ""
    lines += [
        markdown_table(rows),
        "",
        f"Profile `{profile}`, commit `{commit}`, built {_day(env.get('build_finished') or env.get('date'))} "
        f"with Python {env.get('python', 'unknown')} and torch {torch_version} on {env.get('device', 'unknown')}"
        f"{took}. Records: [results/{profile}/scorecard.json](results/{profile}/scorecard.json); environment: "
        f"[results/{profile}/environment.json](results/{profile}/environment.json).",
        END,
    ]
    return "\n".join(lines)


def readme_block(text: str, markers: tuple[str, str] = (START, END)) -> str:
    """The block between ``markers`` (by default the results markers) in ``text``, markers included."""
    first, last = markers
    start, end = text.find(first), text.find(last)
    if start < 0 or end < start or text.count(first) != 1 or text.count(last) != 1:
        raise ResultsError(
            f"README.md must hold one {first} line and, after it, one {last} line: `make "
            f"{'cite' if markers == (CITE_START, CITE_END) else 'results'}` writes between them"
        )
    return text[start : end + len(last)]


def replace_block(text: str, block: str, markers: tuple[str, str] = (START, END)) -> str:
    """``text`` with its block between ``markers`` replaced by ``block``; everything outside them is kept as it is."""
    old = readme_block(text, markers)
    return text.replace(old, block, 1)


def load_results(root: str | Path, profile: str = README_PROFILE) -> tuple[list[dict] | None, dict | None]:
    """The committed ``results/<profile>/`` records and environment; ``(None, None)`` where none are recorded."""
    out = results_dir(root, profile)
    if not (out / "scorecard.json").is_file():
        return None, None
    records = load_scorecard(out / "scorecard.json", profile=profile)
    env_path = out / "environment.json"
    env = json.loads(env_path.read_text(encoding="utf8")) if env_path.is_file() else None
    return records, env


def readme_from_results(root: str | Path = ".", *, readme: str | Path | None = None) -> Path:
    """Rewrite the README's results block from the committed ``results/cpu/`` files; returns the README's path."""
    path = Path(readme) if readme is not None else Path(root) / "README.md"
    text = path.read_text(encoding="utf8")
    new = replace_block(text, render_block(*load_results(root)))
    if new != text:
        path.write_text(new, encoding="utf8")
    return path


# ---------------------------------------------------------------------------------------------------------------
# the README's citation block, from CITATION.cff


def load_citation(root: str | Path = ".") -> dict[str, Any]:
    """The repository's ``CITATION.cff``, parsed, with its ``date-released`` as an ISO date string."""
    import yaml  # PyYAML comes with the book extra (Jupyter Book), like everything that writes the README

    path = Path(root) / "CITATION.cff"
    if not path.is_file():
        raise ResultsError(f"no {path}: the README's citation block is written from it")
    cff = yaml.safe_load(path.read_text(encoding="utf8"))
    if not isinstance(cff, dict) or not all(cff.get(key) for key in ("title", "authors", "date-released")):
        raise ResultsError(f"{path} has no title, authors or date-released: it is not a CITATION.cff for this")
    return {**cff, "date-released": str(cff["date-released"])}


def _author(person: dict[str, Any], *, bibtex: bool = False) -> str:
    """An entity's ``name``, or a person's family name (in BibTeX, "Family, Given")."""
    if "name" in person:
        return "{" + person["name"] + "}" if bibtex else person["name"]
    given = person.get("given-names")
    return f"{person['family-names']}, {given}" if bibtex and given else person["family-names"]


def _authors_sentence(authors: list[dict[str, Any]]) -> str:
    """The authors for a sentence: "A", "A and B", "A, B and C"."""
    names = [_author(a) for a in authors]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _arxiv_id(work: dict[str, Any]) -> str | None:
    """The arXiv identifier (``2108.12001``) among the ``identifiers`` of ``work``, if it has one."""
    for ident in work.get("identifiers", []):
        kind, _, value = str(ident.get("value", "")).partition(":")
        if kind.lower() == "arxiv" and value:
            return value
    return None


def _bibtex_key(work: dict[str, Any], year: str) -> str:
    """A BibTeX key: the first author's family name, the year and the title's first word that is not an article
    (``seguin2021understanding``); for a work by an entity, that word and the year (``advlogits2026``)."""
    words = [w.lower() for w in re.findall(r"[A-Za-z]+", work["title"]) if w.lower() not in ("a", "an", "the")]
    first = work["authors"][0]
    if "name" in first:
        return f"{words[0]}{year}"
    return f"{re.sub(r'[^a-z]', '', first['family-names'].lower())}{year}{words[0]}"


def _citation(work: dict[str, Any], *, kind: str, year: str) -> tuple[str, str]:
    """(one-line citation, BibTeX entry) of ``work``, a CFF file or one of its references."""
    arxiv, version, url = _arxiv_id(work), work.get("version"), work.get("url") or work.get("repository-code")
    line = f"{_authors_sentence(work['authors'])} ({year}). *{work['title']}*."
    line += f" arXiv:{arxiv}." if arxiv else ""
    line += f" Version {version}, {work['license']} licence." if version and work.get("license") else ""
    line += f" <{url}>" if url else ""
    fields = {
        "title": work["title"],
        "author": " and ".join(_author(a, bibtex=True) for a in work["authors"]),
        "journal": f"arXiv preprint arXiv:{arxiv}" if arxiv else None,
        "year": year,
        "version": version,
        "license": work.get("license") if kind == "software" else None,
        "url": url,
    }
    width = max(len(name) for name, value in fields.items() if value)
    entry = ",\n".join(f"  {name:<{width}} = {{{value}}}" for name, value in fields.items() if value)
    return line, f"@{kind}{{{_bibtex_key(work, year)},\n{entry}\n}}"


def render_citation(cff: dict[str, Any]) -> str:
    """The README's citation block, markers included: for each of the file's ``references`` (the paper) and then for
    the file's own work (this replication), a one-line citation and a BibTeX entry."""
    lines = [CITE_START, "<!-- written by `make cite` from CITATION.cff; do not edit by hand -->"]
    intro = "Please cite the paper this book replicates:"
    for work in cff.get("references", []):
        line, entry = _citation(
            work, kind="article" if work.get("type") == "article" else "misc", year=str(work["year"])
        )
        lines += [intro, "", f"> {line}", "", "```bibtex", entry, "```", ""]
        intro = "and:"
    line, entry = _citation(cff, kind="software", year=cff["date-released"][:4])
    if cff.get("references"):
        intro = (
            "and, if you use the replication itself (its code, protocol or results), this repository and the commit "
            "you used:"
        )
    else:
        intro = "Please cite this repository:"
    lines += [intro, "", f"> {line}", "", "```bibtex", entry, "```", CITE_END]
    return "\n".join(lines)


def readme_from_citation(root: str | Path = ".", *, readme: str | Path | None = None) -> Path:
    """Rewrite the README's citation block from ``CITATION.cff``; returns the README's path."""
    path = Path(readme) if readme is not None else Path(root) / "README.md"
    text = path.read_text(encoding="utf8")
    new = replace_block(text, render_citation(load_citation(root)), (CITE_START, CITE_END))
    if new != text:
        path.write_text(new, encoding="utf8")
    return path


# ---------------------------------------------------------------------------------------------------------------
# recording


def record_results(profile: str = README_PROFILE, *, root: str | Path = ".") -> list[Path]:
    """Copy the build's scorecard and write its environment into ``results/<profile>/``; for the README's profile,
    rewrite the README's block too. Returns the paths written."""
    root = Path(root)
    executed = executed_dir(root, profile)
    source = executed / "scorecard.json"
    load_scorecard(source, profile=profile)
    check_fresh(source, root=root, profile=profile)
    env = environment(executed, profile=profile, root=root)
    if env["uncommitted_changes"]:
        raise ResultsError(
            "the working tree has uncommitted changes, so no commit names what computed this build: commit them, "
            f"then run {_build_command(profile)}"
        )
    out = results_dir(root, profile)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scorecard.json").write_bytes(source.read_bytes())
    (out / "environment.json").write_text(json.dumps(env, indent=1) + "\n", encoding="utf8")
    written = [out / "scorecard.json", out / "environment.json"]
    if profile == README_PROFILE and (root / "README.md").is_file():
        written.append(readme_from_results(root))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m advlogits.chapters.results", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=README_PROFILE, choices=PROFILES, help="the built profile (default cpu)")
    parser.add_argument("--root", default=".", help="the repository (default: the current folder)")
    parser.add_argument(
        "--readme-only",
        action="store_true",
        help="only rewrite the README's block from the committed results/cpu/ files",
    )
    parser.add_argument(
        "--cite-only", action="store_true", help="only rewrite the README's citation block from CITATION.cff"
    )
    args = parser.parse_args(argv)
    try:
        if args.cite_only:
            paths = [readme_from_citation(args.root)]
        elif args.readme_only:
            paths = [readme_from_results(args.root)]
        else:
            paths = record_results(args.profile, root=args.root)
    except ResultsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print("==> wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
