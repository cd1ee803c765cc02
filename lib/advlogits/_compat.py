"""The one place where third-party import quirks are handled.

``pyautoattack`` installs its module as ``pyautoattack`` while RobustBench (and older code) imports
``autoattack``; we alias it before anything imports RobustBench.
"""

from __future__ import annotations

import sys
import warnings
from types import ModuleType


def import_autoattack() -> ModuleType:
    """Return the AutoAttack package, registered under both of its import names."""
    import pyautoattack

    sys.modules.setdefault("autoattack", pyautoattack)
    return pyautoattack


def import_robustbench_utils() -> ModuleType:
    """Import ``robustbench.utils`` with AutoAttack aliased and its ``pkg_resources`` warning silenced."""
    import_autoattack()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        import robustbench.utils

    return robustbench.utils
