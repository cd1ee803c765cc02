"""The verbs of the plan of work: ``advlogits plan`` lists its units, stored or missing, with cost estimates;
``advlogits run`` computes the missing ones (see `advlogits.pipeline.executors`)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
from typing import TYPE_CHECKING

from .errors import fail
from .profile_args import plan_spec

if TYPE_CHECKING:
    from ..pipeline.executors import RunReport

RAY_ADDRESS = re.compile(r"^(auto|ray://[^:/\s]+:\d+|[^:/\s]+:\d+)$")  # 'auto', ray://host:port or host:port


def format_seconds(seconds: float) -> str:
    """A unit's cost estimate as the plan prints it: whole seconds, or "<1 s"."""
    return "<1 s" if seconds < 1 else f"{seconds:.0f} s"


def cmd_plan(args: argparse.Namespace) -> int:
    """`advlogits plan`: one line per unit (state, estimate, name), then the summary; with --check the summary only,
    exit status 0 when every unit is stored."""
    from ..pipeline import plan as plan_module
    from ..store import Store

    spec, store = plan_spec(args), Store()
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
    spent = [plan_module.spent_seconds(u, store) for u in units if states[u.id] == "stored"]
    print(spent_summary(spent))
    print(plan_summary(len(units), missing, known, total, corrupt=corrupt, profile=spec.profile.name))
    return 0


def spent_summary(spent: list[float | None]) -> str:
    """What the stored units cost, from their own records: the one-thread compute a build of the plan took."""
    if not spent:
        return "nothing stored yet: no compute spent on this plan"
    recorded = [s for s in spent if s is not None]
    unrecorded = len(spent) - len(recorded)
    line = f"the {len(spent)} stored units took {sum(recorded) / 3600:.2f} h of one-thread compute"
    return line + (f" ({unrecorded} of them left no record of their time)" if unrecorded else "")


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
        fail(f"argument --address: only with --executor ray (got --executor {args.executor})")
    if args.address is not None and not RAY_ADDRESS.match(args.address):
        fail(f"argument --address: must be 'auto', ray://host:port or host:port (got {args.address!r})")
    if args.address is not None and args.address.startswith("ray://") and not ray_client_installed():
        fail(
            f"argument --address: {args.address} needs the Ray client (grpcio), which is not installed: "
            "pip install -e '.[cluster]' installs it with Ray (ray[client]); or give the cluster as host:port or "
            "'auto' on one of its machines"
        )
    cores = os.cpu_count() or 1
    if args.executor != "ray" and args.threads is not None and args.threads > cores:
        fail(f"argument --threads: must be at most the {cores} cores of this machine (got {args.threads})")


def cmd_run(args: argparse.Namespace) -> int:
    """`advlogits run`: compute every missing unit of the plan, then say in one line what was done."""
    _check_run_arguments(args)
    from ..pipeline.executors import run_plan
    from ..store import Store

    spec = plan_spec(args)
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
