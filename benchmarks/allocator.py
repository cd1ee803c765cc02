"""The memory allocator's settings: glibc's default against keeping freed memory in the process (the Makefile's).

Why: glibc returns a freed block larger than its mmap threshold (a batch's activations: 17 MB for the first
convolution of cnn-small on 200 images) to the system, and maps it again, page by page, on the next batch. The
Makefile exports ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` and ``MALLOC_TOP_PAD_`` (`KEPT`) so that
every process it starts keeps such blocks instead.

What is measured: in child processes (glibc reads the variables when a process starts), one with the system's
defaults (the three variables removed) and one with `KEPT`, alternating for ``--repeats`` rounds, each child
times the book's three kinds of passes on the profile's architecture (seeded, untrained: the cost does not depend
on the weights) over Fashion-MNIST test images:

* ``pgd``: a PGD attack of the evaluation's settings (eps, eval_alpha, eval_steps, random start, no early stop)
  on a batch of 500, as `advlogits.pipeline.measures.pgd_correct` runs it;
* ``input_gradient``: forward + backward to the input on a batch of 200, the size of the batches AutoAttack
  attacks in chapter 4 (the images PGD left standing);
* ``train_step``: an SGD step on a batch of the profile's batch size (128), as training runs it.

Each child reports its per-image times (median of its timed rounds after one warm-up) and a digest of what it
computed (the adversarial images, input gradients and trained weights): the two settings must compute the same
bytes. Reported: per pass, the median over the children of each setting and ``ratio`` = kept / system (below 1
is faster), and ``same_results``.

Run: ``python -m benchmarks.allocator`` (``--help`` for the flags); writes ``_build/bench/allocator.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
from typing import Any

import torch

from advlogits import profiles
from advlogits.attacks import pgd
from advlogits.data import input_shape, load_dataset
from advlogits.models import build_model
from benchmarks._common import (
    QUICK_HELP,
    bare_passes,
    base_parser,
    environment,
    load_average,
    median_per_image,
    positive_int,
    run_child,
    write_result,
)

NAME = "allocator"
# What the Makefile exports (tests/test_benchmarks.py checks that they agree).
KEPT: dict[str, str] = {
    "MALLOC_MMAP_THRESHOLD_": "33554432",  # blocks up to 32 MiB (glibc's largest) come from the heap
    "MALLOC_TRIM_THRESHOLD_": "1073741824",  # up to 1 GiB of free memory at the heap's top is kept
    "MALLOC_TOP_PAD_": "268435456",  # the heap grows 256 MiB at a time
}
SETTINGS = ("system", "kept")
PASSES = ("pgd", "input_gradient", "train_step")
BATCHES = {"pgd": 500, "input_gradient": 200}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = base_parser(__doc__, name=NAME)
    parser.add_argument("--quick", action="store_true", help=QUICK_HELP)
    parser.add_argument("--repeats", type=positive_int, default=3, help="child processes per setting")
    parser.add_argument("--rounds", type=positive_int, default=5, help="timed rounds inside each child")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # one child's measurement
    args = parser.parse_args(argv)
    if args.quick:  # a few seconds: one child per setting, one round
        args.repeats, args.rounds = 1, 1
    return args


def _digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One process's per-image seconds of each pass and the digest of what the passes computed."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    p = profiles.resolve(args.profile, device="cpu")
    steps = 2 if args.quick else p.eval_steps
    torch.manual_seed(p.seed)
    model = build_model(p.arch, in_channels=input_shape(p.dataset)[0]).eval()
    x, y = load_dataset(p.dataset, "test", n=BATCHES["pgd"], seed=p.seed)
    xb, yb = x[: BATCHES["input_gradient"]], y[: BATCHES["input_gradient"]]
    xt, yt = x[: p.batch_size], y[: p.batch_size]
    optimizer = torch.optim.SGD(model.parameters(), lr=p.lr, momentum=0.9)
    out: dict[str, Any] = {}

    def attack() -> torch.Tensor:
        generator = torch.Generator().manual_seed(p.seed)
        return pgd(model, x, y, eps=p.eps, alpha=p.eval_alpha, steps=steps, generator=generator)

    passes = bare_passes(model, {"input_gradient": (xb, yb), "parameter_gradient": (xt, yt)}, optimizer=optimizer)
    input_gradient, train_step = passes["input_gradient"], passes["parameter_gradient"]

    checks = [attack(), input_gradient()]  # before training changes the weights
    out["pgd"] = median_per_image(attack, images=len(x), rounds=args.rounds)
    out["input_gradient"] = median_per_image(input_gradient, images=len(xb), rounds=args.rounds)
    out["train_step"] = median_per_image(train_step, images=len(xt), rounds=args.rounds)
    out["digest"] = _digest(*checks, *model.state_dict().values())
    return out


def _run_child(setting: str, args: argparse.Namespace) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in KEPT}
    if setting == "kept":
        env.update(KEPT)
    command = ["--child", "--profile", args.profile, "--rounds", str(args.rounds)] + (["--quick"] if args.quick else [])
    command += ["--threads", str(args.threads)] if args.threads is not None else []
    return run_child("benchmarks.allocator", command, env=env, what=f"the {setting} child")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return {}
    load_avg_start = load_average()
    children: dict[str, list[dict[str, Any]]] = {s: [] for s in SETTINGS}
    for round_ in range(args.repeats):  # alternating, so that a change in the machine's load hits both alike
        for setting in SETTINGS if round_ % 2 == 0 else SETTINGS[::-1]:
            children[setting].append(_run_child(setting, args))
    per_image = {s: {k: statistics.median(c[k] for c in children[s]) for k in PASSES} for s in SETTINGS}
    ratio = {k: per_image["kept"][k] / per_image["system"][k] for k in PASSES}
    digests = {c["digest"] for s in SETTINGS for c in children[s]}
    result: dict[str, Any] = {
        "benchmark": NAME,
        "ratio": ratio,
        "per_image_s": per_image,
        "same_results": len(digests) == 1,
        "children": children,
        "settings": {
            "profile": args.profile,
            "kept": KEPT,
            "batches": {**BATCHES, "train_step": profiles.resolve(args.profile).batch_size},
            "repeats": args.repeats,
            "rounds": args.rounds,
            "quick": args.quick,
        },
        "env": environment(load_avg_start=load_avg_start),
    }
    summary = [f"allocator kept / system ({args.repeats} children each, median per image):"]
    for k in PASSES:
        system, kept = per_image["system"][k], per_image["kept"][k]
        summary.append(f"  {k:15s} {1e6 * system:8.1f} us -> {1e6 * kept:8.1f} us  ratio {ratio[k]:.3f}")
    summary.append(f"  same results under both settings: {'yes' if result['same_results'] else 'NO'}")
    write_result(result, args.out, summary)
    return result


if __name__ == "__main__":
    main()
