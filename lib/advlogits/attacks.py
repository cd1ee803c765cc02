"""Adversarial attacks: PGD (L-inf / L2, cross-entropy or CW loss) and FGSM.

Threat model: a perturbation of L-inf (or L2) norm at most ``eps`` in pixel space, images in [0, 1];
normalisation lives inside the model, so ``eps`` is in pixel units (0.1 = 10% of the intensity range).
PGD follows Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks" (ICLR 2018),
with the vocabulary of torchattacks: ``eps, alpha, steps, random_start``. Attacks take input gradients
with ``torch.autograd.grad`` (parameters' ``.grad`` are never touched) and run the model in eval mode,
restoring every submodule's train/eval flag afterwards.

Shapes: ``x`` is (N, C, H, W) (any (N, ...) works) with values in [0, 1], ``y`` is int64 (N,), and the
model maps ``x`` to logits (N, K). Accuracy under an attack is `advlogits.evaluation`'s; AutoAttack is in
`advlogits.autoattack`.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import check_batch, check_bool, check_choice, check_int, check_number, fail
from .predict import eval_mode

Norm = Literal["linf", "l2"]  # the threat model's norm, in the library's one spelling (AutoAttack's is converted)
NORMS: tuple[str, ...] = get_args(Norm)
Loss = Literal["ce", "cw"]

_NORM_TINY = 1e-12  # guards the L2 normalisations against division by zero


# ----------------------------------------------------------------------------------------------------
# validation (always before any compute)


def check_pgd_args(
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    norm: str = "linf",
    random_start: bool = True,
    restarts: int = 1,
    loss: str = "ce",
    generator: torch.Generator | None = None,
    early_stop: bool = False,
    shrink: bool | None = None,
) -> None:
    """The checks `pgd` makes before it computes (a ValueError naming the parameter), for a caller that attacks
    later, batch by batch (`advlogits.evaluation.attack_correct`). Same arguments as `pgd`, without the model.

    Examples::

        check_pgd_args(x, y, eps=0.1, alpha=0.025, steps=20)  # ValueError: "steps must be ..." if steps were 0
    """
    check_number("eps", eps, at_least=0)
    check_bool("early_stop", early_stop)
    check_bool("random_start", random_start)
    if shrink is not None:
        check_bool("shrink", shrink)
    check_number("alpha", alpha, above=0)
    check_int("steps", steps, at_least=1)
    check_int("restarts", restarts, at_least=1)
    check_choice("norm", norm, NORMS)
    check_choice("loss", loss, get_args(Loss))
    if generator is not None and (not isinstance(generator, torch.Generator) or generator.device.type != "cpu"):
        fail(
            "generator",
            "a CPU torch.Generator or None",
            generator,
            hint="random starts are drawn on the CPU so that a seed gives the same x_adv on every device",
        )
    check_batch(x, y)


# ----------------------------------------------------------------------------------------------------
# helpers


def _per_sample_loss(logits: Tensor, y: Tensor, loss: Loss) -> Tensor:
    """Loss to maximise, shape (N,): cross-entropy, or the CW margin max_{j != y} z_j - z_y."""
    if loss == "ce":
        return F.cross_entropy(logits, y, reduction="none")
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return others.amax(dim=1) - z_y


def _per_sample_view(t: Tensor, like: Tensor) -> Tensor:
    """Reshape a (N,) tensor to (N, 1, 1, ...) so it broadcasts against ``like``."""
    return t.view(-1, *([1] * (like.dim() - 1)))


def _random_start(x: Tensor, *, eps: float, norm: Norm, generator: torch.Generator | None) -> Tensor:
    """A uniform draw from the eps-ball, shape of x, drawn on the CPU then moved to x's device.

    L-inf: uniform in [-eps, eps] per coordinate. L2: uniform in the ball, i.e. a Gaussian direction
    normalised to unit length times a radius eps * u^(1/d), with d the number of features per sample.
    """
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    if norm == "linf":
        delta = torch.rand(x.shape, generator=generator, dtype=dtype).mul_(2).sub_(1).mul_(eps)
    else:
        n, d = x.shape[0], x[0].numel()
        direction = torch.randn(x.shape, generator=generator, dtype=dtype)
        u = torch.rand(n, generator=generator, dtype=dtype)
        lengths = direction.flatten(1).norm(dim=1).clamp_min(_NORM_TINY)
        delta = direction.mul_(_per_sample_view(eps * u.pow(1.0 / d) / lengths, direction))
    return delta.to(device=x.device, dtype=x.dtype)


def _pgd_single(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    norm: Norm,
    random_start: bool,
    loss: Loss,
    generator: torch.Generator | None,
    early_stop: bool = False,
    shrink: bool | None = None,
) -> Tensor:
    """One PGD run (model already in eval mode); returns x_adv, detached.

    ``early_stop``: an image whose current iterate is misclassified keeps that iterate and leaves the attack. On
    the CPU the batch shrinks to the images still correctly classified (``shrink``; indexing reads the mask on
    the host); on a GPU the mask only freezes them, so nothing is read back inside the loop.
    """
    if random_start:
        delta = _random_start(x, eps=eps, norm=norm, generator=generator)
    else:
        delta = torch.zeros_like(x)
    delta.add_(x).clamp_(0, 1).sub_(x)  # start inside the box [0, 1]
    shrink = early_stop and (x.device.type == "cpu" if shrink is None else shrink)
    active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device) if early_stop else None
    index = None

    for _ in range(steps):
        xs, ys, ds = x, y, delta
        if shrink:
            index = active.nonzero().flatten()
            if index.numel() == 0:
                break
            xs, ys, ds = x[index], y[index], delta[index]
        elif early_stop:
            ds = delta.clone()  # the step below is in place; the mask needs the old delta
        ds = ds.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = model(xs + ds)
            objective = _per_sample_loss(logits, ys, loss).sum()  # sum: step size independent of N
        (grad,) = torch.autograd.grad(objective, ds)
        with torch.no_grad():
            moved = _step(ds.detach(), grad, xs, eps=eps, alpha=alpha, norm=norm)
            if not early_stop:
                delta = moved
                continue
            correct = logits.argmax(dim=1) == ys  # these take the step; the others stop where they were fooled
            if shrink:
                delta[index[correct]] = moved[correct]
                active[index[~correct]] = False
            else:
                delta = torch.where(_per_sample_view(correct & active, delta), moved, delta)
                active &= correct
    return (x + delta.detach()).clamp_(0, 1)


def _step(delta: Tensor, grad: Tensor, x: Tensor, *, eps: float, alpha: float, norm: Norm) -> Tensor:
    """One ascent step of size ``alpha`` on ``delta`` (in place), projected onto the eps-ball and the box [0, 1]."""
    if norm == "linf":
        delta.add_(grad.sign_(), alpha=alpha).clamp_(-eps, eps)
    else:
        grad_norm = grad.flatten(1).norm(dim=1).clamp_min_(_NORM_TINY)
        delta.add_(grad.div_(_per_sample_view(grad_norm, grad)), alpha=alpha)
        delta_norm = delta.flatten(1).norm(dim=1).clamp_min_(_NORM_TINY)
        delta.mul_(_per_sample_view((eps / delta_norm).clamp_max_(1.0), delta))
    return delta.add_(x).clamp_(0, 1).sub_(x)


# ----------------------------------------------------------------------------------------------------
# attacks


def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    norm: Norm = "linf",
    random_start: bool = True,
    restarts: int = 1,
    loss: Loss = "ce",
    generator: torch.Generator | None = None,
    early_stop: bool = False,
    shrink: bool | None = None,
) -> Tensor:
    """Projected gradient ascent on ``loss`` within the ``norm`` ball of radius ``eps`` around x.

    x: (N, C, H, W) in [0, 1]; y: int64 (N,); returns x_adv with x's shape, dtype and device, detached.
    Each step moves by ``alpha`` (L-inf: along the gradient's sign; L2: along the per-sample unit
    gradient), projects onto the eps-ball and clamps to [0, 1]. ``loss`` "ce" is cross-entropy, "cw" the
    Carlini-Wagner margin max_{j != y} z_j - z_y. With ``restarts`` > 1 each sample keeps its worst case:
    a misclassified x_adv first, then the highest loss. Random starts draw from ``generator`` (a CPU
    generator; the global RNG if None). eps == 0 returns a copy of x.

    ``early_stop=True`` (for measuring robust accuracy, not for training) keeps the first misclassified iterate
    of each image and stops attacking it: never weaker for accuracy (an image it leaves correctly classified
    followed exactly the plain run's path) and much cheaper against models that most images fool quickly. How it
    leaves the attack is ``shrink``'s: True shrinks the batch to the images still standing (indexing reads the mask
    on the host), False freezes the others by a mask (nothing read back inside the loop); None, the default, shrinks
    on the CPU and masks elsewhere. Both give the same x_adv, up to rounding.

    Examples::

        x_adv = pgd(model, x, y, eps=8 / 255, alpha=2 / 255, steps=10, generator=torch.Generator().manual_seed(0))
        robust = model(x_adv).argmax(1) == y
    """
    hyper = dict(eps=eps, alpha=alpha, steps=steps, norm=norm, random_start=random_start, loss=loss)
    check_pgd_args(x, y, **hyper, restarts=restarts, generator=generator, early_stop=early_stop, shrink=shrink)
    if eps == 0:
        return x.detach().clone()

    x, y = x.detach(), y.detach()
    run = dict(**hyper, early_stop=early_stop, shrink=shrink)
    with eval_mode(model):
        x_adv = _pgd_single(model, x, y, generator=generator, **run)
        if restarts == 1:
            return x_adv
        best_fooled, best_loss = _fooled_and_loss(model, x_adv, y, loss)
        for _ in range(restarts - 1):
            candidate = _pgd_single(model, x, y, generator=generator, **run)
            fooled, cand_loss = _fooled_and_loss(model, candidate, y, loss)
            better = (fooled & ~best_fooled) | ((fooled == best_fooled) & (cand_loss > best_loss))
            x_adv = torch.where(_per_sample_view(better, x_adv), candidate, x_adv)
            best_loss = torch.where(better, cand_loss, best_loss)
            best_fooled |= fooled
    return x_adv


@torch.no_grad()
def _fooled_and_loss(model: nn.Module, x_adv: Tensor, y: Tensor, loss: Loss) -> tuple[Tensor, Tensor]:
    """Per sample (N,): whether x_adv is misclassified, and its attack loss."""
    logits = model(x_adv)
    return logits.argmax(dim=1) != y, _per_sample_loss(logits, y, loss)


def fgsm(model: nn.Module, x: Tensor, y: Tensor, *, eps: float) -> Tensor:
    """Fast Gradient Sign Method (Goodfellow et al., ICLR 2015): x + eps * sign(grad_x CE), clamped to [0, 1].

    Exactly one L-inf PGD step from x with alpha = eps and no random start. Shapes as in ``pgd``.

    Examples::

        x_adv = fgsm(model, x, y, eps=0.1)
    """
    check_number("eps", eps, at_least=0)
    check_batch(x, y)
    if eps == 0:
        return x.detach().clone()
    return pgd(model, x, y, eps=eps, alpha=eps, steps=1, norm="linf", random_start=False, loss="ce")
