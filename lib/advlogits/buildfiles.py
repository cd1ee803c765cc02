"""The build's files on disk: where the build, a hand run and the committed record keep them, and the claim files.

::

    <repo>/_build/executed/<profile>/    the build's folder (`make book`), `build_dir`
        <chapter>.ipynb                  each executed chapter
        claims/<chapter>.json            each chapter's claim records, with the parameters it ran with
        scorecard.json                   every claim record, gathered by the scorecard chapter
    <repo>/_build/hand-runs/<profile>/   the same for chapters run by hand (papermill, Jupyter, `advlogits chapter`)
    <repo>/results/<profile>/            the committed record: scorecard.json, environment.json (`make results`)

Only the build writes into its own folder: the Makefile sets ``$ADVLOGITS_EXECUTED_DIR`` to it for the chapters it
executes (`is_build`). A chapter run without it is a hand run: it writes into the hand-run folder and says so in
one printed line, so it never overwrites the build's claims (`run_dir`). The repository is the checkout around the
working directory (chapters run in ``chapters/``; `advlogits.paths.repository_root`).

Examples::

    from advlogits import buildfiles
    buildfiles.write_claims(profile, "02_logit_distributions", records)   # into claims/ of `run_dir`
    buildfiles.write_scorecard(profile)                                   # gathers them into scorecard.json
    buildfiles.build_dir("cpu")                                            # <repo>/_build/executed/cpu
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .paths import EXECUTED, repository_root, setting

HAND_RUNS = "hand-runs"  # the folder under <repo>/_build/ of the chapters run by hand
CLAIMS = "claims"  # the folder of a run's claim files
SCORECARD = "scorecard.json"  # every claim record of a run, gathered by the scorecard chapter
ENVIRONMENT = "environment.json"  # what produced a recorded build (`advlogits.release.record`)
IGNORED_PARAMETERS = ("device",)  # where a chapter ran changes no claim: chapters run on any device may be gathered


def _root(root: str | Path | None) -> Path:
    """``root``, else the checkout around the working directory, else the working directory."""
    if root is not None:
        return Path(root)
    return repository_root() or Path.cwd()


def is_build() -> bool:
    """Whether this run is the build's (``$ADVLOGITS_EXECUTED_DIR`` is set and not empty), not a hand run."""
    return setting(EXECUTED) is not None


def build_dir(profile: str, root: str | Path | None = None) -> Path:
    """The build's folder of ``profile``: ``$ADVLOGITS_EXECUTED_DIR`` when set (the build sets it for the chapters
    it executes), else ``<root>/_build/executed/<profile>``."""
    return setting(EXECUTED) or _root(root) / "_build" / "executed" / profile


def hand_run_dir(profile: str, root: str | Path | None = None) -> Path:
    """The folder of the chapters of ``profile`` run by hand: ``<root>/_build/hand-runs/<profile>``."""
    return _root(root) / "_build" / HAND_RUNS / profile


def run_dir(profile: str) -> Path:
    """Where this run's claims and scorecard of ``profile`` go: the build's folder in the build, else the hand-run
    folder.

    Examples::

        >>> buildfiles.run_dir("cpu")  # in chapters/, run by hand
        PosixPath('/path/to/advlogits/_build/hand-runs/cpu')
    """
    return build_dir(profile) if is_build() else hand_run_dir(profile)


def record_dir(profile: str, root: str | Path) -> Path:
    """Where ``profile``'s record is committed: ``<root>/results/<profile>``."""
    return Path(root) / "results" / profile


def claims_path(folder: str | Path, chapter: str) -> Path:
    """The claim file of ``chapter`` in a run's ``folder``: ``claims/<chapter>.json``."""
    return Path(folder) / CLAIMS / f"{chapter}.json"


def claims_dir(profile: str) -> Path:
    """The folder of the chapters' claim files of ``profile`` in this run (see `run_dir`)."""
    return run_dir(profile) / CLAIMS


PAPERMILL_ENGINE = "advlogits"  # papermill's --engine for chapters: kernels on IPC sockets (advlogits.kernels)


def papermill_command(
    root: str | Path, chapter: str, folder: str | Path, parameters: Mapping[str, Any], *, flags: tuple[str, ...] = ()
) -> list[str]:
    """The papermill call that executes ``chapters/<chapter>.ipynb`` of ``root`` into ``<folder>/<chapter>.ipynb``,
    in ``chapters/`` (where the chapters read their files), with ``parameters`` (name -> value; a dict or list value
    is passed as YAML, the rest as text) and papermill's ``flags``."""
    root = Path(root)
    cmd = [sys.executable, "-m", "papermill", str(root / "chapters" / f"{chapter}.ipynb")]
    cmd += [str(Path(folder) / f"{chapter}.ipynb"), "-k", "python3", "--engine", PAPERMILL_ENGINE]
    cmd += ["--cwd", str(root / "chapters"), *flags]
    plain = {k: v for k, v in parameters.items() if not isinstance(v, (dict, list))}
    for name, value in plain.items():
        cmd += ["-p", name, str(value)]
    structured = {k: v for k, v in parameters.items() if k not in plain}
    return cmd + (["-y", json.dumps(structured)] if structured else [])


# ---------------------------------------------------------------------------------------------------------------
# claim files


def _say_hand_run(profile: str, written: str) -> None:
    """One line on where a chapter run by hand wrote; a build's page shows none."""
    if not is_build():
        print(f"hand run: {written} (the build's claims, in _build/executed/{profile}/, are untouched)")


def _name(profile: Any) -> str:
    """The profile's name, given a name or a resolved profile."""
    return profile if isinstance(profile, str) else profile.name


def run_parameters(profile: Any) -> dict | None:
    """The parameters a chapter ran with (every field of its resolved profile, in JSON form); None when only the
    profile's name is known."""
    if isinstance(profile, str):
        return None
    return json.loads(json.dumps(dataclasses.asdict(profile)))


def write_claims(profile: Any, chapter: str, records: list[dict]) -> Path:
    """Write a chapter's claim records atomically to ``claims/<chapter>.json`` of `run_dir`; returns the path.

    ``profile`` is the chapter's resolved profile (or its name): given the profile, every record holds the
    parameters the chapter ran with under ``"parameters"``, so that `gather` can refuse claims of different runs."""
    name = _name(profile)
    path = claims_path(run_dir(name), chapter)
    parameters = run_parameters(profile)
    extra = {} if parameters is None else {"parameters": parameters}
    payload = [{**r, "chapter": chapter, **extra} for r in records]
    from .fileio import atomic_write_bytes  # torch comes with it: the command line's help must not wait for it

    atomic_write_bytes(json.dumps(payload, indent=1).encode(), path)
    _say_hand_run(name, f"this chapter's claims are in {path.parent}/")
    return path


def _differences(a: dict, b: dict) -> list[str]:
    """The parameters (but `IGNORED_PARAMETERS`) whose values differ between two runs."""
    return sorted(k for k in set(a) | set(b) if k not in IGNORED_PARAMETERS and a.get(k) != b.get(k))


def gather(profile: Any) -> list[dict]:
    """Every chapter's claim records of ``profile``, sorted by claim id (then chapter).

    ValueError naming the chapters and the parameters when chapters ran with different parameters (a chapter run
    with another eps beside the others): a scorecard of one run only."""
    records, runs = [], {}
    folder = claims_dir(_name(profile))
    for path in sorted(folder.glob("*.json")):
        chapter_records = json.loads(path.read_text())
        records.extend(chapter_records)
        recorded = [r["parameters"] for r in chapter_records if r.get("parameters") is not None]
        if recorded:
            runs[path.stem] = recorded[0]
    if runs:
        first, reference = next(iter(runs.items()))
        for chapter, parameters in runs.items():
            differ = _differences(reference, parameters)
            if differ:
                raise ValueError(
                    f"claims must come from chapters run with the same parameters (got {first} and {chapter}, "
                    f"which differ in {', '.join(differ)}); run {chapter} again with the parameters of the others, "
                    f"or remove {folder / (chapter + '.json')}"
                )
    return sorted(records, key=lambda r: (r["id"], r.get("chapter", "")))


def write_scorecard(profile: Any) -> Path:
    """Gather every claim record of ``profile`` in `claims_dir` into ``scorecard.json`` beside it (atomically);
    returns the path."""
    name = _name(profile)
    path = run_dir(name) / SCORECARD
    from .fileio import atomic_write_bytes

    atomic_write_bytes(json.dumps(gather(profile), indent=1).encode(), path)
    _say_hand_run(name, f"the scorecard of the claims in {claims_dir(name)}/ is {path}")
    return path
