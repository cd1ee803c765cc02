"""binder/: the environment the Binder launch buttons build (repo2docker) installs the PyTorch the Makefile pins, as
CPU-only wheels, the other packages at the lock's versions, and the project with what the chapters import, on the
lock's Python."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


def makefile_torch_pins() -> set[str]:
    found = re.search(r"^TORCH_PINS\s*:?=\s*(.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert found, "the Makefile no longer defines TORCH_PINS: pin torch and torchvision in binder/ from where it does"
    return set(found.group(1).split())


def requirement_lines() -> list[str]:
    lines = (BINDER / "requirements.txt").read_text().splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def test_binder_pins_the_makefiles_torch_as_cpu_wheels():
    lines = requirement_lines()
    pins = makefile_torch_pins()
    assert {p.split("==")[0] for p in pins} == {"torch", "torchvision"}
    assert pins <= set(lines), f"binder/requirements.txt must pin {sorted(pins)} as the Makefile does"
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    others = [line for line in lines if re.match(r"(torch|torchvision)\b", line) and line not in pins]
    assert not others, f"binder/requirements.txt names torch other than the Makefile's pins: {others}"


def test_binder_installs_the_project_with_the_book_extra():
    # repo2docker installs binder/requirements.txt from the repository's root, after copying it, when a line refers
    # to the repository itself; the chapters import myst-nb (jupyter-book) and ipywidgets from the book extra
    assert "-e .[book]" in requirement_lines()


def test_binder_takes_every_other_version_from_the_lock():
    # pip reads a -c path in a requirements file relative to that file
    constraints = [line.split(None, 1)[1] for line in requirement_lines() if line.startswith("-c ")]
    assert constraints == ["../requirements/lock.txt"]
    assert (BINDER / constraints[0]).resolve() == (ROOT / "requirements" / "lock.txt")
    assert (ROOT / "requirements" / "lock.txt").is_file(), "binder/requirements.txt reads requirements/lock.txt"


def test_binder_runs_a_python_the_project_supports():
    runtime = (BINDER / "runtime.txt").read_text().strip()
    found = re.fullmatch(r"python-3\.(\d+)", runtime)
    assert found, f"binder/runtime.txt must read python-3.X (got {runtime!r})"
    floor = re.search(r'requires-python\s*=\s*">=3\.(\d+)"', (ROOT / "pyproject.toml").read_text())
    assert floor and int(found.group(1)) >= int(floor.group(1))
    # the lock was resolved for one Python (named in its header): Binder's must be the same minor version
    locked = re.search(r"\(Python 3\.(\d+)\.\d+ on ", (ROOT / "requirements" / "lock.txt").read_text())
    if locked:
        assert found.group(1) == locked.group(1), f"the lock is for Python 3.{locked.group(1)}, Binder runs {runtime}"
