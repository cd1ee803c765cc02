"""The one place where third-party import quirks are handled.

``pyautoattack`` installs its module as ``pyautoattack`` while RobustBench (and older code) imports
``autoattack``; we alias it before anything imports RobustBench. RobustBench itself is an optional
dependency, the project's ``paper`` extra: without it, `import_robustbench_utils` raises an ImportError
that says how to install it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import warnings
from types import ModuleType


def import_autoattack() -> ModuleType:
    """Return the AutoAttack package, registered under both of its import names."""
    import pyautoattack

    sys.modules.setdefault("autoattack", pyautoattack)
    return pyautoattack


PAPER_EXTRA_HINT = "pip install -e '.[paper]' (or make book PROFILE=paper)"


def import_robustbench_utils() -> ModuleType:
    """Import ``robustbench.utils`` with AutoAttack aliased and its ``pkg_resources`` warning silenced.

    Raises ModuleNotFoundError naming the ``paper`` extra when RobustBench, or a package it imports, is missing.
    """
    try:  # the distribution, not just a package named robustbench: torchattacks ships a robustbench/ of its own
        importlib.metadata.version("robustbench")
    except importlib.metadata.PackageNotFoundError:
        raise ModuleNotFoundError(
            "the paper profile needs RobustBench (the project's [paper] extra), which is not installed (a "
            f"'robustbench' package that another distribution ships does not count): {PAPER_EXTRA_HINT}",
            name="robustbench",
        ) from None
    import_autoattack()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        loaded_before = set(sys.modules)
        try:
            return importlib.import_module("robustbench.utils")
        except ModuleNotFoundError as err:
            _forget_modules_imported_since(loaded_before)
            missing = (
                "which is"
                if (err.name or "").split(".")[0] == "robustbench"
                else f"and {err.name}, which RobustBench imports, is"
            )
            raise ModuleNotFoundError(
                f"the paper profile needs RobustBench (the project's [paper] extra), {missing} "
                f"not installed: {PAPER_EXTRA_HINT}",
                name=err.name,
            ) from err


def _forget_modules_imported_since(loaded_before: set[str]) -> None:
    """Drop the submodules a failed import left in sys.modules without their package.

    A failed ``import package.sub`` removes the package but can leave submodules that did import; a later
    successful import would then build a new package object without them as attributes (``package.sub``
    raising AttributeError). Modules whose packages did import stay: importing some twice fails (torch's
    operator libraries, which torchvision loads, register themselves once per process).
    """
    for name in set(sys.modules) - loaded_before:
        parts = name.split(".")
        if any(".".join(parts[:i]) not in sys.modules for i in range(1, len(parts))):
            del sys.modules[name]
