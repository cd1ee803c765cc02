"""Seconds per training epoch: standard training, PGD adversarial training and distillation.

What is measured: one epoch of each of the library's training loops, called exactly as the book calls them
(``advlogits.train.train_standard``, ``train_adversarial`` and ``train_distilled`` with the profile's
architecture, batch size, learning rate, weight decay, PGD-AT ``eps``/``alpha``/``steps`` and KD temperature),
on a seeded subset of ``--n-train`` training images (default 6,000), scaled linearly to a full epoch of the
training split (60,000 Fashion-MNIST images). Each timed call builds a fresh seeded model (milliseconds) and
trains it for one epoch; the three methods run interleaved (standard, adversarial, distilled, standard, ...)
after one untimed warm-up round, and each is summarised by its median over ``--repeats`` rounds.

Distillation trains on precomputed teacher logits, as the book does: the teacher (the same architecture,
randomly initialised here; its weights do not change the cost) runs once before the timing, and that
one-off cost is reported separately as ``teacher_logits_s``. The teacher never runs inside the timed loop.
Reported: each method's seconds per 60k epoch, ``ratio_distilled_vs_standard`` (the performance target: <= 1.1,
distillation costs at most 10% more than standard training)
and ``ratio_adversarial_vs_standard`` (for reference: PGD-AT with k steps costs about k + 1 standard epochs).

Run: ``python -m benchmarks.train_epoch`` (``--help`` for the flags); writes ``_build/bench/train_epoch.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

import torch
from torch import nn

from advlogits import profiles
from advlogits.data import dataset_info, input_shape, load_dataset
from advlogits.models import build_model
from advlogits.predict import predict_logits
from advlogits.train import train_adversarial, train_distilled, train_standard
from benchmarks._common import (
    QUICK_HELP,
    base_parser,
    environment,
    interleaved_times,
    load_average,
    positive_int,
    set_threads,
    synchronizer,
    verdict,
    write_result,
)

NAME = "train_epoch"
TARGET_DISTILLED_VS_STANDARD = 1.1  # performance target: a distillation epoch costs at most 1.1 standard epochs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = base_parser(__doc__, name=NAME)
    parser.add_argument("--quick", action="store_true", help=QUICK_HELP)
    parser.add_argument("--n-train", type=positive_int, default=6000, help="training images per timed epoch")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed rounds (the median is reported)")
    args = parser.parse_args(argv)
    if args.quick:  # a few seconds: a couple of batches, one round
        args.n_train, args.repeats = 256, 1
    return args


def fresh_model(p: profiles.Profile, *, seed: int) -> nn.Module:
    """The profile's architecture, initialised from ``seed``, on the profile's device."""
    torch.manual_seed(seed)
    return build_model(p.arch, in_channels=input_shape(p.dataset)[0]).to(p.device)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    load_avg_start = load_average()
    set_threads(args.threads)
    p = profiles.resolve(args.profile, device=args.device)
    epoch_size = dataset_info(p.dataset).train_size
    x, y = load_dataset(p.dataset, "train", n=args.n_train, seed=p.seed)

    began = time.perf_counter()
    teacher_logits = predict_logits(fresh_model(p, seed=p.seed + 1), x)  # once, like pipeline.train_logits
    teacher_logits_s = time.perf_counter() - began

    # one epoch of each of the profile's recipes, in float32 without augmentation, on the same images
    plain = dict(epochs=1, n_train=None, precision="fp32", compile=False, augment="none")
    standard, adversarial = p.standard(), p.adversarial()
    distilled = dataclasses.replace(p.student(teacher=standard, T=p.temperature, seed=p.seed), **plain)
    standard, adversarial = dataclasses.replace(standard, **plain), dataclasses.replace(adversarial, **plain)
    runs = {
        "standard": lambda: train_standard(fresh_model(p, seed=p.seed), x, y, standard, progress=False),
        "adversarial": lambda: train_adversarial(fresh_model(p, seed=p.seed), x, y, adversarial, progress=False),
        "distilled": lambda: train_distilled(
            fresh_model(p, seed=p.seed), x, teacher_logits, distilled, y=y, progress=False
        ),
    }
    timings = interleaved_times(runs, repeats=args.repeats, warmup=1, sync=synchronizer(torch.device(p.device)))
    scale = epoch_size / args.n_train
    per_epoch = {name: s * scale for name, s in timings.medians("wall").items()}
    cpu_per_epoch = {name: s * scale for name, s in timings.medians("cpu").items()}
    ratio = per_epoch["distilled"] / per_epoch["standard"]

    result: dict[str, Any] = {
        "benchmark": NAME,
        "seconds_per_epoch": per_epoch,
        "ratio_distilled_vs_standard": ratio,
        "ratio_adversarial_vs_standard": per_epoch["adversarial"] / per_epoch["standard"],
        "ratios_distilled_vs_standard": timings.ratios("distilled", "standard"),  # robustness check
        "cpu_seconds_per_epoch": cpu_per_epoch,
        "teacher_logits_s": teacher_logits_s * scale,
        "targets": {
            "ratio_distilled_vs_standard": {
                "at_most": TARGET_DISTILLED_VS_STANDARD,
                "met": ratio <= TARGET_DISTILLED_VS_STANDARD,
            }
        },
        "times_s": timings.wall_s,
        "cpu_times_s": timings.cpu_s,
        "settings": {
            "profile": p.name,
            "device": p.device,
            "arch": p.arch,
            "dataset": p.dataset,
            "n_train": args.n_train,
            "epoch_size": epoch_size,
            "scale": scale,
            "batch_size": p.batch_size,
            "lr": p.lr,
            "weight_decay": p.weight_decay,
            "eps": p.eps,
            "alpha": p.alpha,
            "steps": p.steps,
            "temperature": p.temperature,
            "repeats": args.repeats,
            "warmup_rounds": 1,
            "quick": args.quick,
        },
        "env": environment(load_avg_start=load_avg_start),
    }
    robust = result["ratios_distilled_vs_standard"]
    summary = [
        f"One epoch of {p.arch} on {p.dataset} ({args.n_train} images timed, scaled x{scale:.3g} to {epoch_size}), "
        f"{p.device}, {result['env']['threads']} threads, median of {args.repeats} interleaved rounds, load average "
        f"{load_avg_start} -> {result['env']['load_avg']}:",
        f"  {'':12s} {'wall s':>8s} {'CPU s':>8s}  per epoch",
        *(f"  {name:12s} {s:8.1f} {cpu_per_epoch[name]:8.1f}" for name, s in per_epoch.items()),
        f"  PGD-AT ({p.steps} steps) / standard = {result['ratio_adversarial_vs_standard']:.2f}",
        f"  distilled / standard = {ratio:.3f} (target <= {TARGET_DISTILLED_VS_STANDARD}: "
        f"{verdict(ratio, TARGET_DISTILLED_VS_STANDARD)}; fastest calls {robust['min_wall']:.3f}, "
        f"CPU time {robust['median_cpu']:.3f}, paired rounds {robust['paired_rounds']:.3f})",
        f"  teacher logits, computed once before the loop: {result['teacher_logits_s']:.1f} s per epoch's images",
    ]
    write_result(result, args.out, summary)
    return result


if __name__ == "__main__":
    main()
