"""The ``advlogits`` command line: the book's plan of work, running it, the store, one chapter, the scorecard.

    advlogits plan --profile cpu                  the units of work, stored or missing, with a cost estimate
    advlogits plan --profile cpu --check          exit status 0 when every unit is stored (`make execute` asks)
    advlogits run --profile cpu --workers 2       compute what is missing (--executor serial | local | ray)
    advlogits store ls | show KEY | verify | repair | rm KEY | gc
    advlogits chapter 04_distillation --profile smoke
    advlogits scorecard --profile cpu
    advlogits scorecard --profile cpu --against results/cpu   the build against its committed record, in one line

The build (``make execute``) owns ``_build/executed/<profile>``; ``chapter`` is a hand run, like papermill or
Jupyter: the executed notebook and its claims go to ``_build/hand-runs/<profile>``, never among the build's, and a
chapter that fails leaves no claims behind.

Every error is one line and an exit status: 2 for bad input (before any compute), 1 for a failed run, 130 for
Ctrl-C (the store stays valid: what finished is kept, the rest is computed by the next run); ``--verbose`` adds
the traceback. Path settings (``$ADVLOGITS_HOME``, ``$ADVLOGITS_DATA``) are resolved by `advlogits.paths`, the
same way for this command, the chapters it runs and its workers.

This module holds `main`, the entry point (``advlogits``, ``python -m advlogits``); the parser is in `.parser`, the
verbs in `.plan` (plan, run), `.store` and `.chapter` (chapter, scorecard), the profile's arguments in
`.profile_args`, and how an error becomes one line and an exit status in `.errors`.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Sequence

from .errors import bad_input, fail, one_line
from .parser import build_parser

# The library (torch and all) is imported inside the verbs that compute or read the store, never at the top: the
# help, --version and argument errors answer in a fraction of a second (tests/test_reliability.py checks that they
# leave torch unimported).


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 bad input, 1 a failed run, 130 Ctrl-C)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:  # bare `advlogits`: the verbs, and how to ask for more
        parser.print_help(sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return args.run(args)
    except KeyboardInterrupt:
        if args.verbose:
            traceback.print_exc()
        print(
            "advlogits: interrupted; the store is valid (what finished is kept, the next run computes the rest)",
            file=sys.stderr,
        )
        return 130
    except BrokenPipeError:  # e.g. `advlogits store ls | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:  # bad input (status 2) or a failed run (1): one line, the traceback with --verbose
        if args.verbose:
            traceback.print_exc()
        if bad_input(err):
            fail(one_line(err))
        print(
            f"advlogits: error: {one_line(err)} ({type(err).__name__}; --verbose shows the traceback)", file=sys.stderr
        )
        return 1
