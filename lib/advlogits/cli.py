"""The ``advlogits`` command line: the book's plan of work, running it, the store, one chapter, the scorecard.

    advlogits plan --profile cpu                  the units of work, stored or missing, with a cost estimate
    advlogits plan --profile cpu --check          exit status 0 when every unit is stored (`make execute` asks)
    advlogits run --profile cpu --workers 2       compute what is missing (--executor serial | local | ray)
    advlogits store ls | show KEY | verify | rm KEY | gc
    advlogits chapter 04_distillation --profile smoke
    advlogits scorecard --profile cpu

``chapter`` executes into the build's own folder on purpose (``_build/executed/<profile>``, or
``$ADVLOGITS_EXECUTED_DIR``), as ``make execute`` does, so its claims count in the build's scorecard; a chapter run
by hand (papermill or Jupyter) writes its claims into ``_build/hand-runs/<profile>`` instead.

Bad input exits with status 2 and one line naming the argument and what it accepts, before any compute.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .fileio import StoreError, read_checked
from .models import robustbench_zoo_entry
from .pipeline import plan as plan_module
from .pipeline.executors import EXECUTORS, PlanSpec, RunReport, run_plan
from .pipeline.lineup import PAPER_ROBUSTBENCH_MODELS
from .profiles import PROFILES, resolve
from .store import Store


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: what is wrong, and what is allowed."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"advlogits: error: {message}\n")


def _profile_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="cpu", choices=PROFILES, help="the run profile (default: cpu)")
    parser.add_argument("--device", default=None, help="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps' (default: auto)")
    parser.add_argument("--seed", type=int, default=None, help="the main seed (default: the profile's)")
    parser.add_argument(
        "--eps", type=float, default=None, help="the L-inf radius in pixel units (default: the profile's)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other profile field, e.g. --set n_eval=200 (repeatable)",
    )


def _resolve(args: argparse.Namespace) -> Any:
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
    try:
        return resolve(args.profile, **{**given, **overrides})
    except ValueError as err:
        message = str(err)
        _fail("argument --set: " + message[len("overrides ") :] if message.startswith("overrides ") else message)


def _fail(message: str) -> NoReturn:
    print(f"advlogits: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _spec(args: argparse.Namespace) -> PlanSpec:
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
    spec, store = _spec(args), Store()
    units = plan_module.ordered(spec.units())
    if args.check:
        missing = sum(1 for u in units if not u.is_stored(store))
        print(f"{len(units)} units, all stored" if missing == 0 else f"{len(units)} units, {missing} missing")
        return 0 if missing == 0 else 1
    total, known = 0.0, 0
    print(f"{'status':<8} {'estimate':>9}  unit")
    for unit in units:
        done = unit.is_stored(store)
        estimate = None if done else plan_module.estimate_seconds(unit, store)
        if estimate is not None:
            total, known = total + estimate, known + 1
        cost = "" if done else ("?" if estimate is None else format_seconds(estimate))
        print(f"{'stored' if done else 'missing':<8} {cost:>9}  {unit.name} [{unit.kind}, {unit.key}]")
    missing = sum(1 for u in units if not u.is_stored(store))
    print(plan_summary(len(units), missing, known, total))
    return 0


def plan_summary(n_units: int, missing: int, known: int, seconds: float) -> str:
    """The last line of `advlogits plan`: how much is missing and what the missing units with an estimate cost."""
    if missing == 0:
        return f"{n_units} units, all stored: nothing to compute"
    if known == 0:
        return f"{n_units} units, {missing} missing; none has an estimate yet (nothing comparable is stored)"
    return (
        f"{n_units} units, {missing} missing; estimated {seconds / 60:.1f} min for the {known} missing units "
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
    return line + f"; {len(report.from_store)} were stored"


def cmd_run(args: argparse.Namespace) -> int:
    if args.address is not None and args.executor != "ray":
        _fail(f"argument --address: only with --executor ray (got --executor {args.executor})")
    spec = _spec(args)
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
    """A readable name of a stored entry from its config.json."""
    if config is None:
        return "results only"
    if "robustbench" in config:
        return f"RobustBench {config['robustbench']}"
    parts = [
        config.get("method", "?"),
        config.get("arch", "?"),
        config.get("dataset", "?"),
        f"seed {config.get('seed')}",
    ]
    if config.get("method") == "adversarial":
        parts.append(f"eps {float(config['eps']):.4g}")
    if config.get("method") == "distilled":
        teacher = config.get("teacher") or {}
        corrected = "label-corrected " if config.get("label_corrected") else ""
        parts.append(f"targets {corrected}{config.get('targets')} of the {teacher.get('method')} teacher")
    return ", ".join(parts)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def cmd_store(args: argparse.Namespace) -> int:
    store = Store()
    if args.action == "ls":
        keys = store.keys()
        for key in keys:
            try:
                config = store.config_of(key)
            except StoreError:
                print(f"{key}  CORRUPT config.json: `advlogits store rm {key[:12]}` removes the entry")
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
            + (" (rm their entries to recompute them)" if corrupt else "")
        )
        return 1 if corrupt else 0
    elif args.action == "rm":
        key = _entry(store, args.key)
        store.remove(key)
        print(f"removed {key}")
    else:  # gc
        stale = store.stale_files()
        for path in stale:
            path.unlink(missing_ok=True)
            print(f"removed {path}")
        print(f"{len(stale)} stale files removed")
    return 0


def repository_root() -> Path:
    """The repository holding the chapters: the working directory or a parent with ``_toc.yml``."""
    here = Path.cwd()
    root = next((p for p in (here, *here.parents) if (p / "_toc.yml").exists() and (p / "chapters").is_dir()), None)
    if root is None:
        _fail("the chapters are not here: run `advlogits chapter` inside the repository (a folder with _toc.yml)")
    return root


def executed_folder(root: Path | None, profile: str) -> Path:
    """Where the build executes the chapters of ``profile``: $ADVLOGITS_EXECUTED_DIR, else inside ``root``."""
    if os.environ.get("ADVLOGITS_EXECUTED_DIR"):
        return Path(os.environ["ADVLOGITS_EXECUTED_DIR"])
    return (root or repository_root()) / "_build" / "executed" / profile


def cmd_chapter(args: argparse.Namespace) -> int:
    root = repository_root()
    chapters = sorted(p.stem for p in (root / "chapters").glob("*.ipynb"))
    matches = [
        c for c in chapters if c == args.name or c.split("_", 1)[0] == args.name or c.split("_", 1)[-1] == args.name
    ]
    if len(matches) != 1:
        _fail(f"argument NAME: must be one of {', '.join(chapters)} (got {args.name!r})")
    profile = _resolve(args)
    out = executed_folder(root, profile.name)
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "papermill",
        str(root / "chapters" / f"{matches[0]}.ipynb"),
        str(out / f"{matches[0]}.ipynb"),
        "-k",
        "python3",
        "--cwd",
        str(root / "chapters"),
        "--no-progress-bar",
        "-p",
        "profile",
        profile.name,
        "-p",
        "device",
        args.device or "auto",
    ]
    if args.seed is not None:
        cmd += ["-p", "seed", str(args.seed)]
    if args.eps is not None:
        cmd += ["-p", "eps", str(args.eps)]
    if args.set:
        cmd += ["-y", json.dumps({"overrides": dict(item.split("=", 1) for item in args.set)})]
    env = {**os.environ, "ADVLOGITS_EXECUTED_DIR": str(out)}
    return subprocess.run(cmd, env=env).returncode


def cmd_scorecard(args: argparse.Namespace) -> int:
    profile = _resolve(args)
    path = executed_folder(None, profile.name) / "scorecard.json"
    if not path.exists():
        _fail(
            f"no scorecard at {path}: build the book first (make book PROFILE={profile.name}) or run "
            f"`advlogits chapter 05_scorecard --profile {profile.name}`"
        )
    records = json.loads(path.read_text())
    print(f"{'id':<3} {'verdict':<15} {'estimate [95% CI]':<28} threshold  chapter")
    for r in records:
        ci = r.get("ci")
        number = (
            "n/a"
            if r.get("estimate") is None
            else f"{r['estimate']:.3g}" + (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else "")
        )
        print(f"{r['id']:<3} {r['verdict']:<15} {number:<28} {r['threshold']:<10g} {r['chapter']}")
    return 0


def _add(verbs: Any, name: str, text: str) -> argparse.ArgumentParser:
    """A sub-command whose own --help starts with the line its parent lists."""
    return verbs.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="advlogits",
        description=__doc__.split("\n\n")[0].replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--verbose", action="store_true", help="log every unit (trained / from store) to stderr")
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)
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
    r.add_argument("--threads", type=_positive, default=None, help="torch threads per unit (default: 1 with workers)")
    r.add_argument(
        "--address",
        default=None,
        help="a Ray cluster to join: 'auto' or ray://host:port (default: start Ray on this machine)",
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
    rm = _add(actions, "rm", "remove one entry (its model and results)")
    rm.add_argument("key", help="an entry's key, or a unique prefix of it")
    _add(actions, "gc", "remove temporary files of killed writers, incomplete files and free locks")
    s.set_defaults(run=cmd_store)
    c = _add(
        verbs, "chapter", "execute one chapter with papermill into the build's folder (its claims replace the build's)"
    )
    c.add_argument("name", help="a chapter, e.g. 04_distillation, 04 or distillation")
    _profile_arguments(c)
    c.set_defaults(run=cmd_chapter)
    sc = _add(verbs, "scorecard", "print the scorecard of a built profile")
    _profile_arguments(sc)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return args.run(args)
    except StoreError as err:
        _fail(str(err))
    except BrokenPipeError:  # e.g. `advlogits store ls | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
