"""`make setup`'s last check: the kernel ``python3``, which papermill and JupyterLab start, is this environment's.

A ``python3`` kernelspec of the user's (``~/.local/share/jupyter/kernels/``) would otherwise run the chapters in
another Python, without the project. Exits 0 when the kernelspec found lies inside ``sys.prefix``, else with one
line saying which one was found and how to fix it. Run with the environment's Python::

    .venv/bin/python scripts/check_kernelspec.py
"""

from __future__ import annotations

import sys
from pathlib import Path

KERNEL = "python3"


def kernelspec_problem(found: str | None, prefix: str, executable: str) -> str | None:
    """Why the kernelspec folder ``found`` (None: no such kernel) is not the one of the environment at ``prefix``."""
    fix = f"{executable} -m ipykernel install --sys-prefix --name {KERNEL}"
    if found is None:
        return f"no {KERNEL} kernelspec is installed; run {fix}"
    if Path(found).absolute().is_relative_to(Path(prefix).absolute()):
        return None
    return f"the {KERNEL} kernelspec at {Path(found).absolute()} is not the one of {prefix}; remove it, or run {fix}"


def main() -> int:
    from jupyter_client.kernelspec import KernelSpecManager

    problem = kernelspec_problem(KernelSpecManager().find_kernel_specs().get(KERNEL), sys.prefix, sys.executable)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
