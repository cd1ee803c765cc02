"""AutoAttack (Croce & Hein, ICML 2020) through ``pyautoattack``: per-image robustness under its standard and fast
versions, or under a chosen list of its attacks (Square alone, say, the black-box check of masked gradients).

The library spells the norm ``"linf"`` / ``"l2"`` (`advlogits.attacks.Norm`); AutoAttack's own spelling (``"Linf"``,
``"L2"``) appears only where it is called. AutoAttack runs on the model's device with its ``seed``; its logging is
silenced, and the global RNG state (which AutoAttack reseeds) and the model's train/eval modes are restored.
`adversary` gives AutoAttack's object configured as the book runs it, for whoever wants its adversarial examples.

Shapes: ``x`` is (N, C, H, W) with values in [0, 1], ``y`` int64 (N,); results are (N,) bool on the CPU.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from ._compat import import_autoattack
from .accel import model_device
from .attacks import NORMS, Norm
from .checks import check_batch, check_choice, check_int, check_number, fail
from .evaluation import clean_correct
from .predict import eval_mode, progress_bar

Version = Literal["standard", "fast"]

AA_ATTACKS: tuple[str, ...] = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")  # AutoAttack's names
AA_SQUARE_QUERIES = 5000  # AutoAttack's standard number of Square queries
_FAST_ATTACKS = ("apgd-ce", "apgd-t")  # the book's protocol: AutoAttack means APGD-CE + APGD-T at least
_STANDARD_ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square")  # AutoAttack's standard version (RobustBench)
_MAX_TARGETS = 9  # AutoAttack's standard number of target classes for APGD-T and FAB-T
_MIN_CLASSES = {"apgd-dlr": 3, "apgd-t": 4}  # the DLR losses read the 3rd / 4th-largest logit; the others need 2
_AUTOATTACK_NORM = {"linf": "Linf", "l2": "L2"}  # our spelling -> AutoAttack's


def autoattack_accuracy(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: Norm = "linf",
    version: Version = "standard",
    batch_size: int = 500,
    seed: int = 0,
    n_targets: int | None = None,
    n_iter: int | None = None,
) -> float:
    """Robust accuracy in [0, 1] under AutoAttack: the mean of `autoattack_correct` (same arguments).

    Examples::

        autoattack_accuracy(model, x, y, eps=8 / 255, version="fast")
    """
    correct = autoattack_correct(
        model, x, y, eps=eps, norm=norm, version=version, batch_size=batch_size, seed=seed, n_targets=n_targets,
        n_iter=n_iter,
    )  # fmt: skip
    return correct.sum().item() / correct.numel()


def autoattack_correct(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: Norm = "linf",
    version: Version = "standard",
    batch_size: int = 500,
    seed: int = 0,
    n_targets: int | None = None,
    n_iter: int | None = None,
) -> Tensor:
    """Per-image robustness (N,) bool on the CPU under AutoAttack.

    version "standard": APGD-CE, APGD-T, FAB-T and Square (the RobustBench protocol); "fast": APGD-CE
    and APGD-T only, with the standard settings (100 iterations, one restart, up to 9 target classes;
    ``n_targets`` sets fewer, ``n_iter`` other iterations).
    The model needs at least 4 classes (the targeted DLR loss reads the 4th logit). It is
    `autoattack_attacks_correct` with the version's attacks.

    Examples::

        robust = autoattack_correct(model, x, y, eps=0.1, version="fast", seed=0)
    """
    check_choice("version", version, get_args(Version))
    attacks = _STANDARD_ATTACKS if version == "standard" else _FAST_ATTACKS
    _check_attacks_args(attacks, eps, norm, AA_SQUARE_QUERIES, n_targets, n_iter, seed)
    check_int("batch_size", batch_size, at_least=1)
    _check_images(x, y)
    if eps > 0:
        n_classes = _num_classes(model, x)
        if n_classes < _MIN_CLASSES["apgd-t"]:
            fail(
                "model",
                f"a model with at least {_MIN_CLASSES['apgd-t']} classes for AutoAttack",
                n_classes,
                shown=f"K={n_classes}",
                hint="AutoAttack's targeted DLR loss is undefined below that; use "
                "robust_accuracy(attack='pgd') instead",
            )
    return autoattack_attacks_correct(
        model, x, y, attacks=attacks, eps=eps, norm=norm, batch_size=batch_size, seed=seed, n_targets=n_targets,
        n_iter=n_iter,
    )  # fmt: skip


def autoattack_attacks_correct(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    attacks: list[str] | tuple[str, ...],
    eps: float,
    norm: Norm = "linf",
    square_queries: int = AA_SQUARE_QUERIES,
    n_targets: int | None = None,
    n_iter: int | None = None,
    batch_size: int = 500,
    seed: int = 0,
) -> Tensor:
    """Per-image robustness (N,) bool on the CPU under the AutoAttack ``attacks`` chosen, run in that order, each on
    the images the previous ones left standing (``pyautoattack``'s "custom" version).

    ``attacks``: names from `AA_ATTACKS`, e.g. ``["square"]`` for the black-box Square attack alone, which makes
    ``square_queries`` queries per image (p_init 0.8, one restart, AutoAttack's schedule). The other attacks keep
    `autoattack_correct`'s standard settings (100 iterations, one restart, up to 9 target classes), so
    ``attacks=["apgd-ce", "apgd-t"]`` is its version "fast". ``n_targets`` (default: AutoAttack's 9, or K - 1
    below 10 classes) sets how many target classes APGD-T and FAB-T try; ``n_iter`` (default: AutoAttack's 100) how
    many iterations APGD and FAB make, APGD's step-size checkpoints scaled with them. APGD-DLR needs 3 classes and
    APGD-T 4.

    Examples::

        robust = autoattack_attacks_correct(model, x, y, attacks=["square"], eps=0.1, square_queries=1000)
    """
    _check_attacks_args(attacks, eps, norm, square_queries, n_targets, n_iter, seed)
    check_int("batch_size", batch_size, at_least=1)
    _check_images(x, y)
    if eps == 0:
        return clean_correct(model, x, y, batch_size=batch_size)
    device = model_device(model, fallback=x.device)
    with eval_mode(model):
        n_classes = _num_classes(model, x)
        _check_classes(attacks, n_classes)
        targets = min(_MAX_TARGETS if n_targets is None else n_targets, n_classes - 1)
        aa = adversary(
            model, attacks, eps=eps, norm=norm, device=device, seed=seed, n_targets=targets,
            square_queries=square_queries, n_iter=n_iter,
        )  # fmt: skip
        fork = dict(devices=[]) if device.type == "cpu" else dict(device_type=device.type)
        chunks = []
        with torch.random.fork_rng(**fork), _silenced_logger(aa.logger):
            # one AutoAttack run per batch (each seeded alike), so that a progress bar can follow the batches
            for start in progress_bar(range(0, x.shape[0], batch_size), desc="AutoAttack", unit="batch"):
                xb, yb = x[start : start + batch_size], y[start : start + batch_size]
                chunks.append(aa.run_standard_evaluation(xb, yb, batch_size=batch_size)[0].cpu())
    return clean_correct(model, torch.cat(chunks), y.cpu(), batch_size=batch_size)


def _check_images(x: Tensor, y: Tensor) -> None:
    check_batch(x, y)
    if x.shape[0] == 0:
        fail("x", "at least one sample", 0, shown="N=0")


def _check_attacks_args(
    attacks: object,
    eps: object,
    norm: object,
    square_queries: object,
    n_targets: object,
    n_iter: object,
    seed: object,
) -> None:
    """The checks of the attacks' settings, shared by `autoattack_attacks_correct` and `adversary`."""
    if (
        not isinstance(attacks, (list, tuple))
        or not attacks
        or len(set(attacks)) != len(attacks)
        or any(a not in AA_ATTACKS for a in attacks)
    ):
        fail(
            "attacks",
            f"a non-empty list of distinct AutoAttack attacks from {', '.join(map(repr, AA_ATTACKS))}",
            attacks,
        )
    check_number("eps", eps, at_least=0)
    check_choice("norm", norm, NORMS)
    check_int("square_queries", square_queries, at_least=1)
    if n_targets is not None:
        check_int("n_targets", n_targets, at_least=1)
    if n_iter is not None:
        check_int("n_iter", n_iter, at_least=1)
    check_int("seed", seed)


def _num_classes(model: nn.Module, x: Tensor) -> int:
    """K, the number of logits the model gives (one forward pass of one image, in eval mode)."""
    with eval_mode(model), torch.inference_mode():
        return model(x[:1].to(model_device(model, fallback=x.device))).shape[1]


def _check_classes(attacks: Sequence[str], n_classes: int) -> None:
    for name in attacks:
        needed = _MIN_CLASSES.get(name, 2)
        if n_classes < needed:
            fail(
                "model",
                f"a model with at least {needed} classes for AutoAttack's {name}",
                n_classes,
                shown=f"K={n_classes}",
                hint="its DLR loss is undefined below that",
            )


def adversary(
    model: nn.Module,
    attacks: Sequence[str],
    *,
    eps: float,
    norm: Norm,
    device: torch.device,
    seed: int,
    n_targets: int,
    square_queries: int = AA_SQUARE_QUERIES,
    n_iter: int | None = None,
) -> Any:
    """AutoAttack's "custom" version running ``attacks`` as `autoattack_attacks_correct` runs them: AutoAttack's
    standard settings (one restart each, silent), with ``n_targets`` target classes, Square's queries and, where
    ``n_iter`` is given, the iterations of APGD and FAB. The norm is given in the library's spelling; a bad setting
    raises a ValueError naming it."""
    _check_attacks_args(attacks, eps, norm, square_queries, n_targets, n_iter, seed)
    aa = import_autoattack().AutoAttack(
        model, attacks=list(attacks), norm=_AUTOATTACK_NORM[norm], eps=eps, version="custom", device=device, seed=seed
    )
    aa.verbose = False
    aa.apgd.n_restarts = 1
    aa.apgd_targeted.n_restarts = 1
    aa.apgd_targeted.n_target_classes = n_targets
    aa.fab.n_restarts = 1
    aa.fab.n_target_classes = n_targets
    aa.square.n_queries = square_queries
    if n_iter is not None:
        _apgd_iterations(aa.apgd, n_iter)
        _apgd_iterations(aa.apgd_targeted, n_iter)
        aa.fab.n_iter = n_iter
    return aa


def _apgd_iterations(apgd: Any, n_iter: int) -> None:
    """``n_iter`` iterations for an APGD attack, with the step-size schedule of Croce & Hein (2020) scaled to them
    as APGD's constructor scales it: the first checkpoint after 22% of the iterations, checkpoints at least 6% apart,
    their spacing shrinking by 3% at each."""
    apgd.n_iter = apgd.n_iter_orig = n_iter
    apgd.n_iter_2 = max(int(0.22 * n_iter), 1)
    apgd.n_iter_min = max(int(0.06 * n_iter), 1)
    apgd.size_decr = max(int(0.03 * n_iter), 1)


@contextlib.contextmanager
def _silenced_logger(logger: logging.Logger) -> Iterator[None]:
    """Disable a ``logging.Logger`` (AutoAttack's progress and sanity-check messages) for the block."""
    previous = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = previous
