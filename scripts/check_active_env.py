"""``USE_ACTIVE_ENV=1``: check that the active environment has what a target needs, instead of installing it.

The Makefile runs this with the active environment's Python in place of its set-up: the project must be installed
from this checkout (``pip install -e``), with every requirement of the extras the target needs; if not, it stops
with one line naming what is missing and the ``pip install`` command that fixes it. Given a stamp file, it writes
there the interpreter and the versions it checked, only when they differ from what the file holds, so that the
chapters re-execute only when the environment changed. Standard library only: the project may be missing::

    python scripts/check_active_env.py --lock requirements/lock.txt book,test [STAMP]
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import importlib.util
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "advlogits"


def needed(requires: list[str], extras: set[str]) -> list[str]:
    """The distribution names among ``requires`` (``importlib.metadata.requires`` strings) that the project needs
    with ``extras``: those of no extra and those of one of ``extras``."""
    names = []
    for requirement in requires:
        name, _, marker = requirement.partition(";")
        extra = re.search(r"extra\s*==\s*['\"]?([A-Za-z0-9._-]+)", marker)
        if extra and extra.group(1) not in extras:
            continue
        found = re.match(r"[A-Za-z0-9._-]+", name.strip())
        if found:
            names.append(found.group())
    return names


def project_problem(lib: Path) -> str | None:
    """Why the project cannot be used from this environment (not installed, or installed from another checkout
    than the one whose sources are in ``lib``), or None."""
    spec = importlib.util.find_spec(PROJECT)
    try:
        md.requires(PROJECT)
    except md.PackageNotFoundError:
        spec = None
    if spec is None or spec.origin is None:
        return f"{PROJECT} is not installed"
    origin = Path(spec.origin).resolve()
    if not origin.is_relative_to(lib.resolve()):
        return f"{PROJECT} comes from {spec.origin}, not from {lib.resolve()}"
    return None


def versions(names: list[str]) -> tuple[list[str], list[str]]:
    """(``name==version`` of each installed one, the names of those not installed)."""
    found, missing = [], []
    for name in names:
        try:
            found.append(f"{name}=={md.version(name)}")
        except md.PackageNotFoundError:
            missing.append(name)
    return found, missing


def write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, and only if it differs, so that its time stamp moves only then."""
    if path.is_file() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("extras", help="comma-separated extras the target needs, e.g. book,test")
    parser.add_argument("stamp", nargs="?", type=Path, help="where to record the interpreter and the versions")
    parser.add_argument("--lock", default="requirements/lock.txt", help="the lock named in the fix")
    args = parser.parse_args(argv)
    where = f"USE_ACTIVE_ENV=1, and the active environment ({sys.executable})"
    fix = f"install it first: {sys.executable} -m pip install -c {args.lock} -e '.[{args.extras}]'"
    problem = project_problem(ROOT / "lib")
    if problem is not None:
        print(
            f"error: USE_ACTIVE_ENV=1, and in the active environment ({sys.executable}) {problem}; {fix}",
            file=sys.stderr,
        )
        return 1
    found, missing = versions(needed(md.requires(PROJECT) or [], set(args.extras.split(","))))
    if missing:
        print(f"error: {where} lacks {', '.join(missing)}; {fix}", file=sys.stderr)
        return 1
    if args.stamp is not None:
        write_if_changed(args.stamp, "\n".join([sys.executable, *sorted(found)]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
