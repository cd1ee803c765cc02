"""The book's computations through the store: "the model of this config, trained on a miss", its evaluation,
its logits, and the teachers' logits that distillation targets are built from.

Each function computes once and stores the result under a key, so re-running a chapter (or another chapter
asking for the same model) costs a file read. Which source code enters a key is declared here, once:

* a model's key: its config and the source of `MODEL_SOURCES`, the modules that train it;
* a stored result's key: the model's key, the result's parameters and the source of `RESULT_SOURCES`, the
  modules that compute it.

Statistics, tables, figures, claims and the chapter modules are in no key: editing them never retrains a model
or recomputes a result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .. import (
    accel,
    attacks,
    augmentation,
    autoattack,
    data,
    datafiles,
    distill,
    evaluation,
    logits,
    margins,
    models,
    predict,
    train,
)
from ..data import load_dataset
from ..predict import predict_logits
from ..profiles import Profile
from ..store import Store, config_key, source_digest
from ..train import TrainConfig
from . import masking, measures, training

# The modules whose code decides what a trained model contains (`advlogits.passes` only counts: it is in no key).
MODEL_SOURCES = (data, datafiles, augmentation, models, accel, predict, attacks, evaluation, distill, train, training)
# The modules whose source decides a stored result, beside the model's: what measures it.
RESULT_SOURCES = (measures, masking, margins, logits, autoattack)

# The radii of the gradient-masking checks' robust-accuracy curve: multiples of the profile's eps, then 0.5, where
# any genuine model must fall to 0 (how many images and Square queries are the profile's `masking_images` and
# `masking_queries`).
MASKING_RADII = (1.0, 2.0, 3.0)

log = logging.getLogger("advlogits")


def model_code() -> str:
    """Digest of `MODEL_SOURCES`."""
    return source_digest(MODEL_SOURCES)


def result_code() -> str:
    """Digest of `RESULT_SOURCES` and `MODEL_SOURCES`."""
    return source_digest(MODEL_SOURCES + RESULT_SOURCES)


def model_key(config: Any) -> str:
    """The store key of the model (or other entry) ``config`` names."""
    return config_key(config, code=model_code())


def describe(config: TrainConfig) -> str:
    """A short readable name of a config for logs: method, architecture, data set, seed (and eps, teacher)."""
    parts = [config.method, config.arch, config.dataset, f"seed {config.seed}"]
    if config.method == "adversarial":
        parts.append(f"eps {config.eps:.4g}")
    if config.method == "distilled":
        corrected = "label-corrected " if config.label_corrected else ""
        parts.append(f"targets {corrected}{config.targets} of the {config.teacher.method} teacher")
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------------------------
# models


def get_model(
    config: TrainConfig, *, store: Store | None = None, device: str | torch.device = "cpu", progress: bool = True
) -> tuple[nn.Module, dict]:
    """The model of ``config`` in eval mode on ``device`` with its training history: from the store, or trained
    now (once, even across processes; a distilled student's teachers first) and stored."""
    store = store or Store()
    key = model_key(config)
    began = time.perf_counter()

    def compute(checkpoint: Path) -> tuple[dict[str, Tensor], dict]:
        teacher = reference = None
        if config.method == "distilled":
            images = dict(dataset=config.dataset, n_train=config.n_train, seed=config.seed, store=store, device=device)
            teacher = train_logits(config.teacher, **images)
            if config.reference is not None:
                reference = train_logits(config.reference, **images)
        model, history = training.train_model(
            config,
            device=device,
            teacher_logits=teacher,
            reference_logits=reference,
            checkpoint=checkpoint,
            progress=progress,
        )
        return model.state_dict(), history

    state, history, trained = store.get_or_compute_weights(key, config=config, compute=compute)
    log.info("%s %s (%.1f s)", "trained" if trained else "from store", describe(config), time.perf_counter() - began)
    model = training.model_from_state(config, state, source=store.entry(key) / "model.pt")
    return model.to(device), history


def has_model(config: TrainConfig, *, store: Store | None = None) -> bool:
    """True when the store holds the model of ``config``."""
    return (store or Store()).has_weights(model_key(config))


# --------------------------------------------------------------------------------------------------------------
# results: each is described by a `Result` (its entry, name and parameters), which both the function computing it
# and the plan of the book's work (`advlogits.pipeline.plan`) read, so they name the same file


@dataclass(frozen=True)
class Result:
    """A stored result: the config whose entry holds it, its name, the parameters in its key, its format."""

    config: Any  # a TrainConfig, or a JSON-able dict for an entry of results only (a RobustBench model)
    name: str  # "evaluation", "eval-logits", ...
    params: dict  # what else the result depends on (images, attack settings)
    tensors: bool  # stored as tensors (.pt) or as JSON

    def file_name(self) -> str:
        """The result's file name in its entry's ``results/`` folder (the same in every store)."""
        return self.path(Store("/")).name

    def path(self, store: Store) -> Path:
        """Where the result lives in ``store``."""
        return store.result_path(
            model_key(self.config), self.name, self.params, ".pt" if self.tensors else ".json", code=result_code()
        )

    def is_stored(self, store: Store) -> bool:
        """True when ``store`` holds the result complete."""
        return store.has_result(
            model_key(self.config), self.name, self.params, ".pt" if self.tensors else ".json", code=result_code()
        )

    def get_or_compute(self, compute: Callable[[], Any], *, store: Store) -> Any:
        """The stored result, or ``compute()`` run once (even across processes) and stored."""
        key, code = model_key(self.config), result_code()
        began, was_stored = time.perf_counter(), self.is_stored(store)
        if self.tensors:
            out = store.get_or_compute_tensors(key, self.name, self.params, compute, code=code)
        else:
            out = store.get_or_compute_json(key, self.name, self.params, compute, code=code)
        log.info(
            "%s %s of %s (%.1f s)",
            "from store" if was_stored else "computed",
            self.name,
            _name_of(self.config),
            time.perf_counter() - began,
        )
        return out


def _name_of(config: Any) -> str:
    return describe(config) if isinstance(config, TrainConfig) else str(config)


def train_logits_result(config: TrainConfig, *, dataset: str, n_train: int | None, seed: int) -> Result:
    """The `train_logits` of ``config`` on the training images (dataset, n_train, seed)."""
    return Result(config, "train-logits", {"dataset": dataset, "n_train": n_train, "seed": seed}, tensors=True)


def train_logits(
    config: TrainConfig,
    *,
    dataset: str,
    n_train: int | None,
    seed: int,
    store: Store | None = None,
    device: str | torch.device = "cpu",
) -> Tensor:
    """Logits of the model ``config`` on the training images ``load_dataset(dataset, "train", n=n_train,
    seed=seed)``: a student's distillation targets before any manipulation, stored once per teacher and image set.
    """
    store = store or Store()

    def compute() -> dict[str, Tensor]:
        model, _ = get_model(config, store=store, device=device)
        x, _ = load_dataset(dataset, "train", n=n_train, seed=seed)
        return {"logits": predict_logits(model, x)}

    result = train_logits_result(config, dataset=dataset, n_train=n_train, seed=seed)
    return result.get_or_compute(compute, store=store)["logits"]


def eval_split(profile: Profile) -> tuple[Tensor, Tensor]:
    """The profile's fixed, seeded evaluation subset of the test split: (x, y)."""
    return load_dataset(profile.dataset, "test", n=profile.n_eval, seed=profile.seed)


def _eval_images(profile: Profile) -> dict:
    return {"dataset": profile.dataset, "n_eval": profile.n_eval, "seed": profile.seed}


def eval_logits_result(profile: Profile, config: Any) -> Result:
    """The `eval_logits` of ``config`` (a TrainConfig, or a RobustBench entry) on the profile's evaluation images."""
    return Result(config, "eval-logits", _eval_images(profile), tensors=True)


def eval_logits(profile: Profile, config: TrainConfig, *, store: Store | None = None) -> Tensor:
    """Logits (n_eval, K) of the model ``config`` on the profile's evaluation subset, stored once."""
    store = store or Store()

    def compute() -> dict[str, Tensor]:
        model, _ = get_model(config, store=store, device=profile.device)
        return {"logits": predict_logits(model, eval_split(profile)[0])}

    return eval_logits_result(profile, config).get_or_compute(compute, store=store)["logits"]


def _attack_params(profile: Profile) -> dict:
    return {
        k: getattr(profile, k)
        for k in ("eps", "eval_alpha", "eval_steps", "eval_restarts", "n_eval", "n_autoattack", "seed", "dataset")
    }


def evaluation_result(profile: Profile, config: TrainConfig, *, autoattack_scope: str = "clean-correct") -> Result:
    """The `evaluate` result of ``config`` at the profile's attack settings."""
    params = {
        **_attack_params(profile),
        "autoattack_version": profile.autoattack_version,
        "autoattack_scope": autoattack_scope,
    }
    # with AutoAttack's own target classes and iterations, the parameters are those they were before these settings
    if profile.autoattack_targets is not None:
        params["autoattack_targets"] = profile.autoattack_targets
    if profile.autoattack_iterations is not None:
        params["autoattack_iterations"] = profile.autoattack_iterations
    return Result(config, "evaluation", params, tensors=False)


def evaluate(
    profile: Profile,
    config: TrainConfig,
    *,
    store: Store | None = None,
    progress: bool = True,
    autoattack_scope: str = "clean-correct",
) -> dict:
    """Every attack's per-image outcome on the model ``config``, the per-image worst case over them, and the
    accuracies (fractions in [0, 1]), on the profile's evaluation subset; stored once (`measures.attack_outcomes`).

    PGD: ``eval_steps`` steps of ``eval_alpha`` from a random start, ``eval_restarts`` restarts, on all ``n_eval``
    images, with the CE and the CW loss. AutoAttack (``autoattack_version``) on the first ``n_autoattack`` of them,
    on the images ``autoattack_scope`` names ("clean-correct": AutoAttack's own number; "pgd-survivors": only those
    PGD left standing, the same worst case for less compute, and then PGD, too, attacks only AutoAttack's images).
    The model runs in float32 whatever precision trained it.
    """
    store = store or Store()

    def compute() -> dict:
        model, _ = get_model(config, store=store, device=profile.device, progress=progress)
        x, y = eval_split(profile)
        if autoattack_scope == "pgd-survivors":  # only AutoAttack's images enter the worst case: attack those
            x, y = x[: profile.n_autoattack], y[: profile.n_autoattack]
        return measures.attack_outcomes(
            model,
            x,
            y,
            eps=profile.eps,
            alpha=profile.eval_alpha,
            steps=profile.eval_steps,
            restarts=profile.eval_restarts,
            seed=profile.seed,
            n_autoattack=profile.n_autoattack,
            autoattack_version=profile.autoattack_version,
            autoattack_scope=autoattack_scope,
            autoattack_targets=profile.autoattack_targets,
            autoattack_iterations=profile.autoattack_iterations,
        )

    return evaluation_result(profile, config, autoattack_scope=autoattack_scope).get_or_compute(compute, store=store)


def margin_drops_result(profile: Profile, config: TrainConfig) -> Result:
    """The `margin_drops` result of ``config``."""
    params = {k: v for k, v in _attack_params(profile).items() if k != "n_autoattack"}
    return Result(config, "margin-drops", params, tensors=False)


def margin_drops(profile: Profile, config: TrainConfig, *, store: Store | None = None) -> dict[str, list]:
    """`advlogits.margins.margin_drops` of the model ``config`` on the profile's evaluation images, with the
    profile's evaluation PGD (eps, eval_alpha, eval_steps, eval_restarts, seeded); stored once as JSON lists."""
    store = store or Store()

    def compute() -> dict[str, list]:
        model, _ = get_model(config, store=store, device=profile.device)
        x, y = eval_split(profile)
        return measures.margin_drop_lists(
            model,
            x,
            y,
            eps=profile.eps,
            alpha=profile.eval_alpha,
            steps=profile.eval_steps,
            restarts=profile.eval_restarts,
            seed=profile.seed,
        )

    return margin_drops_result(profile, config).get_or_compute(compute, store=store)


def gap_gradients_result(profile: Profile, config: TrainConfig) -> Result:
    """The `gap_gradients` result of ``config``."""
    return Result(config, "gap-gradients", _eval_images(profile), tensors=True)


def gap_gradients(profile: Profile, config: TrainConfig, *, store: Store | None = None) -> Tensor:
    """Per evaluation image (n_eval,): the L1 norm of the input gradient of the model's own logit gap
    (`advlogits.margins.gap_gradient_l1`), the proposition's first-order drop of the gap per unit eps; stored once."""
    store = store or Store()

    def compute() -> dict[str, Tensor]:
        model, _ = get_model(config, store=store, device=profile.device)
        return {"l1": margins.gap_gradient_l1(model, eval_split(profile)[0])}

    return gap_gradients_result(profile, config).get_or_compute(compute, store=store)["l1"]


def linear_check_result(profile: Profile, config: TrainConfig) -> Result:
    """The `linear_check` result of the linear model ``config``."""
    params = {**_eval_images(profile), "eps": profile.eps, "l2_eps": margins.L2_CHECK_EPS, "steps": margins.CHECK_STEPS}
    return Result(config, "linear-check", params, tensors=True)


def linear_check(profile: Profile, config: TrainConfig, *, store: Store | None = None) -> dict[str, dict[str, Tensor]]:
    """PGD against the closed form (`advlogits.margins.linear_check`) on the linear model ``config`` and the
    profile's evaluation images, by norm: ``"linf"`` at the profile's eps on the images themselves, then ``"l2"`` at
    `margins.L2_CHECK_EPS` on the images moved into the box's interior, both from one generator seeded with the
    profile's seed; stored once, so a warm chapter reads it instead of running 160 float64 PGD steps."""
    store = store or Store()

    def compute() -> dict[str, Tensor]:
        model, _ = get_model(config, store=store, device=profile.device)
        x, y = eval_split(profile)
        generator = torch.Generator().manual_seed(profile.seed)
        out = {}
        for norm, images, eps in (("linf", x, profile.eps), ("l2", margins.interior(x), margins.L2_CHECK_EPS)):
            check = margins.linear_check(model, images, y, eps=eps, norm=norm, generator=generator)
            out.update({f"{norm}/{part}": tensor for part, tensor in check.items()})
        return out

    by_norm: dict[str, dict[str, Tensor]] = {"linf": {}, "l2": {}}
    for name, tensor in linear_check_result(profile, config).get_or_compute(compute, store=store).items():
        norm, part = name.split("/")
        by_norm[norm][part] = tensor
    return by_norm


def masking_result(profile: Profile, config: TrainConfig, teacher: TrainConfig, *, robust: list[bool]) -> Result:
    """The `masking_checks` result of ``config`` with the transfer attack from ``teacher``."""
    n = min(profile.masking_images, profile.n_eval, len(robust))
    radii = tuple(sorted({min(f * profile.eps, 0.5) for f in MASKING_RADII} | {0.5}))
    params = {
        **_attack_params(profile),
        "n": n,
        "radii": radii,
        "queries": profile.masking_queries,
        "teacher": model_key(teacher),
        "robust": [bool(r) for r in robust[:n]],
    }
    return Result(config, "masking", params, tensors=False)


def masking_checks(
    profile: Profile, config: TrainConfig, teacher: TrainConfig, *, robust: list[bool], store: Store | None = None
) -> dict:
    """`masking.masking_checks` of the model ``config`` on the profile's first ``masking_images`` evaluation
    images, given its per-image white-box worst case there (``robust``, from `evaluate`), with the transfer attack
    crafted on ``teacher``; the profile's evaluation PGD, radii `MASKING_RADII` times eps then 0.5, Square with
    ``masking_queries`` queries; stored once."""
    store = store or Store()
    result = masking_result(profile, config, teacher, robust=robust)
    n, radii = result.params["n"], result.params["radii"]

    def compute() -> dict:
        model, _ = get_model(config, store=store, device=profile.device)
        teacher_model, _ = get_model(teacher, store=store, device=profile.device)
        x, y = eval_split(profile)
        return masking.masking_checks(
            model,
            teacher_model,
            x[:n],
            y[:n],
            robust=robust[:n],
            eps=profile.eps,
            alpha=profile.eval_alpha,
            steps=profile.eval_steps,
            radii=radii,
            seed=profile.seed,
            square_queries=profile.masking_queries,
        )

    return result.get_or_compute(compute, store=store)


def robustbench_entry(name: str) -> dict:
    """The store entry of RobustBench model ``name`` (CIFAR-10, L-inf): results only, no weights of ours."""
    return {"robustbench": name, "dataset": "cifar10", "threat_model": models.ROBUSTBENCH_LINF}


def robustbench_logits(profile: Profile, name: str, *, model_dir: str | Path, store: Store | None = None) -> Tensor:
    """Logits (n_eval, 10) of RobustBench model ``name`` (CIFAR-10, L-inf) on the profile's evaluation images,
    stored once. The checkpoint is read from (or downloaded into) ``model_dir`` by `models.load_robustbench`."""
    store = store or Store()

    def compute() -> dict[str, Tensor]:
        model = models.load_robustbench(name, dataset="cifar10", model_dir=model_dir)
        return {"logits": predict_logits(model.to(profile.device), eval_split(profile)[0])}

    return eval_logits_result(profile, robustbench_entry(name)).get_or_compute(compute, store=store)["logits"]
