"""tests/conftest.py's ordering: each pytest-xdist worker's share of the tests starts with whole-book tests."""

from __future__ import annotations

import types
from pathlib import Path

from conftest import WHOLE_BOOK, shares, whole_book_first


def item(name: str, file: str = "test_x.py", *, whole: bool = False) -> types.SimpleNamespace:
    """A stand-in for a collected test: its file and whether it is marked whole_book."""
    marker = object() if whole else None
    return types.SimpleNamespace(
        name=name, path=Path(file), get_closest_marker=lambda m: marker if m == WHOLE_BOOK else None
    )


def test_shares_are_those_worksteal_hands_out():
    assert shares(11, 2) == [5, 6] and shares(10, 3) == [3, 3, 4] and shares(4, 1) == [4]
    assert sum(shares(701, 4)) == 701


def test_each_workers_share_starts_with_a_whole_book_test():
    items = [item(f"t{i}") for i in range(8)] + [
        item("paper", "test_paper_path.py", whole=True),
        item("local", "test_pipeline_executors.py", whole=True),
        item("hosts", "test_pipeline_two_hosts.py", whole=True),
        item("lab", "test_lab.py"),
    ]
    ordered = whole_book_first(items, 2)
    names = [i.name for i in ordered]
    assert sorted(names) == sorted(i.name for i in items), "the same tests, reordered"
    first, second = names[:6], names[6:]
    assert first[:2] == ["paper", "hosts"] and second[0] == "local", names
    assert first[2] == "lab", "the longest files' other tests follow the whole-book ones"
    assert [i.name for i in whole_book_first(items, 1)][:3] == ["paper", "local", "hosts"]
