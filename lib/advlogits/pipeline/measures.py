"""What the book measures on a trained model: per-image outcomes of clean evaluation and of every attack.

Pure computation, no store: `advlogits.pipeline.stored` calls these on the profile's evaluation images and
stores what they return. The source of this module is part of every stored result's key.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..attacks import autoattack_correct, predict_logits, robust_correct
from ..margins import margin_drops


def pgd_correct(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, alpha: float, steps: int,
                restarts: int = 1, seed: int = 0, loss: str = "ce", batch_size: int = 500) -> Tensor:
    """Per-image robustness (N,) bool under L-inf PGD, computed in batches on the model's device (CPU result).

    The attack stops on each image at its first misclassified iterate (`pgd`'s ``early_stop``): the same or a
    lower accuracy than the plain attack, at a fraction of its cost against models that are easy to fool.
    """
    return robust_correct(model, x, y, attack="pgd", batch_size=batch_size, eps=eps, alpha=alpha, steps=steps,
                          restarts=restarts, loss=loss, generator=torch.Generator().manual_seed(seed),
                          early_stop=True)


def clean_pgd_autoattack(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, alpha: float, steps: int,
                         restarts: int, seed: int, n_autoattack: int, autoattack_version: str) -> dict:
    """Clean, PGD (CE loss) and AutoAttack outcomes per image, with their accuracies (fractions in [0, 1]).

    PGD runs on all images. AutoAttack runs on the first ``n_autoattack`` of them, as an ensemble with that PGD:
    an image counts as robust only if it is classified correctly and survives both, so AutoAttack attacks only
    the images PGD did not break (the others are non-robust whatever AutoAttack finds; this is what makes weak
    models cheap to evaluate, and the number can only be lower than AutoAttack's alone). PGD is re-reported on
    the AutoAttack images so the two can be compared there.
    """
    logits = predict_logits(model, x)
    clean = logits.argmax(1) == y
    robust = clean & pgd_correct(model, x, y, eps=eps, alpha=alpha, steps=steps, restarts=restarts, seed=seed)
    result = {"clean_acc": clean.float().mean().item(), "pgd_acc": robust.float().mean().item(),
              "clean_correct": clean.tolist(), "pgd_correct": robust.tolist(), "n_eval": len(y)}
    if n_autoattack > 0:
        k = n_autoattack
        attacked = robust[:k].nonzero().flatten()
        survived = torch.zeros(k, dtype=torch.bool)
        if len(attacked):
            survived[attacked] = autoattack_correct(model, x[attacked], y[attacked], eps=eps,
                                                    version=autoattack_version, seed=seed)
        result.update(autoattack_acc=survived.float().mean().item(), autoattack_correct=survived.tolist(),
                      pgd_acc_on_autoattack_subset=robust[:k].float().mean().item(), n_autoattack=k,
                      n_autoattacked=len(attacked))
    return result


def pgd_cw(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, alpha: float, steps: int, restarts: int,
           seed: int, n_autoattack: int) -> dict:
    """Outcomes under L-inf PGD with the CW margin loss ``max_{j != y} z_j - z_y``.

    The margin loss does not saturate like cross-entropy on over-confident logits, so it is the check against
    gradient masking by sharp distillation targets. Returns ``pgd_cw_acc`` (all images), ``pgd_cw_correct``
    (per image) and, if ``n_autoattack > 0``, ``pgd_cw_acc_on_autoattack_subset`` (its first images).
    """
    robust = pgd_correct(model, x, y, eps=eps, alpha=alpha, steps=steps, restarts=restarts, seed=seed, loss="cw")
    result = {"pgd_cw_acc": robust.float().mean().item(), "pgd_cw_correct": robust.tolist()}
    if n_autoattack > 0:
        result["pgd_cw_acc_on_autoattack_subset"] = robust[:n_autoattack].float().mean().item()
    return result


def margin_drop_lists(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, alpha: float, steps: int,
                      restarts: int, seed: int) -> dict[str, list]:
    """`advlogits.margins.margin_drops` with a seeded generator, as JSON-able lists."""
    drops = margin_drops(model, x, y, eps=eps, alpha=alpha, steps=steps, restarts=restarts,
                         generator=torch.Generator().manual_seed(seed))
    return {k: v.tolist() for k, v in drops.items()}
