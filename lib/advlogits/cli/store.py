"""The verbs of the store (``$ADVLOGITS_HOME``): ``advlogits store ls | show KEY | verify | repair | rm KEY | gc``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import fail, one_line

if TYPE_CHECKING:
    from ..store import Store


def cmd_store(args: argparse.Namespace) -> int:
    """`advlogits store ACTION`: the action's lines on stdout; exit status 1 when `verify` finds a corrupt file."""
    from ..store import Store

    actions = {"ls": _ls, "show": _show, "verify": _verify, "repair": _repair, "rm": _rm, "gc": _gc}
    return actions[args.action](Store(), args)


def _entry(store: Store, name: str) -> str:
    keys = [k for k in store.keys() if k.startswith(name)]
    if len(keys) != 1:
        found = "no entry" if not keys else f"{len(keys)} entries"
        fail(f"argument KEY: must name one store entry, by its key or a unique prefix (got {name!r}: {found})")
    return keys[0]


def describe_entry(config: dict | None) -> str:
    """A readable name of a stored entry from its config.json, as the pipeline's log names it (`describe`)."""
    from ..pipeline import describe
    from ..store import from_canonical
    from ..train import TrainConfig

    if config is None:
        return "results only"
    try:
        return describe(from_canonical(config, [TrainConfig]))
    except (TypeError, ValueError) as err:
        return f"a config this version cannot read ({one_line(err)})"


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _ls(store: Store, args: argparse.Namespace) -> int:
    """`advlogits store ls`: one line per entry (model or not, results, size, what it is), then how many."""
    from ..fileio import REPAIR, StoreError

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
            f"{key}  {model}  {results:3d} results  {_size(store.entry(key)) / 1e6:8.1f} MB  {describe_entry(config)}"
        )
    print(f"{len(keys)} entries in {store.root}")
    return 0


def _show(store: Store, args: argparse.Namespace) -> int:
    """`advlogits store show KEY`: the entry's config, its files with their sizes, and its training time."""
    from ..fileio import StoreError, read_checked

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
    return 0


def _verify(store: Store, args: argparse.Namespace) -> int:
    """`advlogits store verify`: every corrupt file named; exit status 1 when there is one."""
    from ..fileio import REPAIR

    results = store.verify()
    corrupt = [p for p, state in results.items() if state != "ok"]
    for path in corrupt:
        print(f"corrupt: {path}")
    print(
        f"{len(results)} files checked, {len(corrupt)} corrupt"
        + (f" (`{REPAIR}` moves them aside; what needs them computes them again)" if corrupt else "")
    )
    return 1 if corrupt else 0


def _repair(store: Store, args: argparse.Namespace) -> int:
    """`advlogits store repair`: every corrupt file moved aside and named."""
    moved = store.repair()
    for path in moved:
        print(f"moved aside: {path}")
    print(
        f"{len(moved)} corrupt files moved aside"
        + (" (the next run or chapter computes them again)" if moved else ": nothing to repair")
    )
    return 0


def _rm(store: Store, args: argparse.Namespace) -> int:
    """`advlogits store rm KEY`: the entry removed (a `StoreError` when it is still there)."""
    key = _entry(store, args.key)
    store.remove(key)
    print(f"removed {key}")
    return 0


def _gc(store: Store, args: argparse.Namespace) -> int:
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
