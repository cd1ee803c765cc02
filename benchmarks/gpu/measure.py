"""The GPU check's measurements: how much each does (`Sizes`), and images per second of training, inference, PGD
and AutoAttack, each through the library's own functions called as the book calls them; and the agreement of a
bf16-trained with an fp32-trained model."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from advlogits import profiles
from advlogits.autoattack import autoattack_correct
from advlogits.evaluation import attack_correct
from advlogits.models import build_for
from advlogits.predict import predict_logits
from advlogits.train import TrainConfig, train_adversarial, train_standard
from benchmarks.gpu.device import compiled_graphs, record, reset_peak, timed

ARCH, DATASET = "preact-resnet18", "cifar10"  # the paper profile's model and data set


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


def training_key(method: str, precision: str, compile: bool) -> str:
    """The measurement that prices a training method at a precision: "standard_bf16", "adversarial_bf16_compile"."""
    base = "adversarial" if method == "adversarial" else "standard"
    return f"{base}_{precision}" + ("_compile" if compile else "")


def fresh(arch: str, dataset: str, *, seed: int, device: torch.device) -> nn.Module:
    """A newly initialised ``arch`` for ``dataset`` on ``device``, the same weights for the same seed."""
    torch.manual_seed(seed)
    return build_for(arch, dataset).to(device)


def loop_config(p: profiles.Profile, *, method: str, arch: str, dataset: str, **fields: Any) -> TrainConfig:
    """The config a measurement trains with: the profile's standard or adversarial recipe on ``arch`` and
    ``dataset``, with ``fields`` replaced."""
    base = p.adversarial() if method == "adversarial" else p.standard()
    return dataclasses.replace(base, arch=arch, dataset=dataset, n_train=None, **fields)


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
    fields = dict(epochs=1, batch_size=sizes.batch_size, precision=precision, compile=compile, augment=p.augment)
    if method != "standard":
        fields["steps"] = sizes.train_steps
    config = loop_config(p, method=method, arch=arch, dataset=dataset, **fields)

    def call(batches: int) -> None:
        n = batches * sizes.batch_size
        if method == "standard":
            train_standard(model, x[:n], y[:n], config, progress=False)
        else:
            train_adversarial(model, x[:n], y[:n], config, progress=False)

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
    attack_correct(model, x, y, steps=1, generator=torch.Generator().manual_seed(p.seed), **attack)  # warm-up
    seconds, _ = timed(
        device,
        lambda: attack_correct(
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
    models: dict[str, nn.Module] = {}
    for precision in ("fp32", "bf16"):
        models[precision] = model = fresh(arch, dataset, seed=p.seed, device=device)
        config = loop_config(
            p,
            method="standard",
            arch=arch,
            dataset=dataset,
            epochs=sizes.agreement_epochs,
            batch_size=sizes.batch_size,
            precision=precision,
            compile=False,
            augment="none",
        )
        train = functools.partial(train_standard, model, x, y, config, progress=False)
        seconds[precision], _ = timed(device, train)
        logits[precision] = predict_logits(model, x_test)
        say(f"  {arch} trained in {precision}: {seconds[precision]:.1f} s")
    result = {
        "arch": arch,
        "dataset": dataset,
        "train_images": len(x),
        "test_images": len(x_test),
        "steps": sizes.agreement_epochs * math.ceil(len(x) / sizes.batch_size),
        "batch_size": sizes.batch_size,
        "lr": p.lr,
        **logit_agreement(logits["fp32"], logits["bf16"], y_test),
        "train_seconds": seconds,
    }
    return result, models["fp32"]


def logit_agreement(a: Tensor, b: Tensor, y: Tensor) -> dict[str, float]:
    """How far the logits ``b`` (bf16-trained) are from ``a`` (fp32-trained) on images of labels ``y``."""
    return {
        "top1_agreement": (a.argmax(1) == b.argmax(1)).float().mean().item(),
        "mean_abs_logit_diff": (a - b).abs().mean().item(),
        "mean_abs_logit_fp32": a.abs().mean().item(),
        "max_abs_logit_diff": (a - b).abs().max().item(),
        "accuracy_fp32": (a.argmax(1) == y).float().mean().item(),
        "accuracy_bf16": (b.argmax(1) == y).float().mean().item(),
    }
