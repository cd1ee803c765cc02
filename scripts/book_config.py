"""Edits of the staged book's ``_config.yml`` that a build setting asks for (`make stage`).

``student``: the student edition (``STUDENT=1``) says so in the book's title. ``repository URL BRANCH``
(``REPO_URL=...``): the site gains the repository button and the launch buttons (Colab, Binder), which open a
chapter from that repository and branch. The file is rewritten in place, atomically::

    python scripts/book_config.py _build/src/cpu-student/_config.yml student
    python scripts/book_config.py _build/src/cpu/_config.yml repository https://github.com/OWNER/REPO main
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

BINDER = "https://mybinder.org"
COLAB = "https://colab.research.google.com"


def student_edition(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with its title marked as the student edition's."""
    return {**config, "title": f"{config['title']} (student edition)"}


def with_repository(config: dict[str, Any], url: str, branch: str) -> dict[str, Any]:
    """``config`` with the repository at ``url`` (``branch``), its button and the launch buttons."""
    if not url.startswith(("https://", "http://")):
        raise ValueError(
            f"REPO_URL={url!r} is not an http(s) address; pass e.g. REPO_URL=https://github.com/OWNER/REPO"
        )
    html = {**config.get("html", {}), "use_repository_button": True}
    return {
        **config,
        "repository": {"url": url, "branch": branch, "path_to_book": ""},
        "launch_buttons": {"notebook_interface": "jupyterlab", "binderhub_url": BINDER, "colab_url": COLAB},
        "html": html,
    }


def rewrite(path: Path, config: dict[str, Any]) -> None:
    """Write ``config`` to ``path`` as YAML, keys in their order, through a temporary file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf8") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="the staged _config.yml")
    edits = parser.add_subparsers(dest="edit", required=True)
    edits.add_parser("student", help="mark the title as the student edition's")
    repository = edits.add_parser("repository", help="add the repository and the launch buttons")
    repository.add_argument("url")
    repository.add_argument("branch")
    args = parser.parse_args(argv)
    config = yaml.safe_load(args.config.read_text(encoding="utf8"))
    try:
        config = student_edition(config) if args.edit == "student" else with_repository(config, args.url, args.branch)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rewrite(args.config, config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
