"""The library's shape: layers that import only downwards, no import cycle, one way of writing internal imports.

Read from the source with `ast` (nothing is imported; tests/source_imports.py), so a function-level import counts
as much as one at the top. The layers, bottom to top, are the package docstring's: basics, concepts, training and
profiles, the pipeline, the chapters, the release tools, the command line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from source_imports import ROOT, imports, module_name

PACKAGE = Path(__file__).resolve().parents[1] / "lib" / "advlogits"

# One line per layer, bottom to top (kept so by the formatter).
# fmt: off
LAYERS: dict[str, int] = {
    "_compat": 0, "checks": 0, "codekey": 0, "fileio": 0, "accel": 0, "passes": 0, "paths": 0, "names": 0,
    "buildfiles": 0, "downloads": 0, "kernels": 0,
    "data": 1, "datafiles": 1, "augmentation": 1, "models": 1, "predict": 1, "attacks": 1, "evaluation": 1,
    "autoattack": 1, "distill": 1, "logits": 1, "margins": 1, "stats": 1, "inference": 1, "store": 1,
    "record_check": 1, "synthetic": 1,
    "train": 2, "profiles": 2,
    "pipeline": 3,
    "chapters": 4,
    "release": 5,
    "cli": 6, "__main__": 6,
}
# fmt: on
# Modules that may import the library inside functions: the command line's verbs import it where they compute or
# read the store (plan and run, store, chapter, and the profile and plan that their arguments name), and the build's
# files import the atomic writer (torch comes with it) where they write, so that the command line's help, --version
# and argument errors import no torch (tests/test_reliability.py).
IMPORTS_IN_FUNCTIONS = {
    "advlogits.cli.plan",
    "advlogits.cli.store",
    "advlogits.cli.chapter",
    "advlogits.cli.profile_args",
    "advlogits.buildfiles",
}


def layer_of(module: str) -> int:
    """The layer of ``advlogits.<first part>``; the package root sits with the pipeline, whose names it re-exports."""
    parts = module.split(".")
    if len(parts) == 1:
        return 3
    return LAYERS[parts[1]]


def graph() -> dict[str, set[str]]:
    """Each module of the package -> the modules of the package it imports."""
    edges: dict[str, set[str]] = {}
    known = {module_name(p, PACKAGE) for p in PACKAGE.rglob("*.py")}
    for path in sorted(PACKAGE.rglob("*.py")):
        me = module_name(path, PACKAGE)
        targets = set()
        for statement in imports(path, PACKAGE):
            for name in statement.names:
                while name not in known and "." in name:  # `from .pipeline import get_model` names an attribute
                    name = name.rpartition(".")[0]
                if name != me:
                    targets.add(name)
        edges[me] = targets
    return edges


def test_every_module_has_a_layer():
    for module in graph():
        layer_of(module)  # KeyError names a module that no layer claims


def test_no_import_cycle_anywhere_in_the_package():
    edges = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_each_module_imports_only_from_its_layer_or_below():
    edges = graph()
    upward = [
        f"{a} (layer {layer_of(a)}) imports {b} (layer {layer_of(b)})"
        for a, targets in edges.items()
        for b in targets
        if layer_of(b) > layer_of(a) and not (a == ROOT and layer_of(b) <= 3)
    ]
    assert not upward, "\n".join(upward)


def test_nothing_below_the_chapters_imports_them():
    """The library computes; only the chapters, the release tools and the command line read the chapters' code."""
    edges = graph()
    offenders = [
        f"{a} imports {b}"
        for a, targets in edges.items()
        for b in targets
        if b.startswith(f"{ROOT}.chapters") and layer_of(a) < LAYERS["chapters"]
    ]
    assert not offenders, offenders


def test_internal_imports_are_relative_and_at_module_level():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for statement in imports(path, PACKAGE):
            node, name = statement.node, statement.names[0]
            where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
            if isinstance(node, ast.Import) or not node.level:
                problems.append(f"{where} imports {name} absolutely; write it relative (from .x import y)")
            if not statement.top and module_name(path, PACKAGE) not in IMPORTS_IN_FUNCTIONS:
                problems.append(f"{where} imports {name} inside a function; import it at module level")
    assert not problems, "\n".join(problems)


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path, monkeypatch):
    """The tests above can fail: a package with a cycle and an upward import is caught."""
    fake = tmp_path / "advlogits"
    (fake / "pipeline").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "checks.py").write_text("from .data import x\n")
    (fake / "data.py").write_text("from .checks import y\n")
    (fake / "pipeline" / "__init__.py").write_text("")
    (fake / "train.py").write_text("def f():\n    from .pipeline import z\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    with pytest.raises(pytest.fail.Exception, match="import cycle"):
        test_no_import_cycle_anywhere_in_the_package()
    with pytest.raises(AssertionError, match="imports advlogits.pipeline"):
        test_each_module_imports_only_from_its_layer_or_below()
    with pytest.raises(AssertionError, match="inside a function"):
        test_internal_imports_are_relative_and_at_module_level()
