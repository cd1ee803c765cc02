"""A chapter's papermill parameters: a name the chapter does not declare is refused before any compute.

papermill (run by hand, by ``advlogits chapter`` or by the Makefile) puts the values it is given into a cell of
assignments headed ``# Parameters``, right after the chapter's cell tagged ``parameters``, and runs them in order.
A misspelled ``-p epsilon 0.2`` (the chapter's name is ``eps``) would only add a variable nothing reads: the
chapter would run its defaults and exit 0, papermill merely logging a warning. Every chapter therefore calls
`check_injected` first thing after that cell. It reads both cells from the kernel's input history, so a hand run
with plain papermill is covered as much as the build, and a session without papermill (Jupyter, Colab) has no
injected cell and nothing to check.

Examples::

    from advlogits.chapters.parameters import check_injected
    check_injected()  # ParameterError: unknown parameter 'epsilon' given to papermill ... known: profile, ...
"""

from __future__ import annotations

import ast
import difflib
import sys
from collections.abc import Sequence

INJECTED = "# Parameters"  # the first line of papermill's injected cell (its translators' comment "Parameters")
OWN = "PAPERMILL_"  # papermill's own names (--inject-paths: PAPERMILL_INPUT_PATH, PAPERMILL_OUTPUT_PATH)
EXAMPLE = '{"overrides": {"epochs": 1}}'  # papermill's -y for the profile fields that are not parameters


class ParameterError(ValueError):
    """A parameter given to papermill that the chapter does not declare."""


def assigned_names(source: str) -> list[str]:
    """The names a cell assigns at its top level (``x = 1``, ``x: int = 1``, ``x = y = 1``), in order."""
    names: list[str] = []
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        targets = [node.target] if isinstance(node, ast.AnnAssign) else targets
        names += [t.id for t in targets if isinstance(t, ast.Name) and t.id not in names]
    return names


def unknown_parameters(history: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the injected names the parameters cell does not declare, the declared names) from the sources of the
    cells run so far, oldest first; two empty lists when no cell of papermill's was run.

    papermill runs its injected cell (the last one starting with `INJECTED`) right after the parameters cell, so
    the cell run just before it declares the parameters."""
    runs = [i for i, source in enumerate(history) if source.lstrip().startswith(INJECTED)]
    if not runs or runs[-1] == 0:
        return [], []
    injected, declared = assigned_names(history[runs[-1]]), assigned_names(history[runs[-1] - 1])
    return [name for name in injected if name not in declared and not name.startswith(OWN)], declared


def message(unknown: Sequence[str], declared: Sequence[str]) -> str:
    """The one line of the refusal: each unknown name (with the declared name it is closest to) and the known."""
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, declared, n=1, cutoff=0.5)
        parts.append(repr(name) + (f" (did you mean {close[0]!r}?)" if close else ""))
    plural = "s" if len(unknown) > 1 else ""
    return (
        f"unknown parameter{plural} {', '.join(parts)} given to papermill (-p): this chapter's parameters are "
        f"{', '.join(declared)}; other profile fields go in overrides, e.g. -y '{EXAMPLE}'"
    )


def check_injected(history: Sequence[str] | None = None) -> None:
    """Raise `ParameterError` when papermill was given a parameter the chapter does not declare.

    ``history``: the sources of the cells run so far, oldest first; by default the IPython kernel's input history
    (outside IPython there is nothing to check)."""
    if history is None:
        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython is not None else None
        if shell is None:
            return
        history = shell.history_manager.input_hist_parsed  # magics made Python, which `ast` can read
    unknown, declared = unknown_parameters(history)
    if unknown:
        raise ParameterError(message(unknown, declared))
