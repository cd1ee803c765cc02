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
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import re
import subprocess
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from . import __version__
from .buildfiles import SCORECARD, build_dir, claims_path, hand_run_dir, papermill_command
from .chapters.numbers import NBSP, claim_estimate, claim_threshold
from .names import EXECUTORS, PROFILES
from .paths import SettingError, absolute_environment
from .paths import repository_root as find_repository
from .record_check import RecordError, compare_folders

if TYPE_CHECKING:
    from .pipeline.executors import PlanSpec, RunReport
    from .profiles import Profile
    from .store import Store

# The library (torch and all) is imported inside the verbs that compute or read the store, never at the top: the
# help, --version and argument errors answer in a fraction of a second (tests/test_reliability.py checks that they
# leave torch unimported).

RAY_ADDRESS = re.compile(r"^(auto|ray://[^:/\s]+:\d+|[^:/\s]+:\d+)$")  # 'auto', ray://host:port or host:port
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: what is wrong, and what is allowed."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"advlogits: error: {message}\n")


def _profile_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="cpu", choices=PROFILES, help="the run profile (default: cpu)")


def _profile_arguments(parser: argparse.ArgumentParser) -> None:
    _profile_argument(parser)
    parser.add_argument("--device", default=None, help="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps' (default: auto)")
    parser.add_argument("--seed", type=int, default=None, help="the main seed (default: the profile's)")
    parser.add_argument(
        "--eps", type=float, default=None, help="the L-inf radius in pixel units, 0 < eps < 1 (default: the profile's)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other profile field, e.g. --set n_eval=200 (repeatable)",
    )


def _resolve(args: argparse.Namespace) -> Profile:
    overrides: dict[str, str] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"argument --set: expected KEY=VALUE, e.g. --set n_eval=200 (got {item!r})")
        overrides[key.strip()] = value.strip()
    given = {"device": args.device, "seed": args.seed, "eps": args.eps}
    for key in sorted(set(overrides) & {k for k, v in given.items() if v is not None}):
        _fail(f"argument --set: {key} is given twice, as --{key} and --set {key}=...; keep one")
    given["device"] = args.device or overrides.pop("device", "auto")
    from .profiles import resolve

    try:
        return resolve(args.profile, **{**given, **overrides})
    except ValueError as err:
        message = str(err)
        _fail("argument --set: " + message[len("overrides ") :] if message.startswith("overrides ") else message)


def _fail(message: str) -> NoReturn:
    print(f"advlogits: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _spec(args: argparse.Namespace) -> PlanSpec:
    from .models import robustbench_zoo_entry
    from .pipeline.executors import PlanSpec
    from .pipeline.lineup import PAPER_ROBUSTBENCH_MODELS

    profile = _resolve(args)
    names = ()
    if getattr(args, "robustbench", None) is not None:
        names = tuple(args.robustbench)
        for name in names:
            try:
                robustbench_zoo_entry(name)
            except (ValueError, ImportError) as err:
                _fail(f"argument --robustbench: {err}")
    elif profile.name == "paper":
        names = PAPER_ROBUSTBENCH_MODELS
        try:
            robustbench_zoo_entry(names[0])
        except ImportError as err:
            _fail(f"argument --profile: {err}")
    return PlanSpec(profile, names, None)


# ------------------------------------------------------------------------------------------------------------
# verbs


def format_seconds(seconds: float) -> str:
    """A unit's cost estimate as the plan prints it: whole seconds, or "<1 s"."""
    return "<1 s" if seconds < 1 else f"{seconds:.0f} s"


def cmd_plan(args: argparse.Namespace) -> int:
    from .pipeline import plan as plan_module
    from .store import Store

    spec, store = _spec(args), Store()
    units = plan_module.ordered(spec.units())
    states = {u.id: plan_module.state(u, store) for u in units}  # stored only when its checksums hold
    missing = sum(1 for s in states.values() if s != "stored")
    corrupt = sum(1 for s in states.values() if s == "corrupt")
    if args.check:
        print(check_summary(len(units), missing, corrupt, spec.profile.name))
        return 0 if missing == 0 else 1
    total, known, plan_keys = 0.0, 0, {u.key for u in units}
    print(f"{'status':<8} {'estimate':>9}  unit")
    for unit in units:
        done = states[unit.id] == "stored"
        estimate = None if done else plan_module.estimate_seconds(unit, store, plan_keys=plan_keys)
        if estimate is not None:
            total, known = total + estimate, known + 1
        cost = "" if done else ("?" if estimate is None else format_seconds(estimate))
        print(f"{states[unit.id]:<8} {cost:>9}  {unit.name} [{unit.kind}, {unit.key}]")
    print(plan_summary(len(units), missing, known, total, corrupt=corrupt, profile=spec.profile.name))
    return 0


def _corrupt_note(corrupt: int, profile: str) -> str:
    if not corrupt:
        return ""
    return (
        f" ({corrupt} of them corrupt: `advlogits run --profile {profile}` with the same arguments moves them aside "
        "and computes them again)"
    )


def check_summary(n_units: int, missing: int, corrupt: int = 0, profile: str = "cpu") -> str:
    """The line of `advlogits plan --check`: every unit stored, or how many are missing (corrupt ones included)."""
    if missing == 0:
        return f"{n_units} units, all stored"
    return f"{n_units} units, {missing} missing" + _corrupt_note(corrupt, profile)


def plan_summary(
    n_units: int, missing: int, known: int, seconds: float, *, corrupt: int = 0, profile: str = "cpu"
) -> str:
    """The last line of `advlogits plan`: how much is missing and what the missing units with an estimate cost
    (estimates come from units of the same profile only; see `advlogits.pipeline.plan.estimate_seconds`)."""
    if missing == 0:
        return f"{n_units} units, all stored: nothing to compute"
    note = _corrupt_note(corrupt, profile)
    if known == 0:
        return (
            f"{n_units} units, {missing} missing{note}; none has an estimate yet (nothing comparable of profile "
            f"{profile} is stored)"
        )
    return (
        f"{n_units} units, {missing} missing{note}; estimated {seconds / 60:.1f} min for the {known} missing units "
        f"with an estimate (one process)"
    )


def run_summary(report: RunReport) -> str:
    """One line on what `advlogits run` did, with how busy its workers were: below 100%, they waited for
    dependencies or for the last units."""
    line = f"computed {len(report.computed)} units in {sum(report.computed.values()) / 60:.1f} min of unit time"
    busy = report.busy()
    if busy is not None:
        workers = f"{report.workers} worker{'s' if report.workers > 1 else ''}"
        line += f", {report.wall_s / 60:.1f} min of wall time on {workers}, busy {busy:.0%} of it"
    line += f"; {len(report.from_store)} already stored before this run"
    if report.by_others:
        line += f"; {len(report.by_others)} stored meanwhile by another process"
    if report.corrupt:
        line += f"; {len(report.corrupt)} found corrupt, moved aside and computed again"
    return line


def ray_client_installed() -> bool:
    """Whether the Ray client, which a ray://host:port address needs, can be imported: grpcio, which the cluster
    extra installs (ray[client])."""
    return importlib.util.find_spec("grpc") is not None


def _check_run_arguments(args: argparse.Namespace) -> None:
    """Refuse, in one line and before any compute, what cannot work: --address without Ray or not an address,
    and more torch threads per unit than this machine has cores."""
    if args.address is not None and args.executor != "ray":
        _fail(f"argument --address: only with --executor ray (got --executor {args.executor})")
    if args.address is not None and not RAY_ADDRESS.match(args.address):
        _fail(f"argument --address: must be 'auto', ray://host:port or host:port (got {args.address!r})")
    if args.address is not None and args.address.startswith("ray://") and not ray_client_installed():
        _fail(
            f"argument --address: {args.address} needs the Ray client (grpcio), which is not installed: "
            "pip install -e '.[cluster]' installs it with Ray (ray[client]); or give the cluster as host:port or "
            "'auto' on one of its machines"
        )
    cores = os.cpu_count() or 1
    if args.executor != "ray" and args.threads is not None and args.threads > cores:
        _fail(f"argument --threads: must be at most the {cores} cores of this machine (got {args.threads})")


def cmd_run(args: argparse.Namespace) -> int:
    _check_run_arguments(args)
    from .pipeline.executors import run_plan
    from .store import Store

    spec = _spec(args)
    Store().check_writable()  # a read-only store or a file for ADVLOGITS_HOME: refused before any compute
    report = run_plan(
        spec,
        executor=args.executor,
        workers=args.workers,
        threads=args.threads,
        address=args.address,
        progress=not args.quiet,
    )
    print(run_summary(report))
    return 0


def _entry(store: Store, name: str) -> str:
    keys = [k for k in store.keys() if k.startswith(name)]
    if len(keys) != 1:
        found = "no entry" if not keys else f"{len(keys)} entries"
        _fail(f"argument KEY: must name one store entry, by its key or a unique prefix (got {name!r}: {found})")
    return keys[0]


def describe_entry(config: dict | None) -> str:
    """A readable name of a stored entry from its config.json, as the pipeline's log names it (`describe`)."""
    from .pipeline import describe
    from .store import from_canonical
    from .train import TrainConfig

    if config is None:
        return "results only"
    try:
        return describe(from_canonical(config, [TrainConfig]))
    except (TypeError, ValueError) as err:
        return f"a config this version cannot read ({_one_line(err)})"


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def cmd_store(args: argparse.Namespace) -> int:
    from .fileio import REPAIR, StoreError, read_checked
    from .store import Store

    store = Store()
    if args.action == "ls":
        keys = store.keys()
        for key in keys:
            try:
                config = store.config_of(key)
            except StoreError:
                print(f"{key}  CORRUPT config.json: `{REPAIR}` moves it aside")
                continue
            results = len(list((store.entry(key) / "results").glob("*.sha256")))
            model = "model" if store.has_weights(key) else "-----"
            print(
                f"{key}  {model}  {results:3d} results  {_size(store.entry(key)) / 1e6:8.1f} MB  "
                f"{describe_entry(config)}"
            )
        print(f"{len(keys)} entries in {store.root}")
    elif args.action == "show":
        key = _entry(store, args.key)
        try:
            config = store.config_of(key)
        except StoreError as err:
            print(f"{key}: {err}")
        else:
            print(f"{key}: {describe_entry(config)}")
            print(json.dumps(config, indent=1) if config is not None else "(no config: an entry of results only)")
        for path in store.files(key):
            print(f"  {path.relative_to(store.entry(key))}  {path.stat().st_size} bytes")
        try:
            history = read_checked(store.entry(key) / "history.json")
        except StoreError:
            history = None
        if history is not None:
            seconds = sum(json.loads(history).get("seconds", []))
            print(f"trained in {seconds:.1f} s")
    elif args.action == "verify":
        results = store.verify()
        corrupt = [p for p, state in results.items() if state != "ok"]
        for path in corrupt:
            print(f"corrupt: {path}")
        print(
            f"{len(results)} files checked, {len(corrupt)} corrupt"
            + (f" (`{REPAIR}` moves them aside; what needs them computes them again)" if corrupt else "")
        )
        return 1 if corrupt else 0
    elif args.action == "repair":
        moved = store.repair()
        for path in moved:
            print(f"moved aside: {path}")
        print(
            f"{len(moved)} corrupt files moved aside"
            + (" (the next run or chapter computes them again)" if moved else ": nothing to repair")
        )
    elif args.action == "rm":
        key = _entry(store, args.key)
        store.remove(key)  # StoreError when the entry is still there
        print(f"removed {key}")
    else:  # gc
        return _gc(store)
    return 0


def _gc(store: Store) -> int:
    """`advlogits store gc`: name every stale data file removed; count the free lock files (a finished run leaves
    one per unit, which is no fault)."""
    stale = store.stale_files()
    locks = [p for p in stale if p.parent == store.root / "locks"]
    files = [p for p in stale if p not in locks]
    for path in stale:
        path.unlink(missing_ok=True)
    for path in files:
        print(f"removed {path}")
    print(f"{len(files)} stale files removed (temporary or never completed), {len(locks)} free lock files removed")
    return 0


def repository_root() -> Path:
    """The repository holding the chapters: the working directory or a parent with ``_toc.yml``."""
    root = find_repository()
    if root is None:
        _fail("the chapters are not here: run `advlogits chapter` inside the repository (a folder with _toc.yml)")
    return root


def _chapter_name(root: Path, name: str) -> str:
    chapters = sorted(p.stem for p in (root / "chapters").glob("*.ipynb"))
    matches = [c for c in chapters if c == name or c.split("_", 1)[0] == name or c.split("_", 1)[-1] == name]
    if len(matches) != 1:
        _fail(f"argument NAME: must be one of {', '.join(chapters)} (got {name!r})")
    return matches[0]


def _check_store_for_chapter(profile: Profile) -> None:
    """A chapter on a store it cannot write needs every unit stored: else refuse in one line before it runs."""
    from .fileio import StoreError
    from .pipeline import plan as plan_module
    from .pipeline.executors import PlanSpec
    from .store import Store

    store = Store()
    try:
        store.check_writable()
    except StoreError as err:
        units = PlanSpec(profile, (), None).units()
        missing = sum(1 for u in units if plan_module.state(u, store) != "stored")
        if missing:
            raise StoreError(f"{err} ({missing} of the book's {len(units)} units are missing from it)") from err


def _papermill_error(stderr: str) -> str:
    """The last line of a failed papermill run's output that names an error (``Name: message``)."""
    lines = [ANSI.sub("", line).strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line and not set(line) <= set("-^ ")]
    named = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b", line)]
    return (named or lines or ["no output"])[-1]


def cmd_chapter(args: argparse.Namespace) -> int:
    root = repository_root()
    chapter = _chapter_name(root, args.name)
    profile = _resolve(args)
    _check_store_for_chapter(profile)
    out = hand_run_dir(profile.name, root)
    claims = claims_path(out, chapter)
    claims.unlink(missing_ok=True)  # the claims of this chapter are those of this run, or none
    out.mkdir(parents=True, exist_ok=True)
    parameters = {"profile": profile.name, "device": args.device or "auto", "seed": args.seed, "eps": args.eps}
    parameters = {k: v for k, v in parameters.items() if v is not None}
    if args.set:
        parameters["overrides"] = dict(item.split("=", 1) for item in args.set)
    cmd = papermill_command(root, chapter, out, parameters, flags=("--no-progress-bar",))
    env = absolute_environment()  # the chapter runs in chapters/: every path setting made absolute
    env.pop("ADVLOGITS_EXECUTED_DIR", None)  # a hand run: the build's folder is the build's alone
    print(f"hand run of {chapter} (profile {profile.name}) into {out}/", file=sys.stderr)
    if args.verbose:
        returncode = subprocess.run(cmd, env=env).returncode
        stderr = ""
    else:
        proc = subprocess.run(cmd, env=env, stderr=subprocess.PIPE, text=True)
        returncode, stderr = proc.returncode, proc.stderr or ""
    if returncode != 0:
        claims.unlink(missing_ok=True)  # a failed chapter leaves no claims behind
        print(
            f"advlogits: error: chapter {chapter} failed: {_papermill_error(stderr)} (the partly executed notebook "
            f"is {out / f'{chapter}.ipynb'}; --verbose shows the traceback)",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_scorecard(args: argparse.Namespace) -> int:
    profile = args.profile
    folder = hand_run_dir(profile, repository_root()) if args.hand_runs else build_dir(profile)
    path = folder / SCORECARD
    if not path.exists():
        _fail(
            f"no scorecard at {path}: build the book first (make book PROFILE={profile}) or run "
            f"`advlogits chapter 05_scorecard --profile {profile}` and read it with --hand-runs"
        )
    if args.against is not None:
        return _against(path, args.against, profile)
    records = json.loads(path.read_text())
    print(f"{'id':<4} {'verdict':<15} {'estimate [95% CI]':<30} {'threshold':<13} chapter")
    for r in records:
        number, threshold = (text.replace(NBSP, " ") for text in (claim_estimate(r), claim_threshold(r)))
        print(f"{r['id']:<4} {r['verdict']:<15} {number:<30} {threshold:<13} {r['chapter']}")
    return 0


def _against(scorecard: Path, record: Path, profile: str) -> int:
    """`advlogits scorecard --against`: the build's scorecard against a committed record, in one line (then one
    line per claim that differs); 0 when every verdict is the recorded one, 1 when one changed."""
    if not (record / "scorecard.json").is_file():
        _fail(
            f"argument --against: no committed record at {record / 'scorecard.json'}: give a folder such as "
            f"results/{profile}, which `make results PROFILE={profile}` writes after `make book PROFILE={profile}`"
        )
    try:
        comparison = compare_folders(scorecard, record, profile=profile)
    except RecordError as err:
        _fail(f"argument --against: {err}")
    print(comparison.line())
    for line in comparison.details():
        print(f"  {line}")
    return 0 if comparison.verdicts_match else 1


def _add(verbs: Any, name: str, text: str) -> argparse.ArgumentParser:
    """A sub-command whose own --help starts with the line its parent lists."""
    return verbs.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="advlogits",
        description=__doc__.split("\n\n")[0].replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--verbose", action="store_true", help="log every unit (trained / from store) to stderr; show tracebacks"
    )
    parser.add_argument("--version", action="version", version=f"advlogits {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    p = _add(verbs, "plan", "list the book's units of work, stored or missing, with cost estimates")
    _profile_arguments(p)
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
    r = _add(verbs, "run", "compute every missing unit of the plan")
    _profile_arguments(r)
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
        help="torch threads per unit, at most the cores outside Ray (default: 1 with workers)",
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
    c = _add(verbs, "chapter", "execute one chapter with papermill as a hand run, into _build/hand-runs/PROFILE")
    c.add_argument("name", help="a chapter, e.g. 04_distillation, 04 or distillation")
    _profile_arguments(c)
    c.set_defaults(run=cmd_chapter)
    sc = _add(verbs, "scorecard", "print the scorecard of a built profile")
    _profile_argument(sc)
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
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 (got {text!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 (got {value})")
    return value


def _one_line(err: BaseException) -> str:
    """An exception as one line: its message's first line (a worker's error arrives with its traceback)."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _bad_input(err: Exception) -> bool:
    """Whether ``err`` is the user's to fix (a path setting, a store that cannot be used): exit status 2. A
    `StoreError` can come only from a verb that imported `advlogits.fileio`, so this asks it only then."""
    fileio = sys.modules.get(f"{__package__}.fileio")
    return isinstance(err, SettingError) or (fileio is not None and isinstance(err, fileio.StoreError))


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
        if _bad_input(err):
            _fail(_one_line(err))
        print(
            f"advlogits: error: {_one_line(err)} ({type(err).__name__}; --verbose shows the traceback)", file=sys.stderr
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
