"""The arguments that choose a profile (--profile, --device, --seed, --eps, --set): declared on a verb's parser, and
read back as the `Profile` they name and the plan of work it gives."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..names import PROFILES
from .errors import fail

if TYPE_CHECKING:
    from ..pipeline.executors import PlanSpec
    from ..profiles import Profile


def profile_argument(parser: argparse.ArgumentParser) -> None:
    """--profile alone (the verbs that read a built profile)."""
    parser.add_argument("--profile", default="cpu", choices=PROFILES, help="the run profile (default: cpu)")


def profile_arguments(parser: argparse.ArgumentParser) -> None:
    """--profile and what overrides its fields (the verbs that compute)."""
    profile_argument(parser)
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


def resolve_profile(args: argparse.Namespace) -> Profile:
    """The profile of `profile_arguments`, validated by `advlogits.profiles.resolve`; bad input exits with 2."""
    overrides: dict[str, str] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"argument --set: expected KEY=VALUE, e.g. --set n_eval=200 (got {item!r})")
        overrides[key.strip()] = value.strip()
    given = {"device": args.device, "seed": args.seed, "eps": args.eps}
    for key in sorted(set(overrides) & {k for k, v in given.items() if v is not None}):
        fail(f"argument --set: {key} is given twice, as --{key} and --set {key}=...; keep one")
    given["device"] = args.device or overrides.pop("device", "auto")
    from ..profiles import resolve

    try:
        return resolve(args.profile, **{**given, **overrides})
    except ValueError as err:
        message = str(err)
        fail("argument --set: " + message[len("overrides ") :] if message.startswith("overrides ") else message)


def plan_spec(args: argparse.Namespace) -> PlanSpec:
    """The plan of work of the profile and of the RobustBench models (--robustbench, or the paper profile's)."""
    from ..models import robustbench_zoo_entry
    from ..pipeline.executors import PlanSpec
    from ..pipeline.lineup import PAPER_ROBUSTBENCH_MODELS

    profile = resolve_profile(args)
    names = ()
    if getattr(args, "robustbench", None) is not None:
        names = tuple(args.robustbench)
        for name in names:
            try:
                robustbench_zoo_entry(name)
            except (ValueError, ImportError) as err:
                fail(f"argument --robustbench: {err}")
    elif profile.name == "paper":
        names = PAPER_ROBUSTBENCH_MODELS
        try:
            robustbench_zoo_entry(names[0])
        except ImportError as err:
            fail(f"argument --profile: {err}")
    return PlanSpec(profile, names, None)
