"""Run profiles: named, validated hyper-parameter sets (`smoke`, `cpu`, `paper`).

Every default of the book is read from the table below. ``resolve(name, **overrides)`` checks every value
(type, range, device availability) and raises `ProfileError` naming the parameter before any compute.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, get_type_hints

import torch

from .accel import PRECISIONS
from .train import SEED_MAX, TrainConfig

DATASETS = ("fashion-mnist", "cifar10")
ARCHS = ("cnn-small", "cnn", "preact-resnet18", "wrn-34-10")
ARCHS_FOR = {"fashion-mnist": ("cnn-small", "cnn"), "cifar10": ARCHS}
TRAIN_SIZE = {"fashion-mnist": 60_000, "cifar10": 50_000}
TEST_SIZE = {"fashion-mnist": 10_000, "cifar10": 10_000}
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
    seeds: tuple[int, ...]  # seeds of the repeated runs (seed baselines, mean +- std)
    temperature: float  # KD temperature
    precision: str = "fp32"  # forward passes in "fp32" or "bf16" (autocast; fast on recent GPUs, slow on CPUs)
    compile: bool = False  # train through torch.compile (GPUs; needs Triton, and a first slow compiling epoch)
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:N" or "mps"; resolved by `resolve`
    seed: int = 0  # seed of the main run and of the evaluation subset

    def standard(self, *, seed: int | None = None) -> TrainConfig:
        """Config of the standard-training (ST) model of this profile."""
        return TrainConfig(dataset=self.dataset, arch=self.arch, method="standard", epochs=self.epochs,
                           batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                           n_train=self.n_train, n_val=self.n_val, seed=self.seed if seed is None else seed,
                           precision=self.precision, compile=self.compile)

    def sweep(self, eps: float) -> TrainConfig:
        """Config of the eps-sweep AT model of radius ``eps`` (reduced budget: sweep_n_train, sweep_epochs)."""
        return dataclasses.replace(self.adversarial(eps=eps), n_train=self.sweep_n_train, epochs=self.sweep_epochs)

    def adversarial(self, *, seed: int | None = None, eps: float | None = None) -> TrainConfig:
        """Config of the PGD-AT model; a different ``eps`` scales the step size with it."""
        radius = self.eps if eps is None else eps
        return TrainConfig(dataset=self.dataset, arch=self.arch, method="adversarial", epochs=self.adv_epochs,
                           batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                           n_train=self.n_train, n_val=self.n_val, seed=self.seed if seed is None else seed,
                           eps=radius, alpha=self.alpha * radius / self.eps, steps=self.steps,
                           precision=self.precision, compile=self.compile)


_PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", dataset="fashion-mnist", arch="cnn-small", n_train=512, n_val=128, epochs=1, adv_epochs=1,
        student_epochs=1, batch_size=128, lr=0.05, weight_decay=5e-4, eps=0.1, alpha=0.05, steps=2,
        eval_alpha=0.025, eval_steps=5, eval_restarts=1, n_eval=128, n_autoattack=32, autoattack_version="fast",
        eps_sweep=(0.05, 0.1), sweep_n_train=512, sweep_epochs=1, student_n_train=512, seeds=(0, 1),
        temperature=1.0),
    "cpu": Profile(
        name="cpu", dataset="fashion-mnist", arch="cnn-small", n_train=None, n_val=1000, epochs=4, adv_epochs=3,
        student_epochs=5, batch_size=128, lr=0.05, weight_decay=5e-4, eps=0.1, alpha=0.04, steps=3,
        eval_alpha=0.0125, eval_steps=20, eval_restarts=1, n_eval=1000, n_autoattack=200,
        autoattack_version="fast", eps_sweep=(0.05, 0.1, 0.15, 0.2), sweep_n_train=10_000, sweep_epochs=4,
        student_n_train=10_000, seeds=(0, 1), temperature=1.0),
    "paper": Profile(
        name="paper", dataset="cifar10", arch="preact-resnet18", n_train=None, n_val=1000, epochs=30, adv_epochs=30,
        student_epochs=30, batch_size=128, lr=0.1, weight_decay=5e-4, eps=8 / 255, alpha=2 / 255, steps=10,
        eval_alpha=2 / 255, eval_steps=20, eval_restarts=1, n_eval=2000, n_autoattack=1000,
        autoattack_version="standard", eps_sweep=(2 / 255, 4 / 255, 8 / 255, 12 / 255), sweep_n_train=None,
        sweep_epochs=30, student_n_train=None, seeds=(0, 1), temperature=1.0, precision="bf16"),
}
PROFILES: tuple[str, ...] = tuple(_PROFILES)


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Convert papermill/CLI strings to the field's type; raise ProfileError naming ``name`` otherwise."""
    text = str(hint)
    if value is None and "None" in text:
        return None
    if "tuple" in text:
        items = value if isinstance(value, (list, tuple)) else [v for v in re.split(r"[,\s]+", str(value)) if v]
        inner = float if "float" in text else int
        return tuple(_coerce(name, v, inner) for v in items)
    if "bool" in text:
        words = {"true": True, "1": True, "false": False, "0": False}
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in words:
            return words[value.strip().lower()]
        raise ProfileError(f"{name} must be True or False (got {value!r})")
    kind = int if "int" in text else float if "float" in text else str
    if kind is str:
        if not isinstance(value, str):
            raise ProfileError(f"{name} must be a string (got {value!r})")
        return value
    if isinstance(value, bool):
        raise ProfileError(f"{name} must be a number (got {value!r})")
    try:
        number = float(value) if isinstance(value, str) else value
    except ValueError:
        raise ProfileError(f"{name} must be a number (got {value!r})") from None
    if not isinstance(number, (int, float)):
        raise ProfileError(f"{name} must be a number (got {value!r})")
    if kind is int:
        if float(number) != int(number):
            raise ProfileError(f"{name} must be an integer (got {value!r})")
        return int(number)
    return float(number)


def _resolve_device(device: str) -> str:
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else "cpu"
    if device == "cpu":
        return device
    if re.fullmatch(r"cuda(:\d+)?", device):
        if not torch.cuda.is_available():
            raise ProfileError(f"device={device!r} but CUDA is not available on this machine; "
                               "use device='cpu' or device='auto'")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ProfileError(f"device={device!r} but only {torch.cuda.device_count()} CUDA device(s) exist")
        return device
    if device == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ProfileError("device='mps' but MPS is not available on this machine; use device='cpu' or 'auto'")
        return device
    raise ProfileError(f"device must be one of 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' (got {device!r})")


def _check(p: Profile) -> None:
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ProfileError(message)

    need(p.dataset in DATASETS, f"dataset must be one of {', '.join(DATASETS)} (got {p.dataset!r})")
    need(p.arch in ARCHS, f"arch must be one of {', '.join(ARCHS)} (got {p.arch!r})")
    need(p.arch in ARCHS_FOR[p.dataset],
         f"arch {p.arch!r} does not fit dataset {p.dataset!r}; use one of {', '.join(ARCHS_FOR[p.dataset])}")
    for name in ("n_train", "sweep_n_train", "student_n_train"):
        value = getattr(p, name)
        need(value is None or 1 <= value <= TRAIN_SIZE[p.dataset],
             f"{name} must be None or in [1, {TRAIN_SIZE[p.dataset]}] for {p.dataset} (got {value})")
    for name in ("n_val", "n_eval"):
        value = getattr(p, name)
        need(1 <= value <= TEST_SIZE[p.dataset], f"{name} must be in [1, {TEST_SIZE[p.dataset]}] (got {value})")
    need(0 <= p.n_autoattack <= p.n_eval, f"n_autoattack must be in [0, n_eval={p.n_eval}] (got {p.n_autoattack})")
    for name in ("epochs", "adv_epochs", "student_epochs", "sweep_epochs", "batch_size", "steps", "eval_steps", "eval_restarts"):
        value = getattr(p, name)
        need(value >= 1, f"{name} must be an integer >= 1 (got {value})")
    need(0 < p.eps < 1, f"eps must be in (0, 1), an L-inf radius in [0, 1] pixel units (got {p.eps})")
    need(0 < p.alpha <= p.eps, f"alpha must be in (0, eps={p.eps}] (got {p.alpha})")
    need(0 < p.eval_alpha <= p.eps, f"eval_alpha must be in (0, eps={p.eps}] (got {p.eval_alpha})")
    need(all(0 < e < 1 for e in p.eps_sweep) and len(p.eps_sweep) >= 1,
         f"eps_sweep must be one or more radii in (0, 1) (got {p.eps_sweep})")
    need(math.isfinite(p.lr) and p.lr > 0, f"lr must be > 0 and finite (got {p.lr})")
    need(math.isfinite(p.weight_decay) and p.weight_decay >= 0,
         f"weight_decay must be >= 0 and finite (got {p.weight_decay})")
    need(math.isfinite(p.temperature) and p.temperature > 0,
         f"temperature must be > 0 and finite (got {p.temperature})")
    need(p.autoattack_version in AUTOATTACK_VERSIONS,
         f"autoattack_version must be one of {', '.join(AUTOATTACK_VERSIONS)} (got {p.autoattack_version!r})")
    need(len(p.seeds) >= 1 and all(0 <= s <= SEED_MAX for s in p.seeds),
         f"seeds must be integers >= 0 and <= {SEED_MAX} (got {p.seeds})")
    need(0 <= p.seed <= SEED_MAX, f"seed must be an integer >= 0 and <= {SEED_MAX} (got {p.seed})")
    need(p.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)} (got {p.precision!r})")


def resolve(name: str = "cpu", **overrides: Any) -> Profile:
    """The profile ``name`` with ``overrides`` applied, validated, and ``device="auto"`` resolved.

    Overrides of ``None`` are ignored (a papermill parameter left at None keeps the profile's value).
    Changing ``eps`` without ``alpha``/``eval_alpha`` scales those step sizes with it.
    """
    if name not in _PROFILES:
        raise ProfileError(f"profile must be one of {', '.join(PROFILES)} (got {name!r})")
    base = _PROFILES[name]
    hints = get_type_hints(Profile)
    fields = {f.name for f in dataclasses.fields(Profile)} - {"name"}
    values: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in fields:
            raise ProfileError(f"unknown parameter {key!r}; profile parameters are: {', '.join(sorted(fields))}")
        if value is None and "None" not in str(hints[key]):
            continue
        values[key] = _coerce(key, value, hints[key])
    if "eps" in values:
        for step in ("alpha", "eval_alpha"):
            values.setdefault(step, getattr(base, step) * values["eps"] / base.eps)
    profile = dataclasses.replace(base, **values)
    _check(profile)
    return dataclasses.replace(profile, device=_resolve_device(profile.device))
