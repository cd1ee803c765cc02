"""What of a source file enters a store key: its operations, not its prose.

A stored model or result is keyed by the code that computed it, so that changed code never serves a stale number.
Prose changes nothing a model computes, so it stays out of the key: the source is parsed and the key reads its
syntax tree without comments (the parser drops them), docstrings, and the text of what only reports: error messages
(strings inside a ``raise``, in the calls of `REPORTING_CALLS` and in the keywords of `REPORTING_KEYWORDS`) and log
lines. Every other string counts (a data set's name, an attack's loss, a mode), and so does every number, name and
operator.
"""

from __future__ import annotations

import ast

# Calls whose string arguments are messages to a person: the validation helpers of `advlogits.checks` (``fail`` and
# every ``check_*``), warnings, printing and logging.
REPORTING_CALLS = frozenset({"fail", "warn", "print", "debug", "info", "warning", "error", "exception", "critical"})
# Keywords whose strings are messages or labels, in any call (a hint, a progress bar's description).
REPORTING_KEYWORDS = frozenset({"hint", "shown", "desc", "message", "msg"})
_BLANK = "<prose>"


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _is_reporting(call: ast.Call) -> bool:
    name = _call_name(call)
    return name in REPORTING_CALLS or name.startswith("check_")


class _Blank(ast.NodeTransformer):
    """Every string (plain or formatted) below the visited node becomes `_BLANK`."""

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        return ast.Constant(_BLANK) if isinstance(node.value, str) else node

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        return ast.Constant(_BLANK)


class _StripProse(ast.NodeTransformer):
    """Drops docstrings and blanks the strings of what only reports (see the module's docstring)."""

    def generic_visit(self, node: ast.AST) -> ast.AST:
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
        return super().generic_visit(node)

    def visit_Raise(self, node: ast.Raise) -> ast.AST:
        return _Blank().visit(node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if _is_reporting(node):
            return _Blank().visit(node)
        node = self.generic_visit(node)
        for keyword in node.keywords:
            if keyword.arg in REPORTING_KEYWORDS:
                keyword.value = _Blank().visit(keyword.value)
        return node


def code_text(source: str | bytes, *, filename: str = "<source>") -> str:
    """The part of a module's ``source`` that computes, as text: its syntax tree without comments, docstrings,
    error messages and log lines. Two sources that differ only in those give the same text."""
    tree = _StripProse().visit(ast.parse(source, filename=filename))
    return ast.dump(tree, annotate_fields=False, include_attributes=False)
