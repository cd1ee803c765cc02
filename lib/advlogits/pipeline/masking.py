"""Checks that a model's robustness is not an artefact of masked gradients.

A model can look robust because its input gradients are useless to the attacker (zero, saturated or noisy), not
because no adversarial example is near. Three checks (Carlini et al. 2019, "On Evaluating Adversarial Robustness";
Athalye et al. 2018, "Obfuscated Gradients Give a False Sense of Security") look for that on a small subset of the
evaluation images:

* robust accuracy against the radius: white-box PGD at growing radii must bring a genuine model to 0 (at radius
  0.5 every image can be turned into a flat grey one);
* the black-box Square attack (no gradients at all) on the images the white-box attacks left standing;
* a transfer attack: PGD against another model (the teacher), whose adversarial images are then shown to this one.

Square or the transfer attack breaking an image that the white-box attacks could not, or a survivor at the largest
radius, flags the model. Pure computation, no store.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..accel import model_device
from ..attacks import pgd
from ..autoattack import autoattack_attacks_correct
from ..checks import check_images, check_int, check_labels, check_number, check_seed, describe, fail
from ..evaluation import attack_correct, clean_correct


def _check_radii(radii: object) -> list[float]:
    """``radii`` as a list of floats if it is a non-empty increasing sequence of radii in (0, 1]."""
    ok = isinstance(radii, (list, tuple)) and len(radii) > 0
    ok = ok and all(isinstance(r, numbers.Real) and not isinstance(r, bool) and 0 < r <= 1 for r in radii)
    ok = ok and all(b > a for a, b in zip(radii, radii[1:]))
    if not ok:
        fail(
            "radii",
            "a non-empty increasing list of radii in (0, 1] pixel units",
            radii,
            hint="e.g. (eps, 2 * eps, 3 * eps, 0.5): the largest must bring a genuine model to 0",
        )
    return [float(r) for r in radii]


def _check_robust(robust: object, n: int) -> Tensor:
    """``robust`` as a CPU bool tensor (N,): one white-box verdict per image."""
    requirement = f"a bool tensor of shape ({n},), one white-box verdict per image"
    if isinstance(robust, Tensor):
        flags = robust.detach().cpu()
    elif isinstance(robust, (list, tuple, np.ndarray)):
        arr = np.asarray(robust)
        if arr.dtype != np.bool_:
            fail("robust", requirement, robust, shown=f"{arr.dtype} values")
        flags = torch.from_numpy(arr.copy())
    else:
        fail("robust", requirement, robust, shown=type(robust).__name__)
    if flags.dtype != torch.bool or flags.shape != (n,):
        fail("robust", requirement, robust, shown=describe(flags))
    return flags


def _transfer(model: nn.Module, x: Tensor, y: Tensor, *, teacher: nn.Module, **kw: object) -> Tensor:
    """PGD against ``teacher`` (not ``model``) on a batch, returned on the batch's device: a transfer attack."""
    device = model_device(teacher, fallback=x.device)
    return pgd(teacher, x.to(device), y.to(device), **kw).to(x.device)


def masking_checks(
    model: nn.Module,
    teacher: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    robust: Tensor | Sequence[bool],
    eps: float,
    alpha: float,
    steps: int,
    radii: Sequence[float],
    seed: int,
    square_queries: int = 1000,
    batch_size: int = 500,
) -> dict:
    """The three checks of gradient masking on a small subset x (N, C, H, W), y (N,) of the evaluation images.

    ``robust`` (N,) bool: the model's white-box worst case on them (correct clean and under every attack the
    caller ran: PGD-CE, PGD-CW, AutoAttack). ``eps``, ``alpha``, ``steps``: the evaluation's L-inf radius and PGD.

    Returns JSON-able values:

    * ``radii``, ``robust_at_radius``: robust accuracy (fraction) at each radius r, the per-image worst case of
      PGD with the CE and the CW loss (``steps`` steps of ``alpha * r / eps``, random start, seeded, early stop);
      each radius is attacked on its own, so a curve that rises is a warning too;
    * ``square_correct``: per image, still correct after AutoAttack's Square (L-inf, radius ``eps``,
      ``square_queries`` queries, seeded), run on the ``robust`` images (the others are False);
    * ``transfer_correct``: per image, still correct on the images PGD-CE (``steps`` steps of ``alpha``, random
      start, seeded, no early stop) finds against ``teacher``;
    * ``square_breaks``, ``transfer_breaks``: how many ``robust`` images Square / the transfer attack break;
    * ``masked``: either is > 0, or an image survives the largest radius.
    """
    flags = _check_images_and_models(model, teacher, x, y, robust)
    eps, alpha = check_number("eps", eps, above=0, at_most=1), check_number("alpha", alpha, above=0)
    steps, values, seed = check_int("steps", steps, at_least=1), _check_radii(radii), check_seed("seed", seed)
    square_queries = check_int("square_queries", square_queries, at_least=1)
    batch_size = check_int("batch_size", batch_size, at_least=1)
    clean = clean_correct(model, x, y, batch_size=batch_size)
    if bool((flags & ~clean).any()):
        fail(
            "robust",
            "False wherever the model misclassifies the clean image",
            flags,
            shown=f"True for {int((flags & ~clean).sum())} misclassified image(s)",
        )

    pgd_kw = dict(eps=eps, alpha=alpha, steps=steps, seed=seed, batch_size=batch_size)
    at_radius = [_pgd_correct(model, x, y, radius=r, **pgd_kw).float().mean().item() for r in values]
    square = _square_correct(model, x, y, flags, eps=eps, queries=square_queries, seed=seed, batch_size=batch_size)
    transfer = attack_correct(
        model,
        x,
        y,
        attack=_transfer,
        batch_size=batch_size,
        teacher=teacher,
        eps=eps,
        alpha=alpha,
        steps=steps,
        random_start=True,
        generator=torch.Generator().manual_seed(seed),
    )
    square_breaks = int((flags & ~square).sum())
    transfer_breaks = int((flags & ~transfer).sum())
    return {
        "radii": values,
        "robust_at_radius": at_radius,
        "square_correct": square.tolist(),
        "transfer_correct": transfer.tolist(),
        "square_breaks": square_breaks,
        "transfer_breaks": transfer_breaks,
        "masked": square_breaks > 0 or transfer_breaks > 0 or at_radius[-1] > 0,
    }


def _check_images_and_models(model: object, teacher: object, x: Tensor, y: Tensor, robust: object) -> Tensor:
    """The checks of the images, the two models and the white-box verdicts; returns the verdicts (N,) bool."""
    check_images(x)
    check_labels(y, x.shape[0])
    if x.shape[0] == 0:
        fail("x", "at least one image", 0, shown="N=0")
    for name, module in (("model", model), ("teacher", teacher)):
        if not isinstance(module, nn.Module):
            fail(name, "a torch.nn.Module", module, shown=type(module).__name__)
    return _check_robust(robust, x.shape[0])


def _pgd_correct(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    radius: float,
    eps: float,
    alpha: float,
    steps: int,
    seed: int,
    batch_size: int,
) -> Tensor:
    """Per image: correct under PGD-CE at ``radius`` (steps of ``alpha * radius / eps``, random start, seeded, early
    stop) and, where that leaves it standing, under PGD-CW."""
    kw = dict(attack="pgd", batch_size=batch_size, eps=radius, alpha=alpha * radius / eps, steps=steps, early_stop=True)
    ok = attack_correct(model, x, y, loss="ce", generator=torch.Generator().manual_seed(seed), **kw)
    left = ok.nonzero().flatten()
    if len(left):
        ok[left] = attack_correct(
            model, x[left], y[left], loss="cw", generator=torch.Generator().manual_seed(seed), **kw
        )
    return ok


def _square_correct(
    model: nn.Module, x: Tensor, y: Tensor, flags: Tensor, *, eps: float, queries: int, seed: int, batch_size: int
) -> Tensor:
    """Per image: still correct after AutoAttack's Square (L-inf, ``eps``, seeded), run on the ``flags`` images (the
    others are False)."""
    square = torch.zeros_like(flags)
    attacked = flags.nonzero().flatten()
    if len(attacked):
        index = attacked.to(x.device)
        square[attacked] = autoattack_attacks_correct(
            model,
            x[index],
            y[index],
            attacks=["square"],
            eps=eps,
            square_queries=queries,
            batch_size=batch_size,
            seed=seed,
        )
    return square
