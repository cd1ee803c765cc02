"""Worst-case margins: the book's proposition for linear models in closed form, PGD on one pairwise margin,
the first-order prediction for networks, and the last (linear) layer of a network (claim C3).

The proposition (ours; the paper's own theorem is not available). For a linear model ``z = W x + b`` and
classes y != j, write ``d = w_y - w_j`` and ``m = z_y - z_j`` (the pairwise margin). Then

    min_{||delta||_p <= eps} m(x + delta) = m(x) - eps * ||d||_q,   1/p + 1/q = 1,

attained at ``delta = -eps * sign(d)`` (p = inf, q = 1) or ``delta = -eps * d / ||d||_2`` (p = q = 2). With the
pixel box ``x + delta in [0, 1]^D`` the L-inf problem stays separable per pixel: ``delta_i = lo_i`` where
``d_i > 0`` and ``hi_i`` where ``d_i < 0``, with ``lo_i = max(-eps, -x_i)`` and ``hi_i = min(eps, 1 - x_i)``; the L2
closed form needs the box to be inactive at its minimiser (checked, never assumed).

Shapes: ``x`` is (N, C, H, W) or (N, D) in [0, 1], ``y`` int64 (N,), ``weight`` (K, D), ``bias`` (K,); margins
are in logit units. Functions run on the device of their inputs (or the model's) and return CPU results only
where they say so.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import Tensor, nn

from .accel import model_device
from .attacks import NORMS, Norm, pgd
from .checks import check_choice, check_images, check_int, check_labels, check_number, describe, fail
from .logits import logit_gap, runner_up
from .predict import eval_mode, predict_logits

DUAL = {"linf": 1, "l2": 2}  # the dual norm's order: ||.||_inf <-> ||.||_1, ||.||_2 <-> ||.||_2

# The PGD check of the closed form: steps of eps / 4 (8 of them cross the L-inf ball; the L2 iterates approach
# the optimum geometrically), and the L2 check's inputs and radius: images mapped into [0.25, 0.75] and a
# radius 0.25, so that no pixel can leave [0, 1] at the L2 minimiser and the L2 closed form applies.
CHECK_STEPS = {"linf": 20, "l2": 60}
L2_CHECK_EPS = 0.25

# ----------------------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------------------


def _check_eps(eps: object) -> None:
    check_number("eps", eps, at_least=0, hint="a radius in [0, 1] pixel units")


def _check_norm(norm: object) -> None:
    check_choice("norm", norm, NORMS)


def _check_linear(weight: object, bias: object) -> None:
    if not isinstance(weight, Tensor) or weight.ndim != 2 or weight.shape[0] < 2 or not weight.is_floating_point():
        fail("weight", "a floating-point tensor of shape (K, D) with K >= 2 classes", weight, shown=describe(weight))
    if not isinstance(bias, Tensor) or bias.shape != weight.shape[:1]:
        fail("bias", f"a tensor of shape ({weight.shape[0]},), one value per class", bias, shown=describe(bias))


def _check_inputs(x: object, y: object, k: int, d: int | None = None) -> None:
    check_images(x)
    if d is not None and x[0].numel() != d:
        fail("x", f"{d} features per sample, as many as weight has", x, shown=describe(x))
    check_labels(y, x.shape[0], k)


def _targets(j: int | Tensor, y: Tensor) -> Tensor:
    """``j`` as an int64 (N,) tensor on y's device, refused where it equals y (a margin needs two classes)."""
    j = torch.full_like(y, j) if isinstance(j, int) else j.to(device=y.device, dtype=torch.long)
    if j.shape != y.shape:
        fail("j", f"an int or a tensor of shape {tuple(y.shape)}", j, shown=describe(j))
    if bool((j == y).any()):
        fail(
            "j",
            "different from y for every sample (the margin z_y - z_j needs two classes)",
            j,
            shown=f"{int((j == y).sum())} equal",
        )
    return j


# ----------------------------------------------------------------------------------------------------------
# norms and the closed form
# ----------------------------------------------------------------------------------------------------------


def dual_norm(v: Tensor, *, norm: Norm) -> Tensor:
    """The dual norm of ``norm`` along the last dimension: ||v||_1 for "linf", ||v||_2 for "l2". (..., D) -> (...)."""
    _check_norm(norm)
    return torch.linalg.vector_norm(v, ord=DUAL[norm], dim=-1)


def pairwise_dual_norms(weight: Tensor, *, norm: Norm) -> Tensor:
    """``||w_i - w_j||_*`` for all class pairs: weight (K, D) -> (K, K), symmetric, zero diagonal."""
    _check_norm(norm)
    return dual_norm(weight[:, None, :] - weight[None, :, :], norm=norm)


def mean_pairwise_dual_norm(weight: Tensor, *, norm: Norm) -> float:
    """Mean of ``||w_i - w_j||_*`` over the K (K - 1) ordered pairs i != j (the proposition's penalty)."""
    k = weight.shape[0]
    return (pairwise_dual_norms(weight, norm=norm).sum() / (k * (k - 1))).item()


def worst_case_perturbation(d: Tensor, x: Tensor | None, *, eps: float, norm: Norm, box: bool = True) -> Tensor:
    """The perturbation delta (N, D) minimising ``d . delta`` over the ``norm`` ball of radius ``eps``.

    d: (N, D) margin gradients ``w_y - w_j``; x: (N, D) clean inputs in [0, 1] (needed when ``box``).
    L-inf: ``-eps * sign(d)``, clipped per pixel to ``[-x, 1 - x]`` when ``box`` (still exact: the problem is
    separable). L2: ``-eps * d / ||d||_2``; with ``box`` it is refused (ValueError) where it leaves [0, 1],
    because then the L2 closed form does not hold. Where d = 0 the perturbation is 0.
    """
    _check_eps(eps)
    _check_norm(norm)
    if box and (x is None or x.shape != d.shape):
        fail("x", f"given with d's shape {tuple(d.shape)} when box=True", x, shown=describe(x))
    if norm == "linf":
        if not box:
            return -eps * torch.sign(d)
        lo, hi = -torch.clamp(x, max=eps), torch.clamp(1 - x, max=eps)
        return torch.where(d > 0, lo, torch.where(d < 0, hi, torch.zeros_like(d)))
    length = dual_norm(d, norm="l2")[:, None]
    delta = torch.where(length > 0, -eps * d / length.clamp_min(torch.finfo(d.dtype).tiny), torch.zeros_like(d))
    if box:
        outside = ((x + delta < 0) | (x + delta > 1)).any(dim=1)
        if bool(outside.any()):
            fail(
                "eps",
                "small enough that the L2 worst case x - eps * d / ||d||_2 stays in the box [0, 1]",
                eps,
                shown=f"{eps!r}: it leaves the box for {int(outside.sum())} of {len(d)} samples",
                hint="the L2 closed form does not hold there; use box=False for the unconstrained value, a smaller "
                "eps, or inputs farther from 0 and 1",
            )
    return delta


def worst_case_change(d: Tensor, x: Tensor | None, *, eps: float, norm: Norm, box: bool = True) -> Tensor:
    """``min d . delta`` over the feasible perturbations (<= 0): (N, D) -> (N,). Without the box it is
    ``-eps * ||d||_*`` (Hoelder); see `worst_case_perturbation`."""
    return (d * worst_case_perturbation(d, x, eps=eps, norm=norm, box=box)).sum(dim=1)


def linear_margins(weight: Tensor, bias: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Clean pairwise margins ``z_y - z_j`` of ``z = W x + b``: (N, K), +inf in column y."""
    _check_linear(weight, bias)
    _check_inputs(x, y, weight.shape[0], weight.shape[1])
    z = x.flatten(1) @ weight.T + bias
    m = z.gather(1, y[:, None]) - z
    return m.scatter(1, y[:, None], math.inf)


def linear_worst_case_margins(
    weight: Tensor, bias: Tensor, x: Tensor, y: Tensor, *, eps: float, norm: Norm, box: bool = True
) -> Tensor:
    """Exact worst-case pairwise margins ``min_delta (z_y - z_j)(x + delta)`` of ``z = W x + b``: (N, K), +inf in
    column y. The worst-case (multi-class) margin is the row minimum: min over delta and j commute."""
    _check_eps(eps)
    _check_norm(norm)
    margins = linear_margins(weight, bias, x, y)
    flat = x.flatten(1)
    for j in range(weight.shape[0]):
        other = y != j
        d = weight[y[other]] - weight[j]
        margins[other, j] += worst_case_change(d, flat[other], eps=eps, norm=norm, box=box)
    return margins


# ----------------------------------------------------------------------------------------------------------
# PGD on a pairwise margin (any model)
# ----------------------------------------------------------------------------------------------------------


class PairLogits(nn.Module):
    """The logits ``(z_y, z_j)`` (N, 2) of ``model``, so that an untargeted attack on label 0 with the CW loss
    maximises ``z_j - z_y``: the pairwise worst case of the proposition. ``y``, ``j``: (N,) fixed per sample."""

    def __init__(self, model: nn.Module, y: Tensor, j: Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("index", torch.stack([y, j], dim=1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x).gather(1, self.index)


def pgd_pair_margins(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    j: int | Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    norm: Norm = "linf",
    restarts: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``z_y - z_j`` (N,) at the point PGD (`advlogits.attacks.pgd`, CW loss, random start) finds when it
    minimises that margin within the ``norm`` ball of radius ``eps`` (and the box [0, 1])."""
    j = _targets(j, y)
    pair = PairLogits(model, y, j)
    x_adv = pgd(
        pair,
        x,
        torch.zeros_like(y),
        eps=eps,
        alpha=alpha,
        steps=steps,
        norm=norm,
        restarts=restarts,
        loss="cw",
        generator=generator,
    )
    with torch.no_grad(), eval_mode(model):
        z = pair(x_adv)
    return z[:, 0] - z[:, 1]


def pgd_pairwise_margins(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    num_classes: int,
    eps: float,
    alpha: float,
    steps: int,
    norm: Norm = "linf",
    generator: torch.Generator | None = None,
) -> Tensor:
    """`pgd_pair_margins` against every other class: (N, num_classes), +inf in column y."""
    out = torch.full((len(y), num_classes), math.inf, dtype=x.dtype, device=x.device)
    for j in range(num_classes):
        other = y != j
        if bool(other.any()):
            out[other, j] = pgd_pair_margins(
                model, x[other], y[other], j, eps=eps, alpha=alpha, steps=steps, norm=norm, generator=generator
            )
    return out


# ----------------------------------------------------------------------------------------------------------
# linear models: the PGD check of the closed form
# ----------------------------------------------------------------------------------------------------------


def interior(x: Tensor) -> Tensor:
    """``0.25 + 0.5 x``: images mapped into [0.25, 0.75], where an L2 step of length <= 0.25 stays in the box."""
    return 0.25 + 0.5 * x


def linear_check(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: Norm,
    steps: int | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """PGD against the closed form on a linear model (``model.linear``), in float64 on the CPU.

    PGD takes ``steps`` (default `CHECK_STEPS`) steps of ``eps / 4`` from a random start against every class
    j != y; on a linear margin every step moves towards the optimum, and 8 steps cross the L-inf ball. Returns
    (N, K) tensors ``closed_form``, ``pgd`` (+inf in column y) and ``clean``, and their absolute difference
    ``error`` (0 in column y). The closed form handles the box exactly for L-inf and checks that it is
    inactive for L2 (see `worst_case_perturbation`).
    """
    linear = model.linear
    weight, bias = linear.weight.detach().double().cpu(), linear.bias.detach().double().cpu()
    x, y = x.detach().double().cpu(), y.cpu()
    closed = linear_worst_case_margins(weight, bias, x, y, eps=eps, norm=norm, box=True)
    steps = CHECK_STEPS[norm] if steps is None else steps
    twin = linear_model_from(weight, bias)
    found = pgd_pairwise_margins(
        twin, x, y, num_classes=weight.shape[0], eps=eps, alpha=eps / 4, steps=steps, norm=norm, generator=generator
    )
    finite = torch.isfinite(closed)
    error = torch.where(finite, (found - closed).abs(), torch.zeros_like(closed))
    return {"closed_form": closed, "pgd": found, "clean": linear_margins(weight, bias, x, y), "error": error}


def linear_model_from(weight: Tensor, bias: Tensor) -> nn.Sequential:
    """A module shaped like `advlogits.models.build_model("linear")` with the given ``weight`` (K, D) and
    ``bias`` (K,), in their dtype."""
    _check_linear(weight, bias)
    layer = nn.Linear(weight.shape[1], weight.shape[0], dtype=weight.dtype, device=weight.device)
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return nn.Sequential(OrderedDict(flatten=nn.Flatten(), linear=layer)).eval()


# ----------------------------------------------------------------------------------------------------------
# deep networks: the first-order prediction against PGD, and the last layer
# ----------------------------------------------------------------------------------------------------------


def margin_drops(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    restarts: int = 1,
    generator: torch.Generator | None = None,
    batch_size: int = 250,
) -> dict[str, Tensor]:
    """Per image (CPU tensors, shape (N,)): the margin ``z_y - z_j`` to the clean runner-up j, its first-order
    worst case within the L-inf ball and the box (the proposition applied to the local linearisation,
    ``d = grad_x (z_y - z_j)``), the worst case PGD finds on the same pair, and ``||d||_1``.

    For a linear model the three margins coincide (up to PGD's convergence); for a deep network the gap between
    ``first_order`` and ``pgd`` measures how far it is from linear at the scale eps.
    """
    _check_eps(eps)
    device = model_device(model)
    out: dict[str, list[Tensor]] = {"clean": [], "first_order": [], "pgd": [], "grad_l1": [], "j": []}
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
            xr = xb.clone().requires_grad_(True)
            with torch.enable_grad():
                z = model(xr)
                j = runner_up(z.detach(), yb)
                m = z.gather(1, yb[:, None]).squeeze(1) - z.gather(1, j[:, None]).squeeze(1)
                (grad,) = torch.autograd.grad(m.sum(), xr)
            d = grad.flatten(1)
            first = m.detach() + worst_case_change(d, xb.flatten(1), eps=eps, norm="linf", box=True)
            found = pgd_pair_margins(
                model, xb, yb, j, eps=eps, alpha=alpha, steps=steps, restarts=restarts, generator=generator
            )
            for key, value in (
                ("clean", m.detach()),
                ("first_order", first),
                ("pgd", found),
                ("grad_l1", dual_norm(d, norm="linf")),
                ("j", j),
            ):
                out[key].append(value.cpu())
    return {k: torch.cat(v) for k, v in out.items()}


def gap_gradient_l1(model: nn.Module, x: Tensor, *, batch_size: int = 250) -> Tensor:
    """Per image (N,), float32 on the CPU: ``||grad_x (z_(1) - z_(2))||_1``, the L1 norm of the input gradient of
    the model's own logit gap (top logit minus runner-up, both classes read from the model's clean logits).

    ``eps`` times this number is the first-order drop of the gap under an L-inf attack of radius eps (the
    proposition applied to the local linearisation, without the box); for a linear model it is exactly
    ``||w_(1) - w_(2)||_1``. Its mean times eps is claim C3's penalty P(eps). Computed in eval mode (modes
    restored), in batches on the model's device, in the model's floating dtype (float32 for every model of the book).
    """
    check_images(x)
    check_int("batch_size", batch_size, at_least=1)
    device = model_device(model, fallback=x.device)
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    out: list[Tensor] = [torch.zeros(0)]
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            xr = x[i : i + batch_size].detach().to(device=device, dtype=dtype).requires_grad_(True)
            with torch.enable_grad():
                z = model(xr)
                if z.ndim != 2 or z.shape[1] < 2:
                    fail(
                        "model",
                        "a model with at least 2 classes (the logit gap needs two)",
                        model,
                        shown=f"logits of shape {tuple(z.shape)}",
                    )
                top2 = z.detach().topk(2, dim=1).indices
                gap = z.gather(1, top2[:, :1]) - z.gather(1, top2[:, 1:])
                (grad,) = torch.autograd.grad(gap.sum(), xr)
            out.append(dual_norm(grad.flatten(1), norm="linf").float().cpu())
    return torch.cat(out)


def last_linear(model: nn.Module) -> nn.Linear:
    """The last ``nn.Linear`` registered in ``model`` (the logit layer of every network in this book)."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not layers:
        fail(
            "model", "a network with an nn.Linear layer (its last layer is analysed)", model, shown=type(model).__name__
        )
    return layers[-1]


def penultimate(model: nn.Module, x: Tensor, *, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """The last linear layer's inputs h (N, F) and the model's logits (N, K) on x, both on the CPU."""
    layer = last_linear(model)
    seen: list[Tensor] = []
    handle = layer.register_forward_pre_hook(lambda _module, inputs: seen.append(inputs[0].flatten(1).float().cpu()))
    try:
        logits = predict_logits(model, x, batch_size=batch_size)
    finally:
        handle.remove()
    return torch.cat(seen), logits


def last_layer_summary(model: nn.Module, x: Tensor) -> dict[str, float]:
    """The logit layer ``z = W h + b`` as a linear model on features: mean ``||w_i - w_j||_1`` and ``_2`` over
    class pairs, mean feature norm ``||h||_2``, and the mean feature-space distance from h to the boundary
    between its top two classes, ``(z_(1) - z_(2)) / ||w_(1) - w_(2)||_2``."""
    weight = last_linear(model).weight.detach().float().cpu()
    h, logits = penultimate(model, x)
    top2 = logits.topk(2, dim=1).indices
    direction = dual_norm(weight[top2[:, 0]] - weight[top2[:, 1]], norm="l2")
    return {
        "weight_diff_l1": mean_pairwise_dual_norm(weight, norm="linf"),
        "weight_diff_l2": mean_pairwise_dual_norm(weight, norm="l2"),
        "feature_l2": dual_norm(h, norm="l2").mean().item(),
        "boundary_distance": (logit_gap(logits) / direction).mean().item(),
    }
