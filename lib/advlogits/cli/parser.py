"""The command line's parser: the verbs, their arguments and their help, and argument errors in one line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from .. import __version__
from ..names import EXECUTORS
from .chapter import cmd_chapter, cmd_scorecard
from .plan import cmd_plan, cmd_run
from .profile_args import profile_argument, profile_arguments
from .store import cmd_store


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: what is wrong, and what is allowed."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"advlogits: error: {message}\n")


def _add(verbs: Any, name: str, text: str) -> argparse.ArgumentParser:
    """A sub-command whose own --help starts with the line its parent lists."""
    return verbs.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 (got {text!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 (got {value})")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The parser of `advlogits`: each verb's arguments, and the function that runs it as ``args.run``."""
    parser = _Parser(
        prog="advlogits",
        # the first paragraph of the package's docstring (advlogits/cli/__init__.py), which lists every verb
        description=sys.modules[__package__].__doc__.split("\n\n")[0].replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--verbose", action="store_true", help="log every unit (trained / from store) to stderr; show tracebacks"
    )
    parser.add_argument("--version", action="version", version=f"advlogits {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    for add_verb in (_plan, _run, _store, _chapter, _scorecard):
        add_verb(verbs)
    return parser


def _plan(verbs: Any) -> None:
    p = _add(verbs, "plan", "list the book's units of work, stored or missing, with cost estimates")
    profile_arguments(p)
    p.add_argument(
        "--robustbench",
        nargs="*",
        default=None,
        help="RobustBench models of chapter 2 (default: the paper profile's four, none otherwise)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="print only how many units are missing; exit with 0 when every unit is stored, 1 when not",
    )
    p.set_defaults(run=cmd_plan)


def _run(verbs: Any) -> None:
    r = _add(verbs, "run", "compute every missing unit of the plan")
    profile_arguments(r)
    r.add_argument("--executor", default="local", choices=EXECUTORS, help="where units run (default: local)")
    r.add_argument(
        "--workers",
        type=_positive,
        default=os.cpu_count() or 1,
        help="worker processes or Ray tasks at once (default: the cores)",
    )
    r.add_argument(
        "--threads",
        type=_positive,
        default=None,
        help="torch threads per unit, at most the cores outside Ray (default: 1: every executor, the same bytes)",
    )
    r.add_argument(
        "--address",
        default=None,
        help="a Ray cluster to join: 'auto' or host:port on one of its machines, or ray://host:port through the "
        "Ray client, which the cluster extra installs (default: start Ray on this machine)",
    )
    r.add_argument("--robustbench", nargs="*", default=None, help="as for plan")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(run=cmd_run)


def _store(verbs: Any) -> None:
    s = _add(verbs, "store", "what the store ($ADVLOGITS_HOME) holds")
    actions = s.add_subparsers(dest="action", required=True, parser_class=_Parser)
    _add(actions, "ls", "every entry, readably")
    show = _add(actions, "show", "one entry: its config and files")
    show.add_argument("key", help="an entry's key, or a unique prefix of it")
    _add(actions, "verify", "read every file and check it against its checksum record")
    _add(actions, "repair", "move every corrupt file aside, so that the next run computes it again")
    rm = _add(actions, "rm", "remove one entry (its model and results)")
    rm.add_argument("key", help="an entry's key, or a unique prefix of it")
    _add(actions, "gc", "remove temporary files of killed writers, incomplete files and free locks")
    s.set_defaults(run=cmd_store)


def _chapter(verbs: Any) -> None:
    c = _add(verbs, "chapter", "execute one chapter with papermill as a hand run, into _build/hand-runs/PROFILE")
    c.add_argument("name", help="a chapter, e.g. 04_distillation, 04 or distillation")
    profile_arguments(c)
    c.set_defaults(run=cmd_chapter)


def _scorecard(verbs: Any) -> None:
    sc = _add(verbs, "scorecard", "print the scorecard of a built profile")
    profile_argument(sc)
    sc.add_argument("--hand-runs", action="store_true", help="the scorecard of the hand runs, not the build's")
    sc.add_argument(
        "--against",
        type=Path,
        default=None,
        metavar="RECORD",
        help="compare with a committed record, e.g. results/cpu, in one line: exit 0 when every verdict is the "
        "recorded one, 1 when one changed",
    )
    sc.set_defaults(run=cmd_scorecard)
