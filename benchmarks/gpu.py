"""GPU check: the paper profile's training and attack throughput, bf16 against fp32, and its GPU-hours.

What is measured, on one CUDA device, with the ``paper`` profile's hyper-parameters (batch size 128, learning rate,
PGD-AT eps 8/255, alpha 2/255, 10 steps, crop-flip augmentation; evaluation PGD of 20 steps of 2/255):

* images per second of a standard-training epoch and of a PGD-10 adversarial-training epoch of PreAct ResNet-18
  (``advlogits.models.build_for("preact-resnet18", "cifar10")``), each in fp32, bf16 and bf16 + torch.compile:
  the library's ``train_standard`` / ``train_adversarial`` called as the book calls them, first on a few warm-up
  batches (for compile: while it compiles), then, timed between two device synchronisations, on a fixed number of
  batches (`Sizes`); a compiled graph built during the warm-up is reused by the timed call (``recompiled`` says if
  it was not);
* images per second of fp32 inference (``predict_logits``), of PGD-20 on a batch of 500 (``robust_correct`` as the
  evaluation calls it, without early stopping: every image takes every step) and of AutoAttack's fast version
  (APGD-CE + APGD-T, ``autoattack_correct``) on a batch of 500 labelled with the model's own predictions, so that
  every image is attacked; ``robust_fraction`` is the share that survives it;
* the peak GPU memory of each measurement (``torch.cuda.max_memory_allocated``, reset before its warm-up);
* the agreement of a bf16-trained and an fp32-trained model: the same seed, data order and initial weights, a few
  hundred SGD steps of standard training each way on the synthetic data, compared on held-out synthetic images
  (both evaluated in fp32, as the book evaluates): top-1 agreement and mean absolute logit difference;
* with real Fashion-MNIST at hand (``$ADVLOGITS_DATA_ROOT``, ``$ADVLOGITS_DATA``, Debian's folder or the data
  home; nothing is downloaded), the same for the ``cpu`` profile's model (cnn-small, fp32): epoch rates of standard
  and adversarial training and a bf16 agreement on real images;
* an estimate of the ``paper`` profile's GPU-hours: every unit of ``book_plan(resolve("paper"))`` priced from the
  rates above (see `paper_estimate`), summed, in hours and per kind of unit.

The CIFAR-format data are synthetic (the GPU machine has no data sets and no internet): random uint8 images, each
drawn around a random low-frequency prototype of its class (so that the task is learnable), written in the real
CIFAR-10 pickle format into a temporary folder by ``advlogits.synthetic`` (the tests' writer too) and read back
through ``advlogits.data.load_dataset(root=...)``. The cost of a dense network does not depend on what its images
show.

Expected time on one H200 (an estimate: not measured yet): about 3 minutes, at most about 4, well inside 5. Most of
it is torch.compile's first compilations (about a minute for the training graph and as much for the attack's
eval-mode graph; on this project's 2-core CPU they took 45 and 30 s); each eager measurement takes seconds (10
warm-up and 60 timed batches of 128 for a standard epoch, 10 and 20 for PGD-AT, 500 images for PGD-20 and for
AutoAttack, two trainings of 320 steps for the bf16 agreement). The compiled measurements run last and are skipped,
with a note, when the run has used too much of ``--budget-s`` (default 240 s): the first needs 120 s left, the
second 1.5 times the first one's compile time. A failing torch.compile (no Triton, no C compiler, ...) or
AutoAttack (the package missing) is recorded in ``not_measured``, not raised, and the estimate then uses what was
measured (see `paper_estimate`).
Progress lines go to stderr, the JSON result and the summary to stdout.

Without a CUDA device (or with ``--quick``) the same steps run at a tiny size (batches of 8 images, 2 timed
batches, PGD-2, AutoAttack on 2 images, torch.compile skipped unless ``--compile yes``): under a minute on a CPU,
so a test keeps the script working; its numbers mean nothing.

Run: ``python -m benchmarks.gpu`` (``make gpu-check``; ``--help`` for the flags); writes ``_build/bench/gpu.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import math
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from advlogits import profiles
from advlogits.accel import resolve_device
from advlogits.attacks import AA_SQUARE_QUERIES, autoattack_correct, predict_logits, robust_correct
from advlogits.data import (
    ENV_VAR,
    ROOT_ENV_VAR,
    SYSTEM_FASHION_MNIST,
    DatasetError,
    data_home,
    dataset_info,
    load_dataset,
    num_classes,
)
from advlogits.margins import CHECK_STEPS
from advlogits.models import build_for
from advlogits.pipeline.plan import Unit, book_plan
from advlogits.pipeline.stored import MASKING_RADII
from advlogits.synthetic import SIGNAL, write_synthetic_cifar
from advlogits.train import train_adversarial, train_standard
from benchmarks._common import (
    QUICK_HELP,
    base_parser,
    environment,
    load_average,
    set_threads,
    synchronizer,
    write_result,
)

NAME = "gpu"
ARCH, DATASET = "preact-resnet18", "cifar10"  # the paper profile's model and data set
FASHION_PROFILE = "cpu"  # the profile whose model the Fashion-MNIST measurements use
AA_TARGETS = 9  # AutoAttack's target classes for APGD-T and FAB-T on 10 classes
APGD_ITERATIONS = 100  # AutoAttack's iterations per APGD run (its standard setting)
COMPILE_RESERVE_S = 120.0  # the compiled measurements start only with this much of --budget-s left


@dataclass(frozen=True)
class Sizes:
    """How much each measurement does."""

    batch_size: int  # images per training step
    warmup_batches: int  # untimed batches before each timed training call (torch.compile compiles here)
    train_batches: int  # timed batches of a standard-training epoch
    adv_batches: int  # timed batches of an adversarial-training epoch
    train_steps: int  # PGD steps of adversarial training
    eval_steps: int  # PGD steps of the evaluation attack
    attack_images: int  # the PGD batch
    autoattack_images: int  # the AutoAttack batch
    inference_images: int  # images of the inference measurement
    agreement_images: int  # training images of each bf16-agreement model
    agreement_epochs: int  # epochs of each bf16-agreement model
    test_images: int  # held-out images (agreement, attacks)


def full_sizes(p: profiles.Profile) -> Sizes:
    """The GPU run: the profile's batch size and PGD steps; about 320 SGD steps per agreement model."""
    return Sizes(
        batch_size=p.batch_size,
        warmup_batches=10,
        train_batches=60,
        adv_batches=20,
        train_steps=p.steps,
        eval_steps=p.eval_steps,
        attack_images=500,
        autoattack_images=500,
        inference_images=10_240,
        agreement_images=80 * p.batch_size,
        agreement_epochs=4,
        test_images=2000,
    )


TINY = Sizes(
    batch_size=8,
    warmup_batches=1,
    train_batches=2,
    adv_batches=2,
    train_steps=2,
    eval_steps=2,
    attack_images=8,
    autoattack_images=2,
    inference_images=64,
    agreement_images=32,
    agreement_epochs=2,
    test_images=16,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = base_parser(__doc__, name=NAME)
    parser.set_defaults(profile="paper")
    parser.add_argument("--quick", action="store_true", help=QUICK_HELP + "; implied without a CUDA device")
    parser.add_argument(
        "--compile",
        choices=("auto", "yes", "no"),
        default="auto",
        help="measure bf16 + torch.compile: auto = only on a CUDA device",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=240.0,
        help="seconds the run may take: the compiled measurements are skipped when too little is left",
    )
    args = parser.parse_args(argv)
    if args.profile != "paper":
        parser.error(f"the GPU check measures and estimates the paper profile only (got --profile {args.profile})")
    return args


# ---- progress, timing, memory --------------------------------------------------------------------------------


class Clock:
    """Seconds since the run began, for progress lines and the time budget."""

    def __init__(self) -> None:
        self.began = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.began

    def say(self, message: str) -> None:
        print(f"[gpu-check {self.elapsed():6.1f} s] {message}", file=sys.stderr, flush=True)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mb(device: torch.device) -> float | None:
    """Peak GPU memory allocated since the last `reset_peak`, in MiB (None off CUDA)."""
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)


def compiled_graphs() -> int | None:
    """How many graphs torch.compile has built in this process (None if torch does not say)."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return None
    return int(counters["stats"]["unique_graphs"])


def timed(device: torch.device, run: Callable[[], Any]) -> tuple[float, Any]:
    """(wall seconds, result) of ``run()``, between two synchronisations of ``device``."""
    sync = synchronizer(device)
    sync()
    began = time.perf_counter()
    out = run()
    sync()
    return time.perf_counter() - began, out


def record(images: int, seconds: float, device: torch.device, **extra: Any) -> dict[str, Any]:
    """One measurement's entry: images per second, peak memory, seconds and how it was made."""
    return {
        "images_per_s": images / seconds,
        "peak_memory_mb": peak_mb(device),
        "seconds": seconds,
        "images": images,
        **extra,
    }


# ---- data ----------------------------------------------------------------------------------------------------


def find_fashion_mnist(n_train: int, n_test: int, seed: int) -> tuple[Any, Any, str] | None:
    """(train subset, test subset, folder) of real Fashion-MNIST where a copy is at hand, else None.

    Looks in ``$ADVLOGITS_DATA_ROOT``, ``$ADVLOGITS_DATA``, Debian's folder and the data home, each as an explicit
    ``root`` (so nothing is downloaded).
    """
    candidates = [
        os.environ.get(ROOT_ENV_VAR, "").strip(),
        os.environ.get(ENV_VAR, "").strip(),
        str(SYSTEM_FASHION_MNIST),
        str(data_home()),
    ]
    for folder in dict.fromkeys(c for c in candidates if c):
        if not Path(folder).expanduser().is_dir():
            continue
        try:
            train = load_dataset("fashion-mnist", "train", n=n_train, seed=seed, root=folder)
            test = load_dataset("fashion-mnist", "test", n=n_test, seed=seed, root=folder)
        except (DatasetError, ValueError):
            continue
        return train, test, folder
    return None


# ---- measurements --------------------------------------------------------------------------------------------


def fresh(arch: str, dataset: str, *, seed: int, device: torch.device) -> nn.Module:
    torch.manual_seed(seed)
    return build_for(arch, dataset).to(device)


def training_rate(
    p: profiles.Profile,
    sizes: Sizes,
    *,
    method: str,
    precision: str,
    compile: bool,
    x: Tensor,
    y: Tensor,
    device: torch.device,
    arch: str = ARCH,
    dataset: str = DATASET,
) -> dict[str, Any]:
    """Images per second of ``train_standard`` / ``train_adversarial``: a warm-up call, then a timed one."""
    model = fresh(arch, dataset, seed=p.seed, device=device)
    common = dict(
        epochs=1,
        batch_size=sizes.batch_size,
        lr=p.lr,
        weight_decay=p.weight_decay,
        seed=p.seed,
        progress=False,
        precision=precision,
        compile=compile,
        augment=p.augment,
    )

    def call(batches: int) -> None:
        n = batches * sizes.batch_size
        if method == "standard":
            train_standard(model, x[:n], y[:n], **common)
        else:
            train_adversarial(model, x[:n], y[:n], eps=p.eps, alpha=p.alpha, steps=sizes.train_steps, **common)

    reset_peak(device)
    warmup_s, _ = timed(device, lambda: call(sizes.warmup_batches))
    graphs = compiled_graphs()
    batches = sizes.train_batches if method == "standard" else sizes.adv_batches
    seconds, _ = timed(device, lambda: call(batches))
    extra: dict[str, Any] = {
        "batches": batches,
        "batch_size": sizes.batch_size,
        "warmup_batches": sizes.warmup_batches,
        "warmup_s": warmup_s,
        "precision": precision,
        "compile": compile,
        "augment": p.augment,
        "arch": arch,
        "dataset": dataset,
    }
    if method == "adversarial":
        extra["pgd_steps"] = sizes.train_steps
    if compile and graphs is not None:
        extra["recompiled"] = compiled_graphs() != graphs  # True: the timed call compiled too (its rate is too low)
    return record(batches * sizes.batch_size, seconds, device, **extra)


def inference_rate(model: nn.Module, x: Tensor, device: torch.device) -> dict[str, Any]:
    """Images per second of fp32 ``predict_logits`` (batches of 1000, the library's default)."""
    reset_peak(device)
    predict_logits(model, x[:1000])  # warm-up
    seconds, _ = timed(device, lambda: predict_logits(model, x))
    return record(len(x), seconds, device, precision="fp32")


def pgd_rate(
    p: profiles.Profile, sizes: Sizes, model: nn.Module, x: Tensor, y: Tensor, device: torch.device
) -> dict[str, Any]:
    """Images per second of the evaluation's L-inf PGD (fp32, one batch, every image takes every step)."""
    attack = dict(attack="pgd", batch_size=len(x), eps=p.eps, alpha=p.eval_alpha, random_start=True, early_stop=False)
    reset_peak(device)
    robust_correct(model, x, y, steps=1, generator=torch.Generator().manual_seed(p.seed), **attack)  # warm-up
    seconds, _ = timed(
        device,
        lambda: robust_correct(
            model, x, y, steps=sizes.eval_steps, generator=torch.Generator().manual_seed(p.seed), **attack
        ),
    )
    return record(len(x), seconds, device, steps=sizes.eval_steps, restarts=1, precision="fp32", early_stop=False)


def autoattack_rate(p: profiles.Profile, model: nn.Module, x: Tensor, device: torch.device) -> dict[str, Any]:
    """Images per second of AutoAttack's fast version on one batch labelled with the model's predictions."""
    y = predict_logits(model, x).argmax(1)  # every image is "clean-correct": every image is attacked
    reset_peak(device)
    seconds, correct = timed(
        device, lambda: autoattack_correct(model, x, y, eps=p.eps, version="fast", batch_size=len(x), seed=p.seed)
    )
    return record(
        len(x), seconds, device, version="fast", precision="fp32", robust_fraction=correct.float().mean().item()
    )


def bf16_agreement(
    p: profiles.Profile,
    sizes: Sizes,
    *,
    arch: str,
    dataset: str,
    x: Tensor,
    y: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    device: torch.device,
    say: Callable[[str], None],
) -> tuple[dict[str, Any], nn.Module]:
    """Train ``arch`` from the same seed in fp32 and in bf16 (standard training, no augmentation, the profile's
    optimiser settings) and compare the two on held-out images, both evaluated in fp32. Returns the comparison
    and the fp32-trained model."""
    logits: dict[str, Tensor] = {}
    seconds: dict[str, float] = {}
    model_fp32: nn.Module | None = None
    for precision in ("fp32", "bf16"):
        model = fresh(arch, dataset, seed=p.seed, device=device)
        seconds[precision], _ = timed(
            device,
            functools.partial(
                train_standard,
                model,
                x,
                y,
                epochs=sizes.agreement_epochs,
                batch_size=sizes.batch_size,
                lr=p.lr,
                weight_decay=p.weight_decay,
                seed=p.seed,
                progress=False,
                precision=precision,
            ),
        )
        logits[precision] = predict_logits(model, x_test)
        say(f"  {arch} trained in {precision}: {seconds[precision]:.1f} s")
        if precision == "fp32":
            model_fp32 = model
    a, b = logits["fp32"], logits["bf16"]
    result = {
        "arch": arch,
        "dataset": dataset,
        "train_images": len(x),
        "test_images": len(x_test),
        "steps": sizes.agreement_epochs * math.ceil(len(x) / sizes.batch_size),
        "batch_size": sizes.batch_size,
        "lr": p.lr,
        "top1_agreement": (a.argmax(1) == b.argmax(1)).float().mean().item(),
        "mean_abs_logit_diff": (a - b).abs().mean().item(),
        "mean_abs_logit_fp32": a.abs().mean().item(),
        "max_abs_logit_diff": (a - b).abs().max().item(),
        "accuracy_fp32": (a.argmax(1) == y_test).float().mean().item(),
        "accuracy_bf16": (b.argmax(1) == y_test).float().mean().item(),
        "train_seconds": seconds,
    }
    assert model_fp32 is not None
    return result, model_fp32


@contextlib.contextmanager
def guarded(name: str, not_measured: dict[str, str], say: Callable[[str], None]) -> Iterator[None]:
    """Run a measurement that may fail for want of something outside this project (torch.compile's Triton or C
    compiler, the AutoAttack package): a failure is recorded in ``not_measured[name]``, and
    the run goes on, instead of losing every other number of a run on a lent GPU."""
    try:
        yield
    except Exception as error:  # noqa: BLE001 - whatever torch.compile raises (no Triton, no compiler, ...)
        text = " ".join(f"{type(error).__name__}: {error}".split())
        not_measured[name] = f"failed: {text[:600]}"
        say(f"  {name} FAILED ({text[:200]}); recorded in not_measured")
        with contextlib.suppress(Exception):
            torch._dynamo.reset()


# ---- the paper profile's GPU-hours ---------------------------------------------------------------------------


def training_key(method: str, precision: str, compile: bool) -> str:
    """The measurement that prices a training method at a precision: "standard_bf16", "adversarial_bf16_compile"."""
    base = "adversarial" if method == "adversarial" else "standard"
    return f"{base}_{precision}" + ("_compile" if compile else "")


def paper_estimate(p: profiles.Profile, measurements: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """GPU-hours of every unit of ``book_plan(p)``, priced from ``measurements``; in hours, per kind of unit.

    Prices (seconds), with ``f`` the fp32 inference rate, ``s`` the seconds of one PGD step per image (the PGD
    measurement's time per image over its steps) and ``a`` the seconds of one APGD run per image (AutoAttack's
    time per image over 1 + 9 x its robust fraction: APGD-CE on every image, APGD-T's 9 targets on the survivors;
    100 PGD steps where AutoAttack was not measured). A training rate that was not measured (torch.compile failed)
    is replaced by the same method's uncompiled one, with a note:

    * model: per epoch, its images at the training rate of its method and precision (distillation and the
      hard-label students: standard training; adversarial: PGD-AT, scaled by (steps + 1) / (measured steps + 1)),
      plus ``n_val`` images of inference and, for PGD-AT, PGD on them (its per-epoch validation); linear models at
      the inference rate (a generous bound);
    * evaluation: clean inference, PGD with the CE and the CW loss (``eval_steps`` x ``eval_restarts``, every
      image taking every step) on ``n_eval`` images (``n_autoattack`` for the pgd-survivors scope), and AutoAttack
      on ``n_autoattack``: ``hours`` prices the worst case, every image surviving every sub-attack (fast: 1 + 9 APGD
      runs; standard: also FAB-T's 9 targets, priced as 9 APGD runs, and Square's 5,000 queries at the inference
      rate); ``hours_low`` the best case, every image broken by APGD-CE;
    * train-logits, eval-logits, robustbench-logits: inference on their images; gap-gradients: one gradient per
      image; margin-drops: one gradient and a PGD per image; linear-check: a PGD per image, wrong class and norm
      (`margins.CHECK_STEPS`) at the inference rate; masking: PGD at each radius with both losses, Square
      (1,000 queries) and a transfer PGD on its 100 images.
    """
    rates = {
        name: m["images_per_s"] for name, m in measurements.items() if name.startswith(("standard_", "adversarial_"))
    }
    f = measurements["inference_fp32"]["images_per_s"]
    pgd_m = measurements["pgd_fp32"]
    s = 1 / pgd_m["images_per_s"] / pgd_m["steps"]
    notes: set[str] = set()
    aa_m = measurements.get("autoattack_fast_fp32")
    if aa_m is not None:
        a = 1 / aa_m["images_per_s"] / (1 + AA_TARGETS * aa_m["robust_fraction"])
    else:
        a = APGD_ITERATIONS * s
        notes.add(f"AutoAttack not measured: an APGD run priced as {APGD_ITERATIONS} PGD steps")
    measured_steps = measurements["adversarial_fp32"]["pgd_steps"]

    def train_seconds_per_image(config: Any) -> float:
        key = training_key(config.method, config.precision, config.compile)
        if key not in rates:
            fallback = key.removesuffix("_compile")
            fallback = fallback if fallback in rates else training_key(config.method, "fp32", False)
            notes.add(f"{key} not measured: priced at {fallback}")
            key = fallback
        per_image = 1 / rates[key]
        if config.method == "adversarial":
            per_image *= (config.steps + 1) / (measured_steps + 1)
        return per_image

    def autoattack(n: int) -> tuple[float, float]:
        runs = 1 + AA_TARGETS + (AA_TARGETS if p.autoattack_version == "standard" else 0)
        square = AA_SQUARE_QUERIES / f if p.autoattack_version == "standard" else 0.0
        return n * (runs * a + square), n * a

    def cost(unit: Unit) -> tuple[float, float]:
        """(worst-case seconds, best-case seconds) of one unit."""
        c = unit.config
        if unit.kind == "model":
            images = c.n_train if c.n_train is not None else dataset_info(c.dataset).train_size
            if c.arch == "linear":
                per_epoch = (images + c.n_val) / f
            else:
                per_epoch = images * train_seconds_per_image(c) + c.n_val / f
                if c.method == "adversarial":
                    per_epoch += c.n_val * c.steps * s
            return (c.epochs * per_epoch,) * 2
        if unit.kind == "evaluation":
            scope = "clean-correct"
            with contextlib.suppress(Exception):
                scope = unit.result(None).params["autoattack_scope"]
            n = p.n_eval if scope == "clean-correct" else p.n_autoattack
            attacks = n / f + 2 * n * p.eval_steps * p.eval_restarts * s
            high, low = autoattack(p.n_autoattack)
            return attacks + high, attacks + low
        if unit.kind == "train-logits":
            images = p.student_n_train if p.student_n_train is not None else dataset_info(p.dataset).train_size
            return (images / f,) * 2
        if unit.kind in ("eval-logits", "robustbench-logits"):
            return (p.n_eval / f,) * 2
        if unit.kind == "gap-gradients":
            return (p.n_eval * s,) * 2
        if unit.kind == "linear-check":  # a PGD per image, class and norm on a linear model, priced as inference
            pairs = p.n_eval * (num_classes(p.dataset) - 1)
            return (pairs * sum(CHECK_STEPS.values()) / f,) * 2
        if unit.kind == "margin-drops":
            return (p.n_eval * (1 + p.eval_steps * p.eval_restarts) * s,) * 2
        if unit.kind == "masking":
            n = min(p.masking_images, p.n_eval)
            radii = len({min(r * p.eps, 0.5) for r in MASKING_RADII} | {0.5})
            return (n * (2 * radii + 1) * p.eval_steps * s + n * (p.masking_queries + 2) / f,) * 2
        notes.add(f"kind {unit.kind!r} has no price here: priced as inference on n_eval images")
        return (p.n_eval / f,) * 2

    units = book_plan(p)
    per_kind: dict[str, dict[str, float]] = defaultdict(lambda: {"units": 0, "hours": 0.0, "hours_low": 0.0})
    for unit in units:
        high, low = cost(unit)
        entry = per_kind[unit.kind]
        entry["units"] += 1
        entry["hours"] += high / 3600
        entry["hours_low"] += low / 3600
    return {
        "profile": p.name,
        "units": len(units),
        "hours": sum(k["hours"] for k in per_kind.values()),
        "hours_low": sum(k["hours_low"] for k in per_kind.values()),
        "per_kind": dict(per_kind),
        "rates": {
            "training_images_per_s": rates,
            "inference_images_per_s": f,
            "pgd_step_s_per_image": s,
            "apgd_run_s_per_image": a,
            "measured_adversarial_steps": measured_steps,
            "autoattack_version": p.autoattack_version,
        },
        "notes": sorted(notes)
        + [
            "hours: AutoAttack's worst case (every image survives every sub-attack); hours_low: every image broken "
            "by APGD-CE. PGD always takes every step (the book's early stopping only saves time). One GPU, "
            "units run one after the other; start-up, data loading and the store's writes are not counted.",
        ],
    }


# ---- the run ---------------------------------------------------------------------------------------------------


def describe_device(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return {
            "type": "cuda",
            "name": props.name,
            "memory_gb": round(props.total_memory / 2**30, 1),
            "capability": f"{props.major}.{props.minor}",
            "multiprocessors": props.multi_processor_count,
            "count": torch.cuda.device_count(),
        }
    return {"type": device.type, "name": platform.processor() or platform.machine(), "cores": os.cpu_count()}


def gpu_environment() -> dict[str, Any]:
    """What the GPU numbers depend on beyond `environment`: CUDA, cuDNN, Triton, TF32."""
    triton = None
    with contextlib.suppress(Exception):
        import triton as triton_module

        triton = triton_module.__version__
    return {
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "triton": triton,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    clock = Clock()
    load_avg_start = load_average()
    set_threads(args.threads)
    device = torch.device(resolve_device(args.device))
    tiny = args.quick or device.type != "cuda"
    p = profiles.resolve("paper", device=str(device))
    sizes = TINY if tiny else full_sizes(p)
    try_compile = args.compile == "yes" or (args.compile == "auto" and device.type == "cuda")
    clock.say(
        f"device {device} ({describe_device(device)['name']}), "
        f"{'tiny sizes (' + ('--quick' if args.quick else 'no CUDA device') + ')' if tiny else 'full sizes'}"
    )

    measurements: dict[str, dict[str, Any]] = {}
    not_measured: dict[str, str] = {}
    agreement: dict[str, Any] = {}

    def note(name: str, entry: dict[str, Any]) -> None:
        measurements[name] = entry
        memory = "" if entry["peak_memory_mb"] is None else f", peak {entry['peak_memory_mb']:.0f} MiB"
        clock.say(
            f"  {name}: {entry['images_per_s']:,.1f} images/s ({entry['images']} images in "
            f"{entry['seconds']:.2f} s{memory})"
        )

    with tempfile.TemporaryDirectory(prefix="advlogits-gpu-check-") as tmp:
        n_train = max(
            sizes.inference_images,
            sizes.agreement_images,
            (sizes.warmup_batches + sizes.train_batches) * sizes.batch_size,
        )
        clock.say(f"writing {n_train} + {sizes.test_images} synthetic CIFAR-10 images to {tmp}")
        write_synthetic_cifar(Path(tmp), n_train=n_train, n_test=sizes.test_images, seed=p.seed)
        x, y = load_dataset(DATASET, "train", root=tmp)
        x_test, y_test = load_dataset(DATASET, "test", root=tmp)

    clock.say("inference (fp32)")
    model = fresh(ARCH, DATASET, seed=p.seed, device=device)
    note("inference_fp32", inference_rate(model, x[: sizes.inference_images], device))
    del model

    for method in ("standard", "adversarial"):
        for precision in ("fp32", "bf16"):
            name = training_key(method, precision, False)
            clock.say(f"{name}: {method} training, {precision}")
            note(
                name,
                training_rate(p, sizes, method=method, precision=precision, compile=False, x=x, y=y, device=device),
            )

    clock.say(f"bf16 agreement: {ARCH} trained twice on synthetic {DATASET}")
    agreement["synthetic-cifar10"], trained = bf16_agreement(
        p,
        sizes,
        arch=ARCH,
        dataset=DATASET,
        x=x[: sizes.agreement_images],
        y=y[: sizes.agreement_images],
        x_test=x_test,
        y_test=y_test,
        device=device,
        say=clock.say,
    )

    clock.say(f"PGD-{sizes.eval_steps} on {sizes.attack_images} images (fp32)")
    note("pgd_fp32", pgd_rate(p, sizes, trained, x_test[: sizes.attack_images], y_test[: sizes.attack_images], device))
    clock.say(f"AutoAttack (fast) on {sizes.autoattack_images} images (fp32)")
    with guarded("autoattack_fast_fp32", not_measured, clock.say):
        note("autoattack_fast_fp32", autoattack_rate(p, trained, x_test[: sizes.autoattack_images], device))
    del trained

    fashion_profile = profiles.resolve(FASHION_PROFILE, device=str(device))
    fashion_sizes = dataclasses.replace(
        sizes,
        batch_size=fashion_profile.batch_size if not tiny else sizes.batch_size,
        train_steps=fashion_profile.steps if not tiny else sizes.train_steps,
    )
    fashion_train = max(
        (fashion_sizes.warmup_batches + fashion_sizes.train_batches) * fashion_sizes.batch_size,
        fashion_sizes.agreement_images,
    )
    fashion = find_fashion_mnist(fashion_train, sizes.test_images, fashion_profile.seed)
    data: dict[str, Any] = {
        "cifar10": {"kind": "synthetic", "signal": SIGNAL, "train_images": len(x), "test_images": len(x_test)}
    }
    if fashion is None:
        data["fashion-mnist"] = None
        for method in ("standard", "adversarial"):
            not_measured[f"fashion_{method}_fp32"] = "skipped: no copy of Fashion-MNIST found (nothing is downloaded)"
        clock.say("no Fashion-MNIST found: its measurements are skipped")
    else:
        (fx, fy), (fx_test, fy_test), folder = fashion
        data["fashion-mnist"] = {"kind": "real", "folder": folder, "train_images": len(fx), "test_images": len(fx_test)}
        fa = fashion_profile.arch
        for method in ("standard", "adversarial"):
            name = f"fashion_{method}_fp32"
            clock.say(f"{name}: {method} training of {fa} on real Fashion-MNIST, fp32")
            note(
                name,
                training_rate(
                    fashion_profile,
                    fashion_sizes,
                    method=method,
                    precision="fp32",
                    compile=False,
                    x=fx,
                    y=fy,
                    device=device,
                    arch=fa,
                    dataset="fashion-mnist",
                ),
            )
        clock.say(f"bf16 agreement: {fa} trained twice on real Fashion-MNIST")
        agreement["fashion-mnist"], _ = bf16_agreement(
            fashion_profile,
            fashion_sizes,
            arch=fa,
            dataset="fashion-mnist",
            x=fx[: fashion_sizes.agreement_images],
            y=fy[: fashion_sizes.agreement_images],
            x_test=fx_test,
            y_test=fy_test,
            device=device,
            say=clock.say,
        )

    compile_names = [training_key(m, "bf16", True) for m in ("standard", "adversarial")]
    if not try_compile:
        why = (
            "--compile no"
            if args.compile == "no"
            else "torch.compile is tried only on a CUDA device by default (on a CPU it compiles for minutes); "
            "--compile yes tries it"
        )
        for name in compile_names:
            not_measured[name] = f"skipped: {why}"
        clock.say(f"torch.compile skipped: {why}")
    else:
        compile_warmup: float | None = None  # the first compiled measurement's warm-up: the next one's guess
        for method, name in zip(("standard", "adversarial"), compile_names):
            left = args.budget_s - clock.elapsed()
            needed = COMPILE_RESERVE_S if compile_warmup is None else 1.5 * compile_warmup
            if left < needed:
                not_measured[name] = (
                    f"skipped: {clock.elapsed():.0f} s of the {args.budget_s:.0f} s budget used, "
                    f"{needed:.0f} s needed to compile"
                )
                clock.say(f"{name} {not_measured[name]}")
                continue
            clock.say(f"{name}: {method} training, bf16 + torch.compile (compiles first: a minute or more)")
            with guarded(name, not_measured, clock.say):
                entry = training_rate(p, sizes, method=method, precision="bf16", compile=True, x=x, y=y, device=device)
                compile_warmup = entry["warmup_s"]
                note(name, entry)

    clock.say("pricing the paper profile's plan")
    estimate = paper_estimate(p, measurements)
    total_s = clock.elapsed()
    result: dict[str, Any] = {
        "benchmark": NAME,
        "device": describe_device(device),
        "measurements": measurements,
        "not_measured": not_measured,
        "bf16_agreement": agreement,
        "paper_estimate": estimate,
        "data": data,
        "settings": {
            "profile": p.name,
            "tiny": tiny,
            "quick": args.quick,
            "compile": args.compile,
            "budget_s": args.budget_s,
            "sizes": dataclasses.asdict(sizes),
            "eps": p.eps,
            "alpha": p.alpha,
            "eval_alpha": p.eval_alpha,
            "lr": p.lr,
            "weight_decay": p.weight_decay,
            "augment": p.augment,
            "fashion_sizes": dataclasses.asdict(fashion_sizes) if fashion is not None else None,
        },
        "total_s": total_s,
        "env": {**environment(load_avg_start=load_avg_start), **gpu_environment()},
    }
    write_result(result, args.out, summary(result))
    return result


def summary(result: dict[str, Any]) -> list[str]:
    d, m = result["device"], result["measurements"]
    tiny = " at tiny sizes: the numbers mean nothing" if result["settings"]["tiny"] else ""
    lines = [
        f"GPU check on {d['type']} ({d['name']}){tiny}, {result['total_s']:.0f} s:",
        f"  {'':28s} {'images/s':>12s} {'peak MiB':>9s} {'seconds':>8s}",
    ]
    for name, e in m.items():
        memory = "-" if e["peak_memory_mb"] is None else f"{e['peak_memory_mb']:.0f}"
        lines.append(f"  {name:28s} {e['images_per_s']:12,.1f} {memory:>9s} {e['seconds']:8.2f}")
    for name, why in result["not_measured"].items():
        lines.append(f"  {name:28s} not measured: {why}")
    for a, b in (
        ("standard_bf16", "standard_fp32"),
        ("adversarial_bf16", "adversarial_fp32"),
        ("standard_bf16_compile", "standard_bf16"),
        ("adversarial_bf16_compile", "adversarial_bf16"),
    ):
        if a in m and b in m:
            lines.append(f"  {a} / {b}: x{m[a]['images_per_s'] / m[b]['images_per_s']:.2f} images/s")
    for data, g in result["bf16_agreement"].items():
        lines.append(
            f"  bf16 vs fp32 training ({g['arch']}, {data}, {g['steps']} steps): top-1 agreement "
            f"{g['top1_agreement']:.3f}, mean |logit diff| {g['mean_abs_logit_diff']:.3g} (mean |logit| "
            f"{g['mean_abs_logit_fp32']:.3g}), accuracy fp32 {g['accuracy_fp32']:.3f} "
            f"bf16 {g['accuracy_bf16']:.3f}"
        )
    e = result["paper_estimate"]
    lines.append(
        f"  paper profile, {e['units']} units: {e['hours']:.1f} GPU-hours (AutoAttack's worst case), "
        f"{e['hours_low']:.1f} at best:"
    )
    for kind, k in sorted(e["per_kind"].items(), key=lambda kv: -kv[1]["hours"]):
        lines.append(f"    {kind:20s} {k['units']:4d} units {k['hours']:8.2f} h ({k['hours_low']:.2f} at best)")
    lines.extend(f"  note: {n}" for n in e["notes"])
    return lines


if __name__ == "__main__":
    main()
