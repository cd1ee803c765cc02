"""The book's whole plan of work: every model, evaluation and stored table the chapters ask for, with dependencies.

`book_plan` lists the units in dependency order from the same calls the chapters make (`lineup` for the models,
the `Result` descriptions of `stored` for the results), so once every unit is stored, executing the chapters trains
and computes nothing. A unit knows its readable name, its store key, whether it is stored, how to compute it (through
the pipeline, so it is stored exactly where a chapter looks), which files it leaves in the store, and an estimate of
its cost from what similar units cost before.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checks import fail
from ..fileio import StoreError, read_checked, record_path
from ..profiles import Profile
from ..store import Store, canonical
from ..train import TrainConfig
from . import lineup, stored
from .stored import Result, model_key

KINDS = (
    "model",
    "train-logits",
    "evaluation",
    "eval-logits",
    "margin-drops",
    "gap-gradients",
    "linear-check",
    "masking",
    "robustbench-logits",
)


@dataclass(frozen=True)
class Unit:
    """One unit of the book's work."""

    id: str  # unique in a plan: the kind and the store key (and file) of what it makes
    kind: str  # one of KINDS
    name: str  # readable, e.g. "AT teacher, cpu, seed 0"
    key: str  # the store key of the entry it writes into
    deps: tuple[str, ...]  # ids of the units it needs first
    config: Any = field(compare=False)  # the entry's config
    compute: Callable[[Profile, Store], Any] = field(compare=False, repr=False)  # runs it through the pipeline
    result: Callable[[Store], Result | None] | None = field(compare=False, repr=False, default=None)

    def is_stored(self, store: Store) -> bool:
        """True when the store holds what the unit makes."""
        if self.kind == "model":
            return store.has_weights(self.key)
        result = self.result(store)
        return result is not None and result.is_stored(store)

    def files(self, store: Store) -> list[Path]:
        """The checked files the unit leaves in the store (with their checksum records), once it is stored."""
        if self.kind == "model":
            folder = store.entry(self.key)
            paths = [folder / name for name in ("config.json", "history.json", "model.pt")]
        else:
            result = self.result(store)
            paths = [] if result is None else [result.path(store)]
        return [p for path in paths for p in (path, record_path(path))]


def _readable(name: str, profile: Profile, seed: int | None) -> str:
    return f"{name}, {profile.name}" + (f", seed {seed}" if seed is not None else "")


class _Builder:
    """Collects units without duplicates (the ST teacher is asked for by four chapters), dependencies first."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.units: dict[str, Unit] = {}

    def add(self, unit: Unit) -> str:
        self.units.setdefault(unit.id, unit)
        return unit.id

    def model(self, config: TrainConfig, name: str) -> str:
        deps: tuple[str, ...] = ()
        if config.method == "distilled":
            images = dict(dataset=config.dataset, n_train=config.n_train, seed=config.seed)
            deps = tuple(
                self.train_logits(other, **images) for other in (config.teacher, config.reference) if other is not None
            )
        key = model_key(config)

        def compute(profile: Profile, store: Store) -> Any:
            return stored.get_model(config, store=store, device=profile.device, progress=False)

        return self.add(Unit(f"model:{key}", "model", name, key, deps, config, compute))

    def train_logits(self, config: TrainConfig, *, dataset: str, n_train: int | None, seed: int) -> str:
        dep = self.model(config, self._model_name(config))
        result = stored.train_logits_result(config, dataset=dataset, n_train=n_train, seed=seed)

        def compute(profile: Profile, store: Store) -> Any:
            return stored.train_logits(
                config, dataset=dataset, n_train=n_train, seed=seed, store=store, device=profile.device
            )

        return self._result(
            "train-logits",
            f"logits of {self._model_name(config)} on the images of seed {seed}",
            config,
            result,
            (dep,),
            compute,
        )

    def _result(
        self,
        kind: str,
        name: str,
        config: Any,
        result: Result,
        deps: tuple[str, ...],
        compute: Callable[[Profile, Store], Any],
    ) -> str:
        key = model_key(config)
        return self.add(
            Unit(f"{kind}:{key}:{result.file_name()}", kind, name, key, deps, config, compute, lambda _store: result)
        )

    def _model_name(self, config: TrainConfig) -> str:
        return _readable(stored.describe(config), self.profile, None)

    def evaluation(self, config: TrainConfig, name: str, *, autoattack_scope: str = "clean-correct") -> str:
        dep = self.model(config, name)
        p = self.profile
        result = stored.evaluation_result(p, config, autoattack_scope=autoattack_scope)

        def compute(profile: Profile, store: Store) -> Any:
            return stored.evaluate(profile, config, store=store, progress=False, autoattack_scope=autoattack_scope)

        return self._result("evaluation", f"evaluation of {name}", config, result, (dep,), compute)

    def per_model(self, kind: str, config: TrainConfig, name: str) -> str:
        dep = self.model(config, name)
        p = self.profile
        function = {
            "eval-logits": stored.eval_logits,
            "margin-drops": stored.margin_drops,
            "gap-gradients": stored.gap_gradients,
            "linear-check": stored.linear_check,
        }[kind]
        describe = {
            "eval-logits": stored.eval_logits_result,
            "margin-drops": stored.margin_drops_result,
            "gap-gradients": stored.gap_gradients_result,
            "linear-check": stored.linear_check_result,
        }[kind]

        def compute(profile: Profile, store: Store) -> Any:
            return function(profile, config, store=store)

        return self._result(kind, f"{kind.replace('-', ' ')} of {name}", config, describe(p, config), (dep,), compute)

    def masking(self, config: TrainConfig, name: str, teacher: TrainConfig, *, autoattack_scope: str) -> str:
        """The gradient-masking checks need the model's evaluation first: their key includes its outcomes."""
        deps = (
            self.model(config, name),
            self.model(teacher, self._model_name(teacher)),
            self.evaluation(config, name, autoattack_scope=autoattack_scope),
        )
        p = self.profile
        evaluation = stored.evaluation_result(p, config, autoattack_scope=autoattack_scope)

        def result(store: Store) -> Result | None:
            data = read_checked(evaluation.path(store))
            if data is None:
                return None
            return stored.masking_result(p, config, teacher, robust=json.loads(data)["robust_correct"])

        def compute(profile: Profile, store: Store) -> Any:
            robust = stored.evaluate(profile, config, store=store, autoattack_scope=autoattack_scope)
            return stored.masking_checks(profile, config, teacher, robust=robust["robust_correct"], store=store)

        key = model_key(config)
        return self.add(
            Unit(
                f"masking:{key}:{model_key(teacher)}",
                "masking",
                f"gradient-masking checks of {name}",
                key,
                deps,
                config,
                compute,
                result,
            )
        )

    def robustbench(self, model_name: str, model_dir: Path) -> str:
        entry = stored.robustbench_entry(model_name)
        result = stored.eval_logits_result(self.profile, entry)

        def compute(profile: Profile, store: Store) -> Any:
            return stored.robustbench_logits(profile, model_name, model_dir=model_dir, store=store)

        return self._result("robustbench-logits", f"logits of RobustBench {model_name}", entry, result, (), compute)


def book_plan(
    profile: Profile, *, robustbench_models: Sequence[str] = (), model_dir: str | Path | None = None
) -> list[Unit]:
    """Every unit the chapters of ``profile`` ask for, dependencies first (see the module docstring).

    ``robustbench_models`` are the RobustBench models chapter 2 analyses (none outside the paper profile), read from
    ``model_dir`` (default: the store's ``robustbench/`` folder, where chapter 2 looks).
    """
    b = _Builder(profile)
    p = profile
    teachers = lineup.teachers(p)
    names = {"ST": "ST teacher", "AT": "AT teacher", "ST'": "ST' (seed baseline)", "AT'": "AT' (seed baseline)"}
    # chapter 1: the teachers, their evaluation and logits
    for key, config in teachers.items():
        b.evaluation(config, _readable(names[key], p, config.seed))
        b.per_model("eval-logits", config, _readable(names[key], p, config.seed))
    # chapters 2 and 3: the seed baselines, the eps sweep, the linear models, margin drops, gap gradients, the
    # closed-form check
    for key, config in lineup.seed_baselines(p).items():
        b.per_model("eval-logits", config, _readable(names[key], p, config.seed))
    for key, config in teachers.items():
        b.per_model("margin-drops", config, _readable(names[key], p, config.seed))
    for family, by_seed in (
        ("eps-sweep network", lineup.eps_sweeps(p)),
        ("linear model", lineup.linear_model_seeds(p)),
    ):
        for seed, configs in by_seed.items():
            for eps, config in configs.items():
                name = _readable(f"{family}, eps {eps:.3g}", p, config.seed)
                b.per_model("eval-logits", config, name)
                if eps == 0:
                    b.per_model("gap-gradients", config, name)
                if family == "linear model" and eps in (0.0, p.eps) and seed == p.seed:  # the closed-form check
                    b.per_model("linear-check", config, name)
    if robustbench_models:
        folder = Path(model_dir) if model_dir is not None else Store().root / "robustbench"
        for model_name in robustbench_models:
            b.robustbench(model_name, folder)
    # chapter 4: every student and its evaluation; the teachers' logits the chapter reads; fidelity; masking
    students = lineup.students(p)
    first = p.student_seeds[0]
    for s in students:
        scope = "clean-correct" if s.role == "teacher" else "pgd-survivors"
        name = _readable(s.name, p, s.seed)
        b.evaluation(s.config, name, autoattack_scope=scope)
        if s.role != "sweep":  # every seed's: the record keeps each student's fidelity per seed
            b.per_model("eval-logits", s.config, name)
    images = dict(dataset=p.dataset, n_train=p.student_n_train, seed=first)
    for config in teachers.values():
        b.train_logits(config, **images)
    for s in lineup.masking_checked(p, students):
        own_teacher = p.adversarial(seed=s.teacher_seed)  # the transfer attack comes from the student's teacher
        b.masking(s.config, _readable(s.name, p, s.seed), own_teacher, autoattack_scope="pgd-survivors")
    return list(b.units.values())


def ordered(units: Sequence[Unit]) -> list[Unit]:
    """``units`` with every unit after its dependencies (refused if a dependency is missing or there is a cycle)."""
    by_id = {u.id: u for u in units}
    out: list[Unit] = []
    state: dict[str, int] = {}

    def visit(unit: Unit) -> None:
        if state.get(unit.id) == 2:
            return
        if state.get(unit.id) == 1:
            fail("units", "free of dependency cycles", unit.id)
        state[unit.id] = 1
        for dep in unit.deps:
            if dep not in by_id:
                fail("units", f"complete (every dependency of {unit.name} listed)", dep)
            visit(by_id[dep])
        state[unit.id] = 2
        out.append(unit)

    for unit in units:
        visit(unit)
    return out


STATES = ("stored", "missing", "corrupt")


def state(unit: Unit, store: Store) -> str:
    """``"stored"`` only when the store holds what the unit makes and every file of it agrees with its checksum
    record (read whole), ``"corrupt"`` when one disagrees, else ``"missing"``."""
    try:
        if not unit.is_stored(store):
            return "missing"
        return "corrupt" if store.corrupt_files(unit.files(store)) else "stored"
    except StoreError:  # what the unit's key reads (an evaluation, for the masking checks) is corrupt
        return "corrupt"


def move_aside(unit: Unit, store: Store) -> list[Path]:
    """Move the files of a corrupt unit aside (`Store.move_aside`), so that it reads as missing: every file of a
    model (config, history, weights), or the one file of a result."""
    try:
        files = unit.files(store)
    except StoreError:  # a dependency is corrupt: it is moved aside itself, and this unit then reads as missing
        return []
    return store.move_aside(p for p in files if not p.name.endswith(".sha256"))


def estimate_seconds(unit: Unit, store: Store, *, plan_keys: Collection[str] | None = None) -> float | None:
    """What the unit cost before, from units of the same plan only (``plan_keys``: the store keys of its units, so
    that a store of another profile's runs gives no estimate rather than a wrong one): for a stored model its own
    training time; for a missing one the training time of a stored model of the same config but another seed; for
    results, the mean time of the same kind of result in the plan's entries, from their compute logs. None when
    nothing comparable is stored (or what would be read is corrupt)."""
    try:
        if unit.kind == "model":
            return _model_seconds(unit, store)
        name = "eval-logits" if unit.kind == "robustbench-logits" else unit.kind
        seconds = store.compute_seconds(name, keys=plan_keys)
    except StoreError:
        return None
    return sum(seconds) / len(seconds) if seconds else None


def spent_seconds(unit: Unit, store: Store) -> float | None:
    """What a stored unit took to compute, from its own records: a model's training time (its history), a result's
    time in its entry's compute log (the mean if it was computed more than once). None when it left no record (a
    result copied in from another store) or the record is corrupt."""
    try:
        if unit.kind == "model":
            return _trained_seconds(store, unit.key)
        name = "eval-logits" if unit.kind == "robustbench-logits" else unit.kind
        seconds = store.compute_seconds(name, keys=[unit.key])
    except StoreError:
        return None
    return sum(seconds) / len(seconds) if seconds else None


def _model_seconds(unit: Unit, store: Store) -> float | None:
    """A model's own training time, or that of a stored model of the same config but another seed."""
    if store.has_weights(unit.key):
        return _trained_seconds(store, unit.key)
    similar = _without_seed(unit.config)
    for key in store.keys():
        try:
            config = store.config_of(key)
        except StoreError:
            continue
        if config is not None and _without_seed(config) == similar and store.has_weights(key):
            return _trained_seconds(store, key)
    return None


def _trained_seconds(store: Store, key: str) -> float | None:
    history = json.loads(read_checked(store.entry(key) / "history.json") or b"{}")
    return float(sum(history.get("seconds", []))) or None


def _without_seed(config: Any) -> Any:
    data = canonical(config) if isinstance(config, TrainConfig) else dict(config)
    return {k: v for k, v in data.items() if k != "seed"}


def with_device(profile: Profile, device: str) -> Profile:
    """``profile`` computing on ``device`` (a worker's own device)."""
    return dataclasses.replace(profile, device=device)


__all__ = [
    "KINDS",
    "STATES",
    "Unit",
    "book_plan",
    "estimate_seconds",
    "spent_seconds",
    "move_aside",
    "ordered",
    "state",
    "with_device",
]
