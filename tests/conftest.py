"""Session hooks for pytest: the longest test starts first, so that the pytest-xdist workers finish together.

`make test` runs the unit tests in several workers (pytest-xdist, ``--dist worksteal``); the paper-path test
executes all five chapters and takes over two minutes. Collected last (alphabetically), it would start when the
other worker is nearly done and run alone; collected first, it runs beside everything else.
"""

from __future__ import annotations

import pytest

LONGEST_FIRST = ("test_paper_path.py", "test_lab.py", "test_pipeline_executors.py", "test_pipeline_plan.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name not in LONGEST_FIRST)  # stable: the others keep their order
