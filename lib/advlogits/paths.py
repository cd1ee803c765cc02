"""Path settings: one resolution of ``$ADVLOGITS_HOME``, ``$ADVLOGITS_DATA``, ``$ADVLOGITS_DATA_ONLY`` and
``$ADVLOGITS_EXECUTED_DIR``.

The command line, the Makefile, the chapters (which run in ``chapters/``) and the workers must mean one folder by
one setting, so a setting is read here only: ``~`` is expanded, and a relative path is relative to the root of
the repository when the working directory is inside a checkout of it (a folder with ``_toc.yml`` and
``chapters/``), else to the working directory. ``ADVLOGITS_HOME=relstore`` thus names ``<repo>/relstore`` whether
the command line runs at the root or a chapter runs in ``chapters/``.

`check_folder` refuses, in one line naming the setting, a path that exists and is not a folder.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME = "ADVLOGITS_HOME"  # the store's root
# The data home: searched first for a data set, where downloads go; a copy found through it must be complete.
DATA = "ADVLOGITS_DATA"
# The only folder every load reads, as an explicit ``root=`` does: nothing else is searched, nothing downloaded, and
# it may hold a smaller set in the same format (tests, excerpts). See `advlogits.data`.
DATA_ONLY = "ADVLOGITS_DATA_ONLY"
EXECUTED = "ADVLOGITS_EXECUTED_DIR"  # the folder of executed chapters
SETTINGS = (HOME, DATA, DATA_ONLY, EXECUTED)


class SettingError(ValueError):
    """A path setting names something that cannot be used; the message names the setting and what to do."""


def repository_root(start: Path | None = None) -> Path | None:
    """The checkout holding ``start`` (default: the working directory): the nearest folder with ``_toc.yml`` and
    ``chapters/``, or None outside one."""
    here = (start or Path.cwd()).absolute()
    return next((p for p in (here, *here.parents) if (p / "_toc.yml").is_file() and (p / "chapters").is_dir()), None)


def resolve_path(value: str | os.PathLike[str]) -> Path:
    """``value`` made absolute: ``~`` expanded, a relative path taken from the repository root (see the module)."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    return (repository_root() or Path.cwd()).absolute() / path


def setting(name: str, default: Path | None = None) -> Path | None:
    """The path setting ``$name`` resolved (`resolve_path`), or ``default`` when it is unset or empty."""
    value = os.environ.get(name, "").strip()
    return resolve_path(value) if value else default


def check_folder(name: str, path: Path) -> Path:
    """``path`` if it is a folder or does not exist yet; SettingError naming ``name`` if it is anything else."""
    if path.exists() and not path.is_dir():
        raise SettingError(f"{name} must name a folder (got {path}, which is a file); set {name} to a folder")
    return path


def absolute_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``environ`` (default: this process's) with every path setting resolved, for a child process
    that runs elsewhere (a chapter in ``chapters/``, a worker)."""
    env = dict(os.environ if environ is None else environ)
    for name in SETTINGS:
        if env.get(name, "").strip():
            env[name] = str(resolve_path(env[name].strip()))
    return env


__all__ = ["SETTINGS", "SettingError", "absolute_environment", "check_folder", "repository_root", "resolve_path"]
