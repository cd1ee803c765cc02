"""The one import walker of the tests: which advlogits modules a source file imports, read with `ast`, so nothing is
imported (a function-level import counts as much as one at the top). The layers of tests/test_architecture.py and
the model key's sources of tests/test_pipeline_stored.py both read it. Standard library only.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = "advlogits"


@dataclass(frozen=True)
class Import:
    """One import statement of the package."""

    names: tuple[str, ...]  # the dotted names it may import (see `imports`); each a module or a module's attribute
    node: ast.Import | ast.ImportFrom  # the statement, for its line number and form
    top: bool  # at module level (an import under `if TYPE_CHECKING:` counts as module level)


def module_name(path: Path, package: Path) -> str:
    """The dotted name of the module at ``path`` of the package whose folder is ``package``."""
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_file(module: str, package: Path) -> Path | None:
    """The source file of module ``module`` (``advlogits.x.y``) in ``package``, or None if it is no module of it."""
    rel = Path(*module.split(".")[1:])
    for path in (package / rel.with_suffix(".py"), package / rel / "__init__.py"):
        if path.is_file():
            return path
    return None


def _names(node: ast.Import | ast.ImportFrom, package_parts: list[str]) -> tuple[str, ...]:
    if isinstance(node, ast.Import):
        return tuple(a.name for a in node.names if a.name == ROOT or a.name.startswith(ROOT + "."))
    base = package_parts[: len(package_parts) - (node.level - 1)] if node.level else []
    target = ".".join(base + ([node.module] if node.module else []))
    if target != ROOT and not target.startswith(ROOT + "."):
        return ()
    members = tuple(f"{target}.{a.name}" for a in node.names)
    # `from . import x` names the submodule x, not the importer's own package
    return members if node.level and not node.module else (target, *members)


def imports(path: Path, package: Path) -> list[Import]:
    """Every import of the package in the file at ``path``: ``import advlogits.x`` names ``advlogits.x``;
    ``from X import a`` names ``X`` and ``X.a`` (``a`` may be a submodule), and ``from . import a`` (or ``..``)
    names ``X.a`` only."""
    tree = ast.parse(path.read_text(), filename=str(path))
    me = module_name(path, package)
    package_parts = (me if path.name == "__init__.py" else me.rpartition(".")[0]).split(".")
    top = {id(node) for node in tree.body}
    for node in tree.body:
        if isinstance(node, ast.If):
            top |= {id(n) for n in node.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = _names(node, package_parts)
            if names:
                out.append(Import(names, node, id(node) in top))
    return out
