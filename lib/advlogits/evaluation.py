"""Accuracy, clean and under one attack, per image and as a fraction.

Clean accuracy has one way: `clean_correct`, the argmax of `advlogits.predict.predict_logits`, and its mean
`accuracy`. Under an attack, `attack_correct` attacks batch by batch on the model's device (FGSM, PGD or any
callable) and predicts on the adversarial images the same way; `robust_accuracy` is its mean. AutoAttack has its own
module (`advlogits.autoattack`); the book's worst case over all attacks is `advlogits.pipeline.measures`'.

Shapes: ``x`` is (N, C, H, W) with values in [0, 1], ``y`` int64 (N,); per-image results are (N,) bool on the CPU.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from .accel import model_device
from .attacks import check_pgd_args, fgsm, pgd
from .checks import check_batch, check_choice, check_int, check_number, fail
from .predict import eval_mode, predict_logits, progress_bar

AttackName = Literal["fgsm", "pgd"]

_ATTACKS: dict[str, Callable[..., Tensor]] = {"fgsm": fgsm, "pgd": pgd}


def clean_correct(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 1000) -> Tensor:
    """Per image (N,) bool on the CPU: the model's clean prediction (`predict_logits`' argmax) is ``y``.

    Examples::

        correct = clean_correct(model, x, y)
    """
    check_int("batch_size", batch_size, at_least=1)
    check_batch(x, y)
    return predict_logits(model, x, batch_size=batch_size).argmax(1) == y.cpu()


def accuracy(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 1000) -> float:
    """Clean accuracy in [0, 1]: the mean of `clean_correct` (0.0 for no images); the model's modes restored.

    Examples::

        accuracy(model, x_test, y_test)  # e.g. 0.87
    """
    correct = clean_correct(model, x, y, batch_size=batch_size)
    return correct.sum().item() / len(correct) if len(correct) else 0.0


def _resolve_attack(model: nn.Module, x: Tensor, y: Tensor, attack: object, kw: dict[str, object]) -> Callable:
    """The attack function for `attack_correct`, its ``kw`` validated."""
    if callable(attack):
        return attack
    check_choice(
        "attack",
        attack,
        get_args(AttackName),
        hint="or pass a callable attack(model, x, y, **kw); clean accuracy is accuracy(model, x, y)",
    )
    attack_fn = _ATTACKS[attack]
    try:
        bound = inspect.signature(attack_fn).bind(model, x, y, **kw)
    except TypeError as err:
        raise ValueError(f"kw must be hyper-parameters of attack={attack!r} (got {sorted(kw)}); {err}") from err
    bound.apply_defaults()
    args = {k: v for k, v in bound.arguments.items() if k != "model"}
    if attack == "pgd":
        check_pgd_args(**args)
    else:
        check_number("eps", args["eps"], at_least=0)
    return attack_fn


def attack_correct(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    attack: AttackName | Callable[..., Tensor],
    batch_size: int,
    **kw: object,
) -> Tensor:
    """Per image (N,) bool on the CPU: still classified correctly after ``attack``.

    ``attack``: "fgsm" or "pgd" (``kw`` are their hyper-parameters, e.g. eps, alpha, steps), or a callable
    ``attack(model, xb, yb, **kw) -> x_adv``. Runs in batches of ``batch_size`` on the model's device; a
    ``generator`` in ``kw`` is shared by all batches, so a seeded generator gives a deterministic result. The
    predictions on the adversarial images are `clean_correct`'s, in eval mode; the model's modes are restored.

    Examples::

        robust = attack_correct(model, x, y, attack="pgd", batch_size=500, eps=0.1, alpha=0.025, steps=20)
    """
    check_int("batch_size", batch_size, at_least=1)
    attack_fn = _resolve_attack(model, x, y, attack, kw)
    check_batch(x, y)
    if x.shape[0] == 0:
        fail("x", "at least one sample", 0, shown="N=0")

    device = model_device(model, fallback=x.device)
    out = []
    name = attack if isinstance(attack, str) else getattr(attack, "__name__", "attack")
    with eval_mode(model):
        for start in progress_bar(range(0, x.shape[0], batch_size), desc=f"{name} attack", unit="batch"):
            xb = x[start : start + batch_size].to(device)
            yb = y[start : start + batch_size].to(device)
            x_adv = attack_fn(model, xb, yb, **kw)
            model.eval()  # a user callable may have switched modes; predictions are made in eval mode
            out.append(clean_correct(model, x_adv, yb, batch_size=len(xb)))
    return torch.cat(out)


def robust_accuracy(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    attack: AttackName | Callable[..., Tensor],
    batch_size: int,
    **kw: object,
) -> float:
    """Fraction in [0, 1] of samples the model still classifies correctly after ``attack``: the mean of
    `attack_correct` (same arguments).

    Examples::

        robust_accuracy(model, x, y, attack="fgsm", batch_size=500, eps=0.1)
    """
    correct = attack_correct(model, x, y, attack=attack, batch_size=batch_size, **kw)
    return correct.sum().item() / correct.numel()
