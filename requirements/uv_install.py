"""``pip install ARGS``, done by uv with the settings pip would use here: the set-up's installer.

uv resolves, downloads and byte-compiles in parallel: every extra of the project from the lock, into an empty
venv with no cache, took 41 s against pip's 116 s on a two-core machine (`benchmarks/README.md`). uv does not
read pip's configuration, so the settings pip would use (its configuration files and ``PIP_*`` variables, as
``pip config list`` shows them) are handed over: the index and extra indexes, find-links folders, constraint
files and ``no-index`` as flags; the CA bundle, timeout and proxy as uv's environment variables. Like pip, uv
then takes the best version from all the indexes (``--index-strategy unsafe-best-match``). Run it with the
venv's Python, which must have uv (``pip install uv``)::

    .venv/bin/python requirements/uv_install.py -c requirements/lock.txt -e '.[book]'
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Sequence

# pip's settings that uv takes as flags; a setting may hold several values, separated by white space
FLAGS = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "constraint": "--constraint",
}
# pip's settings that uv takes from its environment
ENVIRONMENT = {"cert": "SSL_CERT_FILE", "timeout": "UV_HTTP_TIMEOUT", "proxy": "HTTPS_PROXY"}
# pip's names for the same setting
ALIASES = {"default-timeout": "timeout"}
# where pip reads a setting, the one it obeys first: its PIP_* variables, then the [install] and [global] sections
SOURCES = (":env:", "install", "global")
TRUE = ("1", "true", "yes", "on")


def pip_settings(listing: str) -> dict[str, str]:
    """The value pip obeys for each setting, from ``pip config list`` lines such as ``global.find-links='/w'``."""
    found: dict[str, dict[str, str]] = {}
    for line in listing.splitlines():
        key, sep, value = line.partition("=")
        section, dot, name = key.rpartition(".")
        if sep and dot and section in SOURCES:
            found.setdefault(ALIASES.get(name, name), {})[section] = value.strip().strip("'\"")
    return {name: next(by[s] for s in SOURCES if s in by) for name, by in found.items()}


def uv_arguments(settings: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """uv's flags and environment variables for pip's ``settings``."""
    args = ["--index-strategy", "unsafe-best-match"]
    for name, flag in FLAGS.items():
        for value in settings.get(name, "").split():
            args += [flag, value]
    if settings.get("no-index", "").lower() in TRUE:
        args.append("--no-index")
    env = {variable: settings[name] for name, variable in ENVIRONMENT.items() if settings.get(name)}
    return args, env


def main(argv: Sequence[str]) -> int:
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    args, env = uv_arguments(pip_settings(listing))
    command = [sys.executable, "-m", "uv", "pip", "install", "--python", sys.executable, "--compile-bytecode"]
    command += [*args, *argv]
    print(" ".join([*(f"{k}={shlex.quote(v)}" for k, v in env.items()), shlex.join(command)]), flush=True)
    return subprocess.call(command, env={**os.environ, **env})


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
