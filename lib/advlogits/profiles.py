"""Run profiles: named, validated hyper-parameter sets (`smoke`, `cpu`, `paper`).

Every default of the book is read from the table below. ``resolve(name, **overrides)`` checks every value
(type, range, device availability) and raises `ProfileError` naming the parameter before any compute.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, get_type_hints

from .accel import PRECISIONS, resolve_device
from .augmentation import AUGMENTATIONS
from .checks import check_choice, check_int, check_number, check_seed, coerce, fail
from .data import DATASETS, dataset_info
from .distill import TARGET_KINDS
from .models import ARCHS, ARCHS_FOR
from .names import PROFILES
from .train import REFERENCE_TARGETS, TrainConfig

AUTOATTACK_VERSIONS = ("fast", "standard")


class ProfileError(ValueError):
    """A profile name or parameter value is invalid; the message names it and the allowed values."""


@dataclass(frozen=True)
class Profile:
    """One experiment scale. Attack radii and step sizes are in [0, 1] pixel units (L-inf)."""

    name: str  # "smoke", "cpu" or "paper"
    dataset: str  # "fashion-mnist" or "cifar10"
    arch: str  # architecture of every model (teachers and students)
    n_train: int | None  # training images (seeded subset); None = the whole training split
    n_val: int  # test images whose clean accuracy is logged after each training epoch
    epochs: int  # epochs of standard training
    adv_epochs: int  # epochs of PGD adversarial training
    student_epochs: int  # epochs of every distilled student
    batch_size: int  # images per SGD step
    lr: float  # peak learning rate (triangular schedule, SGD + Nesterov momentum 0.9)
    weight_decay: float  # L2 penalty
    eps: float  # L-inf radius of training and evaluation attacks
    alpha: float  # PGD step size during adversarial training
    steps: int  # PGD steps during adversarial training
    eval_alpha: float  # PGD step size during evaluation
    eval_steps: int  # PGD steps during evaluation (>= 20 for reported numbers)
    eval_restarts: int  # PGD random restarts during evaluation (worst case per image)
    n_eval: int  # fixed, seeded test subset for clean and PGD accuracy and logit statistics
    n_autoattack: int  # first images of that subset also attacked with AutoAttack
    autoattack_version: str  # "fast" (APGD-CE + APGD-T) or "standard" (full AutoAttack)
    eps_sweep: tuple[float, ...]  # radii of the AT models in the eps sweep (chapter 2)
    sweep_n_train: int | None  # training images of the eps-sweep models (a reduced budget; None = all)
    sweep_epochs: int  # epochs of the eps-sweep models
    student_n_train: int | None  # training images of distilled students (a subset of the teachers' images)
    seeds: tuple[int, ...]  # seeds of the teachers: the main run's and the seed baselines' (ST', AT')
    sweep_seeds: tuple[int, ...]  # seeds of the eps sweep (networks and linear models), the main seed first
    student_seeds: tuple[int, ...]  # seeds of every distilled student, disjoint from the teachers' seeds
    temperature: float  # KD temperature
    precision: str = "fp32"  # forward passes in "fp32" or "bf16" (autocast; fast on recent GPUs, slow on CPUs)
    compile: bool = False  # train through torch.compile (GPUs; needs Triton, and a first slow compiling epoch)
    augment: str = "none"  # training-batch augmentation: "none" or "crop-flip" (random 4-pixel-padded crop, flip)
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:N" or "mps"; resolved by `resolve`
    seed: int = 0  # seed of the main run and of the evaluation subset
    distill_teachers: int = (
        1  # AT teachers the students are distilled from: the main seed's, then the others' of `seeds`
    )
    c8_apart: bool = False  # C8 pulled apart: confidences permuted across images, constant confidence at 0.5 and 0.95
    temperature_sweep: bool = True  # KD-AT and the shuffled student at other temperatures (first seed; exploratory)
    masking_images: int = 100  # the gradient-masking checks' images: the first of the evaluation subset
    masking_queries: int = 1000  # Square's queries per image in the gradient-masking checks
    masking_every_kind: bool = False  # the checks on every student kind (else KD-AT and the manipulated students)
    autoattack_targets: int | None = None  # target classes of APGD-T and FAB-T (None: AutoAttack's 9, or K - 1)
    autoattack_iterations: int | None = None  # iterations of APGD and FAB (None: AutoAttack's 100)

    def standard(self, *, seed: int | None = None) -> TrainConfig:
        """Config of the standard-training (ST) model of this profile."""
        return TrainConfig(
            dataset=self.dataset,
            arch=self.arch,
            method="standard",
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            n_train=self.n_train,
            n_val=self.n_val,
            seed=self.seed if seed is None else seed,
            precision=self.precision,
            compile=self.compile,
            augment=self.augment,
        )

    def sweep(self, eps: float, *, seed: int | None = None) -> TrainConfig:
        """Config of the eps-sweep model of radius ``eps`` (reduced budget: sweep_n_train, sweep_epochs).

        ``eps = 0`` is the sweep's reference point: standard training on the same budget and seed.
        """
        base = self.standard(seed=seed) if eps == 0 else self.adversarial(eps=eps, seed=seed)
        return dataclasses.replace(base, n_train=self.sweep_n_train, epochs=self.sweep_epochs)

    def linear(self, eps: float, *, seed: int | None = None) -> TrainConfig:
        """Config of the linear model (multinomial logistic regression on pixels) at radius ``eps`` (0 = ST).

        The eps-sweep budget and the profile's AT recipe (step size scaled with eps), in float32 whatever the
        profile's precision: the proposition reads its weights.
        """
        base = self.sweep(eps, seed=seed)
        return dataclasses.replace(base, arch="linear", precision="fp32", compile=False)

    def student(
        self,
        *,
        teacher: TrainConfig | None,
        targets: str = "kd",
        T: float | None = None,
        label_corrected: bool = False,
        reference: TrainConfig | None = None,
        seed: int | None = None,
    ) -> TrainConfig:
        """A distilled student: the teachers' architecture, ``student_n_train`` clean images, ``student_epochs``.

        ``teacher=None`` gives the hard-label student: standard cross-entropy training on the true labels of the
        same images, same seed, same optimiser (a "standard" config; it does not depend on ``T``). ``T`` defaults
        to the profile's ``temperature``.
        """
        check_choice("targets", targets, TARGET_KINDS)
        T = self.temperature if T is None else check_number("T", T, above=0)
        if (targets in REFERENCE_TARGETS) != (reference is not None):
            fail(
                "reference",
                f"a second teacher's config for targets in {REFERENCE_TARGETS}, and None otherwise",
                reference,
                shown="None" if reference is None else "a config",
            )
        base = dataclasses.replace(self.standard(seed=seed), n_train=self.student_n_train, epochs=self.student_epochs)
        if teacher is None:
            return base
        return dataclasses.replace(
            base,
            method="distilled",
            teacher=teacher,
            targets=targets,
            reference=reference,
            T=float(T),
            label_corrected=label_corrected,
        )

    def adversarial(self, *, seed: int | None = None, eps: float | None = None) -> TrainConfig:
        """Config of the PGD-AT model; a different ``eps`` scales the step size with it."""
        radius = self.eps if eps is None else eps
        return TrainConfig(
            dataset=self.dataset,
            arch=self.arch,
            method="adversarial",
            epochs=self.adv_epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            n_train=self.n_train,
            n_val=self.n_val,
            seed=self.seed if seed is None else seed,
            eps=radius,
            alpha=self.alpha * radius / self.eps,
            steps=self.steps,
            precision=self.precision,
            compile=self.compile,
            augment=self.augment,
        )


_PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        dataset="fashion-mnist",
        arch="cnn-small",
        n_train=512,
        n_val=128,
        epochs=1,
        adv_epochs=1,
        student_epochs=1,
        batch_size=128,
        lr=0.05,
        weight_decay=5e-4,
        eps=0.1,
        alpha=0.05,
        steps=2,
        eval_alpha=0.025,
        eval_steps=5,
        eval_restarts=1,
        n_eval=128,
        n_autoattack=32,
        autoattack_version="fast",
        eps_sweep=(0.05, 0.1),
        sweep_n_train=512,
        sweep_epochs=1,
        student_n_train=512,
        seeds=(0, 1),
        sweep_seeds=(0, 1),
        student_seeds=(100, 101),
        temperature=1.0,
    ),
    "cpu": Profile(
        name="cpu",
        dataset="fashion-mnist",
        arch="cnn-small",
        n_train=None,
        n_val=1000,
        epochs=4,
        adv_epochs=3,
        student_epochs=5,
        batch_size=128,
        lr=0.05,
        weight_decay=5e-4,
        eps=0.1,
        alpha=0.04,
        steps=3,
        eval_alpha=0.0125,
        eval_steps=20,
        eval_restarts=1,
        n_eval=1000,
        n_autoattack=500,
        autoattack_version="fast",
        eps_sweep=(0.05, 0.1, 0.15, 0.2),
        sweep_n_train=10_000,
        sweep_epochs=4,
        student_n_train=10_000,
        seeds=(0, 1),
        sweep_seeds=(0, 1, 2),
        student_seeds=(100, 101, 102),
        temperature=1.0,
    ),
    "paper": Profile(
        name="paper",
        dataset="cifar10",
        arch="preact-resnet18",
        n_train=None,
        n_val=1000,
        epochs=30,
        adv_epochs=30,
        student_epochs=30,
        batch_size=128,
        lr=0.1,
        weight_decay=5e-4,
        eps=8 / 255,
        alpha=2 / 255,
        steps=10,
        eval_alpha=2 / 255,
        eval_steps=20,
        eval_restarts=1,
        n_eval=2000,
        n_autoattack=1000,
        autoattack_version="standard",
        eps_sweep=(2 / 255, 4 / 255, 8 / 255, 12 / 255),
        sweep_n_train=None,
        sweep_epochs=30,
        student_n_train=None,
        seeds=(0, 1),
        sweep_seeds=(0, 1, 2),
        student_seeds=(100, 101, 102),
        temperature=1.0,
        precision="bf16",
        augment="crop-flip",
    ),
}
# The decisive design of C6-C8 (docs/protocol.md, second amendment of 2026-12-04): students of two AT teachers (8
# fresh seeds each), C8 pulled apart, no temperature sweep, and the gradient-masking checks on every student kind
# (200 images, Square with 5,000 queries). The decisive profile runs it with the cpu profile's data, networks, budgets
# and attacks; the paper profile runs it at the paper's scale (third amendment of 2026-12-04).
DECISIVE_DESIGN: dict[str, Any] = dict(
    student_seeds=(300, 301, 302, 303, 304, 305, 306, 307, 310, 311, 312, 313, 314, 315, 316, 317),
    distill_teachers=2,
    c8_apart=True,
    temperature_sweep=False,
    masking_images=200,
    masking_queries=5000,
    masking_every_kind=True,
)
_PROFILES["decisive"] = dataclasses.replace(_PROFILES["cpu"], name="decisive", **DECISIVE_DESIGN)
_PROFILES["paper"] = dataclasses.replace(_PROFILES["paper"], **DECISIVE_DESIGN)
_PROFILES = {name: _PROFILES[name] for name in PROFILES}  # the order errors list them (advlogits.names)


def _check(profile: Profile) -> None:
    """Every field of ``profile`` in its range, checked theme by theme; the first wrong field raises a
    `ValueError` that names it and says what it must be."""
    _check_data_and_sizes(profile)
    _check_training_and_attacks(profile)
    _check_teachers_and_students(profile)
    check_int("masking_images", profile.masking_images, at_least=1)  # the sizes of the gradient-masking probe
    check_int("masking_queries", profile.masking_queries, at_least=1)
    _check_students_apart_from_teachers(profile)
    check_choice("augment", profile.augment, AUGMENTATIONS)
    _check_main_and_sweep_seeds(profile)
    check_choice("precision", profile.precision, PRECISIONS)


def _check_data_and_sizes(profile: Profile) -> None:
    """The data set, the architecture that fits it, and how many images each split gives."""
    check_choice("dataset", profile.dataset, DATASETS)
    info = dataset_info(profile.dataset)
    check_choice("arch", profile.arch, ARCHS)
    check_choice(
        "arch", profile.arch, ARCHS_FOR[profile.dataset], hint=f"those are the architectures that fit {profile.dataset}"
    )
    for name in ("n_train", "sweep_n_train", "student_n_train"):
        value = getattr(profile, name)
        if value is not None:
            check_int(
                name,
                value,
                at_least=1,
                at_most=info.train_size,
                hint=f"None uses the whole training split of {profile.dataset}",
            )
    for name in ("n_val", "n_eval"):
        check_int(name, getattr(profile, name), at_least=1, at_most=info.test_size)
    check_int(
        "n_autoattack", profile.n_autoattack, at_least=0, at_most=profile.n_eval, hint=f"n_eval is {profile.n_eval}"
    )


def _check_training_and_attacks(profile: Profile) -> None:
    """Epochs, batch and attack steps, the radii and step sizes, the optimiser and AutoAttack."""
    for name in (
        "epochs",
        "adv_epochs",
        "student_epochs",
        "sweep_epochs",
        "batch_size",
        "steps",
        "eval_steps",
        "eval_restarts",
    ):
        check_int(name, getattr(profile, name), at_least=1)
    check_number(
        "eps",
        profile.eps,
        above=0,
        below=1,
        hint="the L-inf radius of adversarial training and of the attacks, in pixel units; eps = 0 would be standard "
        "training, which the ST models already are",
    )
    check_number("alpha", profile.alpha, above=0, at_most=profile.eps)
    check_number("eval_alpha", profile.eval_alpha, above=0, at_most=profile.eps)
    if len(profile.eps_sweep) < 1:
        fail("eps_sweep", "one or more radii in (0, 1)", profile.eps_sweep)
    for eps in profile.eps_sweep:
        check_number("eps_sweep", eps, above=0, below=1, hint="every radius of the sweep is in (0, 1)")
    check_number("lr", profile.lr, above=0)
    check_number("weight_decay", profile.weight_decay, at_least=0)
    check_number("temperature", profile.temperature, above=0)
    check_choice("autoattack_version", profile.autoattack_version, AUTOATTACK_VERSIONS)
    if profile.autoattack_targets is not None:
        check_int("autoattack_targets", profile.autoattack_targets, at_least=1)
    if profile.autoattack_iterations is not None:
        check_int("autoattack_iterations", profile.autoattack_iterations, at_least=1)


def _check_teachers_and_students(profile: Profile) -> None:
    """The teachers' and students' seeds and the distillation design: as many students per teacher,
    each with a seed of its own."""
    if len(profile.seeds) < 1:
        fail("seeds", "one or more seeds", profile.seeds)
    for seed in profile.seeds:
        check_seed("seeds", seed)
    if len(profile.student_seeds) < 1:
        fail("student_seeds", "one or more seeds", profile.student_seeds)
    for seed in profile.student_seeds:
        check_seed("student_seeds", seed)
    check_int("distill_teachers", profile.distill_teachers, at_least=1, at_most=len({*profile.seeds, profile.seed}))
    if len(profile.student_seeds) % profile.distill_teachers:
        fail(
            "student_seeds",
            f"as many seeds for each of the {profile.distill_teachers} teachers (a multiple of distill_teachers)",
            profile.student_seeds,
        )
    if len(set(profile.student_seeds)) != len(profile.student_seeds):
        fail("student_seeds", "distinct seeds (students nested within teachers never share one)", profile.student_seeds)


def _check_students_apart_from_teachers(profile: Profile) -> None:
    """No student shares a seed with a teacher."""
    shared = sorted(set(profile.student_seeds) & {*profile.seeds, profile.seed})
    if shared:
        fail(
            "student_seeds",
            "disjoint from the teachers' seeds (a student never starts from its teacher's initialisation)",
            profile.student_seeds,
            hint=f"{shared} are teacher seeds",
        )


def _check_main_and_sweep_seeds(profile: Profile) -> None:
    """The main seed, and the seeds of the radius sweep: the main one first, all distinct."""
    check_seed("seed", profile.seed)
    if len(profile.sweep_seeds) < 2 or profile.sweep_seeds[0] != profile.seed:
        fail(
            "sweep_seeds",
            f"two or more seeds, the main seed ({profile.seed}) first (C3's intervals are over seeds)",
            profile.sweep_seeds,
            hint=f"e.g. ({profile.seed}, {profile.seed + 1}, {profile.seed + 2})",
        )
    for seed in profile.sweep_seeds:
        check_seed("sweep_seeds", seed)
    if len(set(profile.sweep_seeds)) != len(profile.sweep_seeds):
        fail("sweep_seeds", "distinct seeds", profile.sweep_seeds)


def resolve(name: str = "cpu", **overrides: Any) -> Profile:
    """The profile ``name`` with ``overrides`` applied, validated, and ``device="auto"`` resolved.

    Overrides of ``None`` are ignored (a papermill parameter left at None keeps the profile's value).
    Changing ``eps`` without ``alpha``/``eval_alpha`` scales those step sizes with it.
    """
    try:
        check_choice("profile", name, PROFILES)
        base = _PROFILES[name]
        hints = get_type_hints(Profile)
        fields = {f.name for f in dataclasses.fields(Profile)} - {"name"}
        values: dict[str, Any] = {}
        for key, value in overrides.items():
            if key not in fields:
                fail("overrides", f"profile parameters, one of {', '.join(sorted(fields))}", key)
            if value is None and "None" not in str(hints[key]):
                continue
            values[key] = coerce(key, value, hints[key])
        if "seed" in values and "sweep_seeds" not in values:  # the sweep's first seed follows the main one
            others = [s for s in base.sweep_seeds if s != values["seed"]]
            values["sweep_seeds"] = (values["seed"], *others)[: len(base.sweep_seeds)]
        if "eps" in values:
            for step in ("alpha", "eval_alpha"):
                values.setdefault(step, getattr(base, step) * values["eps"] / base.eps)
        profile = dataclasses.replace(base, **values)
        _check(profile)
        return dataclasses.replace(profile, device=resolve_device(profile.device))
    except ProfileError:
        raise
    except ValueError as error:
        raise ProfileError(str(error)) from None
