"""The GPU check's run, step by step: its arguments, the synthetic CIFAR-10 and what is measured on it, the real
Fashion-MNIST where a copy is at hand, torch.compile within the time budget, then the result and its summary."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from advlogits import profiles
from advlogits.accel import resolve_device
from advlogits.data import DatasetError, data_home, load_dataset
from advlogits.datafiles import SYSTEM_FASHION_MNIST
from advlogits.paths import DATA, DATA_ONLY, setting
from advlogits.synthetic import SIGNAL, write_synthetic_cifar
from benchmarks._common import QUICK_HELP, base_parser, environment, load_average, set_threads, write_result
from benchmarks.gpu.device import Clock, describe_device, gpu_environment, guarded
from benchmarks.gpu.estimate import paper_estimate
from benchmarks.gpu.measure import (
    ARCH,
    DATASET,
    TINY,
    Sizes,
    autoattack_rate,
    bf16_agreement,
    fresh,
    full_sizes,
    inference_rate,
    pgd_rate,
    training_key,
    training_rate,
)

NAME = "gpu"
FASHION_PROFILE = "cpu"  # the profile whose model the Fashion-MNIST measurements use
COMPILE_RESERVE_S = 120.0  # the compiled measurements start only with this much of --budget-s left
METHODS = ("standard", "adversarial")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = base_parser(sys.modules[__package__].__doc__, name=NAME)
    parser.prog = "python -m benchmarks.gpu"
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


@dataclass
class Run:
    """One run of the check: its device and clock, and what it has measured so far."""

    device: torch.device
    clock: Clock
    measurements: dict[str, dict[str, Any]] = field(default_factory=dict)
    not_measured: dict[str, str] = field(default_factory=dict)  # name -> why ("skipped: ...", "failed: ...")
    agreement: dict[str, Any] = field(default_factory=dict)  # bf16 against fp32, by data set
    data: dict[str, Any] = field(default_factory=dict)  # the data sets measured on

    def note(self, name: str, entry: dict[str, Any]) -> None:
        """Keep a measurement and say it in a progress line."""
        self.measurements[name] = entry
        memory = "" if entry["peak_memory_mb"] is None else f", peak {entry['peak_memory_mb']:.0f} MiB"
        self.clock.say(
            f"  {name}: {entry['images_per_s']:,.1f} images/s ({entry['images']} images in "
            f"{entry['seconds']:.2f} s{memory})"
        )


def synthetic_cifar(run: Run, sizes: Sizes, *, seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(x, y, x_test, y_test): synthetic CIFAR-10 written in its real format and read back through the library."""
    n_train = max(
        sizes.inference_images, sizes.agreement_images, (sizes.warmup_batches + sizes.train_batches) * sizes.batch_size
    )
    with tempfile.TemporaryDirectory(prefix="advlogits-gpu-check-") as tmp:
        run.clock.say(f"writing {n_train} + {sizes.test_images} synthetic CIFAR-10 images to {tmp}")
        write_synthetic_cifar(Path(tmp), n_train=n_train, n_test=sizes.test_images, seed=seed)
        x, y = load_dataset(DATASET, "train", root=tmp)
        x_test, y_test = load_dataset(DATASET, "test", root=tmp)
    run.data["cifar10"] = {"kind": "synthetic", "signal": SIGNAL, "train_images": len(x), "test_images": len(x_test)}
    return x, y, x_test, y_test


def measure_cifar(run: Run, p: profiles.Profile, sizes: Sizes, data: tuple[Tensor, Tensor, Tensor, Tensor]) -> None:
    """The paper profile's model on synthetic CIFAR-10: inference, eager training in fp32 and bf16, the bf16
    agreement, then PGD and AutoAttack against the fp32-trained agreement model."""
    x, y, x_test, y_test = data
    device, say = run.device, run.clock.say
    say("inference (fp32)")
    model = fresh(ARCH, DATASET, seed=p.seed, device=device)
    run.note("inference_fp32", inference_rate(model, x[: sizes.inference_images], device))
    del model  # its memory is free for the training measurements
    for method in METHODS:
        for precision in ("fp32", "bf16"):
            name = training_key(method, precision, False)
            say(f"{name}: {method} training, {precision}")
            entry = training_rate(p, sizes, method=method, precision=precision, compile=False, x=x, y=y, device=device)
            run.note(name, entry)
    say(f"bf16 agreement: {ARCH} trained twice on synthetic {DATASET}")
    n = sizes.agreement_images
    run.agreement["synthetic-cifar10"], trained = bf16_agreement(
        p, sizes, arch=ARCH, dataset=DATASET, x=x[:n], y=y[:n], x_test=x_test, y_test=y_test, device=device, say=say
    )
    say(f"PGD-{sizes.eval_steps} on {sizes.attack_images} images (fp32)")
    n = sizes.attack_images
    run.note("pgd_fp32", pgd_rate(p, sizes, trained, x_test[:n], y_test[:n], device))
    say(f"AutoAttack (fast) on {sizes.autoattack_images} images (fp32)")
    with guarded("autoattack_fast_fp32", run.not_measured, say):
        run.note("autoattack_fast_fp32", autoattack_rate(p, trained, x_test[: sizes.autoattack_images], device))


def find_fashion_mnist(n_train: int, n_test: int, seed: int) -> tuple[Any, Any, str] | None:
    """(train subset, test subset, folder) of real Fashion-MNIST where a copy is at hand, else None.

    Looks in ``$ADVLOGITS_DATA_ONLY``, ``$ADVLOGITS_DATA``, Debian's folder and the data home, each as an explicit
    ``root`` (so nothing is downloaded).
    """
    candidates = [str(setting(DATA_ONLY) or ""), str(setting(DATA) or ""), str(SYSTEM_FASHION_MNIST), str(data_home())]
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


def fashion_sizes_of(sizes: Sizes, fashion: profiles.Profile, *, tiny: bool) -> Sizes:
    """``sizes`` with the Fashion-MNIST profile's batch size and PGD steps (kept tiny in a tiny run)."""
    if tiny:
        return sizes
    return dataclasses.replace(sizes, batch_size=fashion.batch_size, train_steps=fashion.steps)


def measure_fashion(run: Run, sizes: Sizes, *, tiny: bool) -> Sizes | None:
    """The cpu profile's model on real Fashion-MNIST, where a copy is at hand: fp32 training rates and the bf16
    agreement. Returns the sizes used (None: no copy found, nothing measured, and said so)."""
    profile = profiles.resolve(FASHION_PROFILE, device=str(run.device))
    fsizes = fashion_sizes_of(sizes, profile, tiny=tiny)
    n_train = max((fsizes.warmup_batches + fsizes.train_batches) * fsizes.batch_size, fsizes.agreement_images)
    found = find_fashion_mnist(n_train, sizes.test_images, profile.seed)
    if found is None:
        run.data["fashion-mnist"] = None
        for method in METHODS:
            run.not_measured[f"fashion_{method}_fp32"] = (
                "skipped: no copy of Fashion-MNIST found (nothing is downloaded)"
            )
        run.clock.say("no Fashion-MNIST found: its measurements are skipped")
        return None
    (x, y), (x_test, y_test), folder = found
    run.data["fashion-mnist"] = {"kind": "real", "folder": folder, "train_images": len(x), "test_images": len(x_test)}
    arch, dataset, device = profile.arch, "fashion-mnist", run.device
    for method in METHODS:
        name = f"fashion_{method}_fp32"
        run.clock.say(f"{name}: {method} training of {arch} on real Fashion-MNIST, fp32")
        common = dict(method=method, precision="fp32", compile=False, device=device, arch=arch, dataset=dataset)
        run.note(name, training_rate(profile, fsizes, x=x, y=y, **common))
    run.clock.say(f"bf16 agreement: {arch} trained twice on real Fashion-MNIST")
    n = fsizes.agreement_images
    run.agreement["fashion-mnist"], _ = bf16_agreement(
        profile,
        fsizes,
        arch=arch,
        dataset=dataset,
        x=x[:n],
        y=y[:n],
        x_test=x_test,
        y_test=y_test,
        device=device,
        say=run.clock.say,
    )
    return fsizes


def compile_skipped_because(args: argparse.Namespace, device: torch.device) -> str | None:
    """Why torch.compile is not tried in this run (None: it is)."""
    if args.compile == "yes" or (args.compile == "auto" and device.type == "cuda"):
        return None
    if args.compile == "no":
        return "--compile no"
    return (
        "torch.compile is tried only on a CUDA device by default (on a CPU it compiles for minutes); "
        "--compile yes tries it"
    )


def measure_compiled(
    run: Run, p: profiles.Profile, sizes: Sizes, x: Tensor, y: Tensor, args: argparse.Namespace
) -> None:
    """bf16 + torch.compile training, last and within the time budget: the first needs COMPILE_RESERVE_S left, the
    second 1.5 times the first one's compile time; a failing compile is recorded, not raised."""
    names = [training_key(method, "bf16", True) for method in METHODS]
    why = compile_skipped_because(args, run.device)
    if why is not None:
        run.not_measured.update({name: f"skipped: {why}" for name in names})
        run.clock.say(f"torch.compile skipped: {why}")
        return
    compile_warmup: float | None = None  # the first compiled measurement's warm-up: the next one's guess
    for method, name in zip(METHODS, names):
        used = run.clock.elapsed()
        needed = COMPILE_RESERVE_S if compile_warmup is None else 1.5 * compile_warmup
        if args.budget_s - used < needed:
            run.not_measured[name] = (
                f"skipped: {used:.0f} s of the {args.budget_s:.0f} s budget used, {needed:.0f} s needed to compile"
            )
            run.clock.say(f"{name} {run.not_measured[name]}")
            continue
        run.clock.say(f"{name}: {method} training, bf16 + torch.compile (compiles first: a minute or more)")
        with guarded(name, run.not_measured, run.clock.say):
            entry = training_rate(p, sizes, method=method, precision="bf16", compile=True, x=x, y=y, device=run.device)
            compile_warmup = entry["warmup_s"]
            run.note(name, entry)


def settings(args: argparse.Namespace, p: profiles.Profile, sizes: Sizes, fsizes: Sizes | None, tiny: bool) -> dict:
    """The run's settings, as the result records them."""
    return {
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
        "fashion_sizes": dataclasses.asdict(fsizes) if fsizes is not None else None,
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
    size_note = f"tiny sizes ({'--quick' if args.quick else 'no CUDA device'})" if tiny else "full sizes"
    clock.say(f"device {device} ({describe_device(device)['name']}), {size_note}")
    run = Run(device, clock)
    x, y, x_test, y_test = synthetic_cifar(run, sizes, seed=p.seed)
    measure_cifar(run, p, sizes, (x, y, x_test, y_test))
    fsizes = measure_fashion(run, sizes, tiny=tiny)
    measure_compiled(run, p, sizes, x, y, args)
    clock.say("pricing the paper profile's plan")
    estimate = paper_estimate(p, run.measurements)
    result: dict[str, Any] = {
        "benchmark": NAME,
        "device": describe_device(device),
        "measurements": run.measurements,
        "not_measured": run.not_measured,
        "bf16_agreement": run.agreement,
        "paper_estimate": estimate,
        "data": run.data,
        "settings": settings(args, p, sizes, fsizes, tiny),
        "total_s": clock.elapsed(),
        "env": {**environment(load_avg_start=load_avg_start), **gpu_environment()},
    }
    write_result(result, args.out, summary(result))
    return result


def summary(result: dict[str, Any]) -> list[str]:
    """The human summary printed after the JSON line: every rate, what was not measured, the ratios, the bf16
    agreement and the paper profile's GPU-hours by kind of unit."""
    d, m = result["device"], result["measurements"]
    tiny = " at tiny sizes: the numbers mean nothing" if result["settings"]["tiny"] else ""
    lines = [
        f"GPU check on {d['type']} ({d['name']}){tiny}, {result['total_s']:.0f} s:",
        f"  {'':28s} {'images/s':>12s} {'peak MiB':>9s} {'seconds':>8s}",
    ]
    for name, e in m.items():
        memory = "-" if e["peak_memory_mb"] is None else f"{e['peak_memory_mb']:.0f}"
        lines.append(f"  {name:28s} {e['images_per_s']:12,.1f} {memory:>9s} {e['seconds']:8.2f}")
    lines += [f"  {name:28s} not measured: {why}" for name, why in result["not_measured"].items()]
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
