"""PGD throughput: our ``advlogits.attacks.pgd`` against torchattacks' ``PGD`` and a bare gradient loop.

What is measured: the wall time of one L-inf PGD attack (random start, the profile's evaluation ``eps``,
``eval_alpha`` and ``eval_steps``: 0.1, 0.0125 and 20 at the cpu profile) on one batch of the book's
evaluation size (``advlogits.pipeline.measures.pgd_correct``'s batch size, 500) of Fashion-MNIST test images,
against the profile's architecture (cnn-small). Three contenders see the same model and the same images:

* ``ours``: ``advlogits.attacks.pgd`` as the book evaluates with it (``early_stop=True``: an image leaves the
  attack at its first misclassified iterate, which can only lower the measured accuracy);
* ``ours_plain``: the same without early stopping (every image takes every step, like torchattacks);
* ``torchattacks``: ``torchattacks.PGD`` (the field's reference implementation);
* ``bare``: ``steps`` forward + backward passes of the cross-entropy with respect to the input, nothing
  else (no random start, no step, no projection): the floor any PGD implementation pays.

They run interleaved in one process (ours, torchattacks, bare, ours, ...) after one untimed warm-up round,
and each is summarised by its median over ``--repeats`` rounds. The model is briefly trained first
(``--train-steps`` SGD steps, default 200) so that its logits look like a real model's: by default with PGD
adversarial training (the profile's eps, alpha and steps), so that many images resist the attack as they do
against the book's robust models, where early stopping saves least; ``--training standard`` measures the
easy case (a standard model most images fool within a few steps). ``--train-steps 0`` keeps the random
initialisation.
Reported: ``ratio_vs_torchattacks`` = ours / torchattacks and ``ratio_vs_bare`` = ours / bare (below 1 is
faster), against the performance targets (<= 0.9: faster than the field's reference; <= 1.05: at the hardware's
limit, within 5% of the bare gradient loop), the same two for ``ours_plain``, plus a sanity
check that the attacks stay in the eps-ball and that ours is at least as strong as torchattacks.

Run: ``python -m benchmarks.attack_throughput`` (``--help`` for the flags); writes
``_build/bench/attack_throughput.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from typing import Any

import torch
import torch.nn.functional as F
import torchattacks
from torch import Tensor, nn

from advlogits import profiles
from advlogits.attacks import pgd
from advlogits.data import input_shape, load_dataset
from advlogits.models import build_model
from advlogits.pipeline import measures
from advlogits.train import train_adversarial, train_standard
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

NAME = "attack_throughput"
TARGETS = {"ratio_vs_torchattacks": 0.9, "ratio_vs_bare": 1.05}  # performance targets: ours / theirs at most this
# The batch size of the book's PGD evaluation, read from the function the chapters call.
EVAL_BATCH = inspect.signature(measures.pgd_correct).parameters["batch_size"].default


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = base_parser(__doc__, name=NAME)
    parser.add_argument("--quick", action="store_true", help=QUICK_HELP)
    parser.add_argument("--repeats", type=positive_int, default=7, help="timed rounds (the median is reported)")
    parser.add_argument("--batch-size", type=positive_int, default=EVAL_BATCH, help="images attacked at once")
    parser.add_argument(
        "--train-steps", type=int, default=200, help="SGD steps of training before timing (0: random weights)"
    )
    parser.add_argument(
        "--training",
        choices=("adversarial", "standard"),
        default="adversarial",
        help="how the model is trained before timing (adversarial: PGD-AT with the profile's "
        "settings, so that many images resist the attack)",
    )
    args = parser.parse_args(argv)
    if args.quick:  # a few seconds: tiny batch, few steps, random weights
        args.repeats, args.batch_size, args.train_steps = 2, 32, 0
    if args.train_steps < 0:
        parser.error(f"argument --train-steps: must be an integer >= 0 (got {args.train_steps})")
    return args


def briefly_trained_model(p: profiles.Profile, *, train_steps: int, training: str = "adversarial") -> nn.Module:
    """The profile's architecture, seeded, after ``train_steps`` SGD steps of ``training`` (eval mode)."""
    torch.manual_seed(p.seed)
    model = build_model(p.arch, in_channels=input_shape(p.dataset)[0]).to(p.device)
    if train_steps > 0:
        x, y = load_dataset(p.dataset, "train", n=train_steps * p.batch_size, seed=p.seed)
        # one epoch of the profile's recipe, in float32 without augmentation
        plain = dict(epochs=1, precision="fp32", compile=False, augment="none")
        if training == "adversarial":
            train_adversarial(model, x, y, dataclasses.replace(p.adversarial(), **plain), progress=False)
        else:
            train_standard(model, x, y, dataclasses.replace(p.standard(), **plain), progress=False)
    return model.eval()


def bare_loop(model: nn.Module, x: Tensor, y: Tensor, *, steps: int) -> Tensor:
    """``steps`` forward + backward passes of the summed cross-entropy w.r.t. a copy of x; returns the last gradient."""
    x_in = x.detach().clone().requires_grad_(True)
    grad = torch.zeros_like(x)
    for _ in range(steps):
        loss = F.cross_entropy(model(x_in), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_in)
    return grad


@torch.inference_mode()
def accuracy_on(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Fraction of x (N, C, H, W) the model classifies as y (N,)."""
    return (model(x).argmax(dim=1) == y).float().mean().item()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    load_avg_start = load_average()
    set_threads(args.threads)
    p = profiles.resolve(args.profile, device=args.device)
    steps = 2 if args.quick else p.eval_steps
    settings = {
        "profile": p.name,
        "device": p.device,
        "arch": p.arch,
        "dataset": p.dataset,
        "eps": p.eps,
        "alpha": p.eval_alpha,
        "steps": steps,
        "random_start": True,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "warmup_rounds": 1,
        "train_steps": args.train_steps,
        "weights": "random initialisation"
        if args.train_steps == 0
        else f"{args.training} training, {args.train_steps} SGD steps of {p.batch_size}",
        "quick": args.quick,
    }

    model = briefly_trained_model(p, train_steps=args.train_steps, training=args.training)
    x, y = load_dataset(p.dataset, "test", n=args.batch_size, seed=p.seed)
    x, y = x.to(p.device), y.to(p.device)
    generator = torch.Generator().manual_seed(p.seed)
    theirs = torchattacks.PGD(model, eps=p.eps, alpha=p.eval_alpha, steps=steps, random_start=True)
    attack = dict(eps=p.eps, alpha=p.eval_alpha, steps=steps, random_start=True, generator=generator)
    runs = {
        "ours": lambda: pgd(model, x, y, early_stop=True, **attack),
        "ours_plain": lambda: pgd(model, x, y, **attack),
        "torchattacks": lambda: theirs(x, y),
        "bare": lambda: bare_loop(model, x, y, steps=steps),
    }
    timings = interleaved_times(runs, repeats=args.repeats, warmup=1, sync=synchronizer(torch.device(p.device)))
    median, cpu_median = timings.medians("wall"), timings.medians("cpu")

    # Sanity, untimed: both attacks respect the eps-ball and hurt the model about equally.
    x_ours, x_plain, x_theirs = runs["ours"](), runs["ours_plain"](), runs["torchattacks"]()
    sanity = {
        "clean_acc": accuracy_on(model, x, y),
        "acc_after_ours": accuracy_on(model, x_ours, y),
        "acc_after_ours_plain": accuracy_on(model, x_plain, y),
        "acc_after_torchattacks": accuracy_on(model, x_theirs, y),
        "max_perturbation_ours": (x_ours - x).abs().max().item(),
        "max_perturbation_ours_plain": (x_plain - x).abs().max().item(),
        "max_perturbation_torchattacks": (x_theirs - x).abs().max().item(),
    }

    versus = {"ratio_vs_torchattacks": "torchattacks", "ratio_vs_bare": "bare"}
    ratios = {key: timings.ratio("ours", other) for key, other in versus.items()}
    plain = {f"plain_{key}": timings.ratio("ours_plain", other) for key, other in versus.items()}
    result: dict[str, Any] = {
        "benchmark": NAME,
        **ratios,  # wall-clock medians: the numbers the targets are about
        **plain,  # the same without early stopping
        "ratios": {key: timings.ratios("ours", other) for key, other in versus.items()},  # robustness check
        "median_s": median,
        "min_s": timings.minimums("wall"),
        "cpu_median_s": cpu_median,
        "times_s": timings.wall_s,
        "cpu_times_s": timings.cpu_s,
        "ours_images_per_s": args.batch_size / median["ours"],
        "ours_ms_per_step": 1000 * median["ours"] / steps,
        "targets": {k: {"at_most": TARGETS[k], "met": ratios[k] <= TARGETS[k]} for k in TARGETS},
        "settings": settings,
        "sanity": sanity,
        "env": environment(load_avg_start=load_avg_start),
    }
    summary = [
        f"PGD-{steps} on {args.batch_size} {p.dataset} images, {p.arch} ({settings['weights']}), {p.device}, "
        f"{result['env']['threads']} threads, median of {args.repeats} interleaved rounds, load average "
        f"{load_avg_start} -> {result['env']['load_avg']}:",
        f"  {'':13s} {'wall ms':>9s} {'CPU ms':>9s}",
        *(f"  {name:13s} {1000 * median[name]:9.1f} {1000 * cpu_median[name]:9.1f}" for name in runs),
        *(
            f"  {k} = {v:.3f} (target <= {TARGETS[k]}: {verdict(v, TARGETS[k])}; fastest calls "
            f"{result['ratios'][k]['min_wall']:.3f}, CPU time {result['ratios'][k]['median_cpu']:.3f}, "
            f"paired rounds {result['ratios'][k]['paired_rounds']:.3f})"
            for k, v in ratios.items()
        ),
        *(f"  {k} = {v:.3f}" for k, v in plain.items()),
        f"  accuracy: clean {sanity['clean_acc']:.3f}, after ours {sanity['acc_after_ours']:.3f} (plain "
        f"{sanity['acc_after_ours_plain']:.3f}), after torchattacks {sanity['acc_after_torchattacks']:.3f}",
    ]
    write_result(result, args.out, summary)
    return result


if __name__ == "__main__":
    main()
