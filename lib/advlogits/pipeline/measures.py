"""What the book measures on a trained model: per-image outcomes of clean evaluation and of every attack, the
worst case over them, and the margin drops of chapter 2.

Pure computation, no store: `advlogits.pipeline.stored` calls these on the profile's evaluation images and
stores what they return. The source of this module is part of every stored result's key.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..autoattack import autoattack_correct
from ..checks import check_choice
from ..evaluation import attack_correct, clean_correct
from ..margins import margin_drops


def pgd_correct(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    restarts: int = 1,
    seed: int = 0,
    loss: str = "ce",
    batch_size: int = 500,
) -> Tensor:
    """Per-image robustness (N,) bool under L-inf PGD, computed in batches on the model's device (CPU result).

    The attack stops on each image at its first misclassified iterate (`pgd`'s ``early_stop``): the same or a
    lower accuracy than the plain attack, at a fraction of its cost against models that are easy to fool.
    """
    return attack_correct(
        model,
        x,
        y,
        attack="pgd",
        batch_size=batch_size,
        eps=eps,
        alpha=alpha,
        steps=steps,
        restarts=restarts,
        loss=loss,
        generator=torch.Generator().manual_seed(seed),
        early_stop=True,
    )


AUTOATTACK_SCOPES = ("clean-correct", "pgd-survivors")


def attack_outcomes(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    restarts: int,
    seed: int,
    n_autoattack: int,
    autoattack_version: str,
    autoattack_scope: str = "clean-correct",
    autoattack_targets: int | None = None,
    autoattack_iterations: int | None = None,
) -> dict:
    """Per-image outcomes of every attack the book runs, and the per-image worst case over them.

    Clean accuracy, PGD with the CE loss and PGD with the CW margin loss run on all images; AutoAttack on the first
    ``n_autoattack`` images: with ``autoattack_scope`` "clean-correct", on all of them the model classifies correctly
    (AutoAttack's own number, the standard protocol); with "pgd-survivors", only on those both PGD attacks left
    standing (the worst case is the same, for less compute, and AutoAttack's own number is not measured). An image of
    that subset is robust (``robust_correct``) only when it is classified correctly clean, under both PGD losses and
    under AutoAttack: the worst case, the robust accuracy every claim reads. Accuracies are fractions in [0, 1]; the
    ``*_on_autoattack_subset`` ones are measured on AutoAttack's images, so the attacks compare there. The model runs
    as given (the caller passes it in float32: attacks never run at reduced precision). ``autoattack_targets``:
    the target classes of AutoAttack's targeted attacks (None: its own 9), ``autoattack_iterations`` the iterations of
    its APGD and FAB attacks (None: its own 100).
    """
    check_choice("autoattack_scope", autoattack_scope, AUTOATTACK_SCOPES)
    clean = clean_correct(model, x, y)
    attack = dict(eps=eps, alpha=alpha, steps=steps, restarts=restarts, seed=seed)
    ce = clean & pgd_correct(model, x, y, **attack)
    cw = clean & pgd_correct(model, x, y, **attack, loss="cw")
    result = {
        "clean_acc": clean.float().mean().item(),
        "pgd_acc": ce.float().mean().item(),
        "pgd_cw_acc": cw.float().mean().item(),
        "clean_correct": clean.tolist(),
        "pgd_correct": ce.tolist(),
        "pgd_cw_correct": cw.tolist(),
        "n_eval": len(y),
    }
    if n_autoattack > 0:
        k = n_autoattack
        scope = clean[:k] if autoattack_scope == "clean-correct" else ce[:k] & cw[:k]
        attacked = scope.nonzero().flatten()
        autoattack = torch.zeros(k, dtype=torch.bool)
        if len(attacked):
            autoattack[attacked] = autoattack_correct(
                model,
                x[attacked],
                y[attacked],
                eps=eps,
                version=autoattack_version,
                seed=seed,
                n_targets=autoattack_targets,
                n_iter=autoattack_iterations,
            )
        worst = ce[:k] & cw[:k] & autoattack
        result.update(
            robust_acc=worst.float().mean().item(),
            robust_correct=worst.tolist(),
            pgd_acc_on_autoattack_subset=ce[:k].float().mean().item(),
            pgd_cw_acc_on_autoattack_subset=cw[:k].float().mean().item(),
            n_autoattack=k,
            n_autoattacked=len(attacked),
            autoattack_scope=autoattack_scope,
        )
        if autoattack_scope == "clean-correct":
            result.update(autoattack_acc=autoattack.float().mean().item(), autoattack_correct=autoattack.tolist())
    return result


def margin_drop_lists(
    model: nn.Module, x: Tensor, y: Tensor, *, eps: float, alpha: float, steps: int, restarts: int, seed: int
) -> dict[str, list]:
    """`advlogits.margins.margin_drops` with a seeded generator, as JSON-able lists."""
    drops = margin_drops(
        model, x, y, eps=eps, alpha=alpha, steps=steps, restarts=restarts, generator=torch.Generator().manual_seed(seed)
    )
    return {k: v.tolist() for k, v in drops.items()}
