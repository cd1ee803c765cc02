"""Chapter 2's analysis (claims C1, C2, C3): worst-case margins of linear models in closed form, their check
with PGD, the first-order comparison for deep networks, and the logit statistics with bootstrap CIs.

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

import dataclasses
import math
import numbers
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch
from torch import Tensor, nn

from .attacks import _eval_mode, pgd
from .data import input_shape, load_dataset
from .experiments import eval_split, predict_logits
from .logits import bootstrap_ci, logit_gap, max_logit, sorted_logits
from .profiles import Profile
from .store import Store
from .train import TrainConfig, train_adversarial, train_standard

Norm = Literal["linf", "l2"]
NORMS: tuple[str, ...] = get_args(Norm)
DUAL = {"linf": 1, "l2": 2}  # the dual norm's order: ||.||_inf <-> ||.||_1, ||.||_2 <-> ||.||_2

# Chapter 2 analyses these RobustBench CIFAR-10 L-inf models at the paper profile when no list is given.
PAPER_ROBUSTBENCH_MODELS: tuple[str, ...] = (
    "Engstrom2019Robustness", "Rice2020Overfitting", "Carmon2019Unlabeled", "Gowal2020Uncovering_28_10_extra")

STATISTICS = {"max logit": max_logit, "logit gap": logit_gap}  # the per-image statistics of claims C1, C2
N_RESAMPLES = 2000  # bootstrap resamples of every confidence interval of the chapter

# The PGD check of the closed form: steps of eps / 4 (8 of them cross the L-inf ball; the L2 iterates approach
# the optimum geometrically), and the L2 check's inputs and radius: images mapped into [0.25, 0.75] and a
# radius 0.25, so that no pixel can leave [0, 1] at the L2 minimiser and the L2 closed form applies.
CHECK_STEPS = {"linf": 20, "l2": 60}
L2_CHECK_EPS = 0.25


# ----------------------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------------------

def _check_eps(eps: object) -> None:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, a radius in [0, 1] pixel units (got {eps!r})")


def _check_norm(norm: object) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {list(NORMS)} (got {norm!r})")


def _check_linear(weight: object, bias: object) -> None:
    if not isinstance(weight, Tensor) or weight.ndim != 2 or weight.shape[0] < 2 or not weight.is_floating_point():
        got = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(f"weight must be a floating-point tensor of shape (K, D) with K >= 2 classes (got {got})")
    if not isinstance(bias, Tensor) or bias.shape != weight.shape[:1]:
        got = tuple(bias.shape) if isinstance(bias, Tensor) else type(bias).__name__
        raise ValueError(f"bias must be a tensor of shape ({weight.shape[0]},), one value per class (got {got})")


def _check_inputs(x: object, y: object, k: int, d: int | None = None) -> None:
    if not isinstance(x, Tensor) or x.ndim < 2 or not x.is_floating_point():
        raise ValueError("x must be a floating-point tensor of shape (N, C, H, W) or (N, D)")
    if d is not None and x[0].numel() != d:
        raise ValueError(f"x must have D={d} features per sample, as weight has (got {x[0].numel()})")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"x must lie in [0, 1] (got min {x.min().item():.4g}, max {x.max().item():.4g})")
    if not isinstance(y, Tensor) or y.ndim != 1 or y.shape[0] != x.shape[0] or y.is_floating_point():
        raise ValueError(f"y must be an integer tensor of shape ({x.shape[0]},), one class index per sample")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= k):
        raise ValueError(f"y must hold class indices in [0, {k}) (got values in [{int(y.min())}, {int(y.max())}])")


def _targets(j: int | Tensor, y: Tensor) -> Tensor:
    """``j`` as an int64 (N,) tensor on y's device, refused where it equals y (a margin needs two classes)."""
    j = torch.full_like(y, j) if isinstance(j, int) else j.to(device=y.device, dtype=torch.long)
    if j.shape != y.shape:
        raise ValueError(f"j must be an int or a tensor of shape {tuple(y.shape)} (got {tuple(j.shape)})")
    if bool((j == y).any()):
        raise ValueError("j must differ from y for every sample: the margin z_y - z_j needs two classes")
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
        raise ValueError(f"x must be given with d's shape {tuple(d.shape)} when box=True")
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
            raise ValueError(
                f"the box [0, 1] is active for the L2 worst case of {int(outside.sum())} of {len(d)} samples: "
                f"x - eps * d / ||d||_2 leaves [0, 1], where the L2 closed form does not hold. Use box=False for "
                f"the unconstrained value, a smaller eps, or inputs farther from 0 and 1.")
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


def linear_worst_case_margins(weight: Tensor, bias: Tensor, x: Tensor, y: Tensor, *, eps: float, norm: Norm,
                              box: bool = True) -> Tensor:
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


def pgd_pair_margins(model: nn.Module, x: Tensor, y: Tensor, j: int | Tensor, *, eps: float, alpha: float,
                     steps: int, norm: Norm = "linf", restarts: int = 1,
                     generator: torch.Generator | None = None) -> Tensor:
    """``z_y - z_j`` (N,) at the point PGD (`advlogits.attacks.pgd`, CW loss, random start) finds when it
    minimises that margin within the ``norm`` ball of radius ``eps`` (and the box [0, 1])."""
    j = _targets(j, y)
    pair = PairLogits(model, y, j)
    x_adv = pgd(pair, x, torch.zeros_like(y), eps=eps, alpha=alpha, steps=steps, norm=norm, restarts=restarts,
                loss="cw", generator=generator)
    with torch.no_grad(), _eval_mode(model):
        z = pair(x_adv)
    return z[:, 0] - z[:, 1]


def pgd_pairwise_margins(model: nn.Module, x: Tensor, y: Tensor, *, num_classes: int, eps: float, alpha: float,
                         steps: int, norm: Norm = "linf", generator: torch.Generator | None = None) -> Tensor:
    """`pgd_pair_margins` against every other class: (N, num_classes), +inf in column y."""
    out = torch.full((len(y), num_classes), math.inf, dtype=x.dtype, device=x.device)
    for j in range(num_classes):
        other = y != j
        if bool(other.any()):
            out[other, j] = pgd_pair_margins(model, x[other], y[other], j, eps=eps, alpha=alpha, steps=steps,
                                             norm=norm, generator=generator)
    return out


# ----------------------------------------------------------------------------------------------------------
# linear models: definition, training through the store, and the PGD check of the closed form
# ----------------------------------------------------------------------------------------------------------

def linear_model(dataset: str, *, num_classes: int = 10) -> nn.Sequential:
    """Multinomial logistic regression on raw pixels: ``Flatten`` then ``Linear(D, K)``; x in [0, 1] -> logits."""
    c, h, w = input_shape(dataset)
    return nn.Sequential(OrderedDict(flatten=nn.Flatten(), linear=nn.Linear(c * h * w, num_classes)))


@dataclasses.dataclass(frozen=True)
class LinearConfig:
    """Everything that determines a trained linear model (its hash names the stored weights)."""

    dataset: str  # "fashion-mnist" or "cifar10"
    eps: float  # L-inf radius of PGD adversarial training, pixel units; 0 = standard training
    alpha: float  # PGD step size during training (0 when eps = 0)
    steps: int  # PGD steps per training batch (0 when eps = 0)
    epochs: int  # passes over the training images
    batch_size: int  # images per SGD step
    lr: float  # peak learning rate (the library's triangular schedule, SGD + Nesterov momentum)
    weight_decay: float  # L2 penalty
    n_train: int | None  # seeded subset of the training split; None = all of it
    seed: int  # initialisation, data order and PGD starts


def linear_config(profile: Profile, *, eps: float) -> LinearConfig:
    """The linear model of ``profile`` at radius ``eps`` (0 = ST), on the eps-sweep budget and with the
    profile's AT recipe (step size scaled with eps, as `Profile.adversarial` does)."""
    _check_eps(eps)
    return LinearConfig(dataset=profile.dataset, eps=float(eps), alpha=profile.alpha * eps / profile.eps,
                        steps=profile.steps if eps > 0 else 0, epochs=profile.sweep_epochs,
                        batch_size=profile.batch_size, lr=profile.lr, weight_decay=profile.weight_decay,
                        n_train=profile.sweep_n_train, seed=profile.seed)


def train_linear(config: LinearConfig, *, device: str | torch.device = "cpu", store: Store | None = None,
                 progress: bool = True) -> nn.Module:
    """The linear model of ``config`` in eval mode on ``device``: from the store, or trained once with the
    library's ST / PGD-AT loops and stored."""
    store = store or Store()

    def compute() -> dict[str, Tensor]:
        torch.manual_seed(config.seed)
        model = linear_model(config.dataset).to(device)
        x, y = load_dataset(config.dataset, "train", n=config.n_train, seed=config.seed)
        common = dict(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                      weight_decay=config.weight_decay, seed=config.seed, progress=progress)
        if config.eps > 0:
            train_adversarial(model, x, y, eps=config.eps, alpha=config.alpha, steps=config.steps, **common)
        else:
            train_standard(model, x, y, **common)
        return dict(model.state_dict())

    state = store.get_or_compute_tensors(config, "linear-model", {}, compute)
    model = linear_model(config.dataset)
    model.load_state_dict(state)
    return model.to(device).eval()


def interior(x: Tensor) -> Tensor:
    """``0.25 + 0.5 x``: images mapped into [0.25, 0.75], where an L2 step of length <= 0.25 stays in the box."""
    return 0.25 + 0.5 * x


def linear_check(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, norm: Norm, steps: int | None = None,
                 generator: torch.Generator | None = None) -> dict[str, Tensor]:
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
    found = pgd_pairwise_margins(twin, x, y, num_classes=weight.shape[0], eps=eps, alpha=eps / 4, steps=steps,
                                 norm=norm, generator=generator)
    finite = torch.isfinite(closed)
    error = torch.where(finite, (found - closed).abs(), torch.zeros_like(closed))
    return {"closed_form": closed, "pgd": found, "clean": linear_margins(weight, bias, x, y), "error": error}


def linear_model_from(weight: Tensor, bias: Tensor) -> nn.Sequential:
    """A `linear_model`-shaped module with the given ``weight`` (K, D) and ``bias`` (K,), in their dtype."""
    _check_linear(weight, bias)
    layer = nn.Linear(weight.shape[1], weight.shape[0], dtype=weight.dtype, device=weight.device)
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return nn.Sequential(OrderedDict(flatten=nn.Flatten(), linear=layer)).eval()


# ----------------------------------------------------------------------------------------------------------
# deep networks: the first-order prediction against PGD, and the last layer
# ----------------------------------------------------------------------------------------------------------

def runner_up(logits: Tensor, y: Tensor) -> Tensor:
    """The class with the largest logit other than y: (N, K), (N,) -> (N,) int64."""
    return logits.scatter(1, y[:, None], -math.inf).argmax(dim=1)


def margin_drops(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, alpha: float, steps: int,
                 restarts: int = 1, generator: torch.Generator | None = None,
                 batch_size: int = 250) -> dict[str, Tensor]:
    """Per image (CPU tensors, shape (N,)): the margin ``z_y - z_j`` to the clean runner-up j, its first-order
    worst case within the L-inf ball and the box (the proposition applied to the local linearisation,
    ``d = grad_x (z_y - z_j)``), the worst case PGD finds on the same pair, and ``||d||_1``.

    For a linear model the three margins coincide (up to PGD's convergence); for a deep network the gap between
    ``first_order`` and ``pgd`` measures how far it is from linear at the scale eps.
    """
    _check_eps(eps)
    device = next(model.parameters()).device
    out: dict[str, list[Tensor]] = {"clean": [], "first_order": [], "pgd": [], "grad_l1": [], "j": []}
    with _eval_mode(model):
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
            xr = xb.clone().requires_grad_(True)
            with torch.enable_grad():
                z = model(xr)
                j = runner_up(z.detach(), yb)
                m = z.gather(1, yb[:, None]).squeeze(1) - z.gather(1, j[:, None]).squeeze(1)
                (grad,) = torch.autograd.grad(m.sum(), xr)
            d = grad.flatten(1)
            first = m.detach() + worst_case_change(d, xb.flatten(1), eps=eps, norm="linf", box=True)
            found = pgd_pair_margins(model, xb, yb, j, eps=eps, alpha=alpha, steps=steps, restarts=restarts,
                                     generator=generator)
            for key, value in (("clean", m.detach()), ("first_order", first), ("pgd", found),
                               ("grad_l1", dual_norm(d, norm="linf")), ("j", j)):
                out[key].append(value.cpu())
    return {k: torch.cat(v) for k, v in out.items()}


def margin_drop_study(profile: Profile, config: TrainConfig, *, store: Store | None = None) -> dict[str, list]:
    """`margin_drops` of the model ``config`` on the profile's evaluation images, with the profile's evaluation
    PGD (eps, eval_alpha, eval_steps, eval_restarts, seeded); stored once as JSON lists."""
    store = store or Store()
    params = {k: getattr(profile, k) for k in ("eps", "eval_alpha", "eval_steps", "eval_restarts", "n_eval",
                                               "seed", "dataset")}

    def compute() -> dict[str, list]:
        model, _ = store.get_or_train(config, device=profile.device)
        x, y = eval_split(profile)
        drops = margin_drops(model, x, y, eps=profile.eps, alpha=profile.eval_alpha, steps=profile.eval_steps,
                             restarts=profile.eval_restarts, generator=torch.Generator().manual_seed(profile.seed))
        return {k: v.tolist() for k, v in drops.items()}

    return store.get_or_compute_json(config, "margin-drops", params, compute)


def drop_summary(drops: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Means of the observed (PGD) and first-order margin drops, their ratio, the fraction of images whose
    PGD drop exceeds the first-order one, and the Pearson correlation of the two drops over images."""
    clean = np.asarray(drops["clean"], dtype=float)
    observed = clean - np.asarray(drops["pgd"], dtype=float)
    predicted = clean - np.asarray(drops["first_order"], dtype=float)
    return {"observed": float(observed.mean()), "predicted": float(predicted.mean()),
            "ratio": float(observed.mean() / predicted.mean()) if predicted.mean() > 0 else math.nan,
            "beyond_first_order": float((observed > predicted).mean()),
            "correlation": float(np.corrcoef(observed, predicted)[0, 1]) if len(clean) > 1 else math.nan,
            "grad_l1": float(np.mean(drops["grad_l1"]))}


def last_linear(model: nn.Module) -> nn.Linear:
    """The last ``nn.Linear`` registered in ``model`` (the logit layer of every network in this book)."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not layers:
        raise ValueError(f"model has no nn.Linear layer; {type(model).__name__} has no last layer to analyse")
    return layers[-1]


@torch.no_grad()  # not inference_mode: callers may combine the results with parameters
def penultimate(model: nn.Module, x: Tensor, *, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """The last linear layer's inputs h (N, F) and the model's logits (N, K) on x, both on the CPU."""
    layer = last_linear(model)
    device = next(model.parameters()).device
    seen: list[Tensor] = []
    handle = layer.register_forward_pre_hook(lambda _module, inputs: seen.append(inputs[0].flatten(1).float().cpu()))
    try:
        with _eval_mode(model):
            logits = torch.cat([model(x[i:i + batch_size].to(device)).float().cpu()
                                for i in range(0, len(x), batch_size)])
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
    return {"weight_diff_l1": mean_pairwise_dual_norm(weight, norm="linf"),
            "weight_diff_l2": mean_pairwise_dual_norm(weight, norm="l2"),
            "feature_l2": dual_norm(h, norm="l2").mean().item(),
            "boundary_distance": (logit_gap(logits) / direction).mean().item()}


# ----------------------------------------------------------------------------------------------------------
# logit statistics with bootstrap CIs (C1, C2) and the eps sweep (C3)
# ----------------------------------------------------------------------------------------------------------

Interval = tuple[float, float, float]  # (estimate, low, high) of a 95% bootstrap CI


def summarise(logits: Tensor, *, n_resamples: int = N_RESAMPLES, seed: int = 0) -> dict[str, Interval]:
    """Mean max logit and mean logit gap of ``logits`` (N, K) with percentile-bootstrap 95% CIs."""
    return {name: bootstrap_ci("mean", f(logits), n_resamples=n_resamples, seed=seed)
            for name, f in STATISTICS.items()}


def compare(logits_a: Tensor, logits_b: Tensor, *, n_resamples: int = N_RESAMPLES, seed: int = 0) -> dict[str, Interval]:
    """``mean(a) - mean(b)`` of each statistic with a paired bootstrap CI (both models on the same images)."""
    if logits_a.shape != logits_b.shape:
        raise ValueError(f"logits_a and logits_b must be the same images' logits, with one shape "
                         f"(got {tuple(logits_a.shape)} and {tuple(logits_b.shape)})")
    return {name: bootstrap_ci("mean_difference", f(logits_a), f(logits_b), n_resamples=n_resamples, seed=seed)
            for name, f in STATISTICS.items()}


def lower_on_average(difference: Interval) -> bool:
    """The C1/C2 criterion on ``mean(AT) - mean(ST)``: negative, with its CI excluding 0 (its high end < 0)."""
    estimate, _, high = difference
    return estimate < 0 and high < 0


def sorted_profile(logits: Tensor, *, n_resamples: int = N_RESAMPLES, seed: int = 0) -> dict[str, np.ndarray]:
    """Mean of the k-th largest logit for k = 1..K, with bootstrap 95% CIs: arrays ``mean``, ``low``, ``high`` (K,).

    One seed for every rank, so every rank's interval is computed on the same resamples of the images."""
    ranked = sorted_logits(logits)
    rows = np.array([bootstrap_ci("mean", ranked[:, k], n_resamples=n_resamples, seed=seed)
                     for k in range(ranked.shape[1])])
    return {"mean": rows[:, 0], "low": rows[:, 1], "high": rows[:, 2]}


def interval_table(rows: Mapping[str, Mapping[str, Interval]], *, digits: int = 2):
    """A table (pandas DataFrame) with one row per entry of ``rows`` and cells "estimate [low, high]"."""
    import pandas as pd

    return pd.DataFrame({name: {stat: f"{e:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
                                for stat, (e, lo, hi) in cols.items()} for name, cols in rows.items()}).T


def strictly_decreasing(values: Sequence[float]) -> bool:
    """True when each value is strictly below the one before (at least two finite values needed)."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or len(arr) < 2 or not np.isfinite(arr).all():
        raise ValueError(f"values must be at least two finite numbers in sweep order (got {list(values)!r})")
    return bool((np.diff(arr) < 0).all())


def sweep_configs(profile: Profile) -> dict[float, TrainConfig]:
    """The eps-sweep models by radius: ``profile.sweep(eps)`` for each eps in ``profile.eps_sweep``, plus an ST
    model on the same reduced budget at eps = 0 (a reference point; claim C3 is judged on the AT models)."""
    standard = dataclasses.replace(profile.standard(), n_train=profile.sweep_n_train, epochs=profile.sweep_epochs)
    return {0.0: standard, **{float(eps): profile.sweep(eps) for eps in profile.eps_sweep}}


# ----------------------------------------------------------------------------------------------------------
# RobustBench models (paper profile)
# ----------------------------------------------------------------------------------------------------------

def robustbench_models(profile: Profile, requested: Sequence[str] | None) -> tuple[str, ...]:
    """The RobustBench CIFAR-10 L-inf models to analyse: ``requested``, or when it is None the paper profile's
    default `PAPER_ROBUSTBENCH_MODELS` (none at other profiles). Refused for a non-CIFAR-10 profile."""
    if requested is None:
        return PAPER_ROBUSTBENCH_MODELS if profile.name == "paper" else ()
    if isinstance(requested, str) or not all(isinstance(n, str) for n in requested):
        raise ValueError(f"robustbench_models must be a list of RobustBench model names, e.g. "
                         f"{list(PAPER_ROBUSTBENCH_MODELS[:1])} (got {requested!r})")
    if requested and profile.dataset != "cifar10":
        raise ValueError(f"robustbench_models are CIFAR-10 models but profile {profile.name!r} uses "
                         f"{profile.dataset}; pass robustbench_models=[] or use the paper profile")
    return tuple(requested)


def robustbench_logits(profile: Profile, name: str, *, model_dir: str | Path, store: Store | None = None) -> Tensor:
    """Logits (n_eval, 10) of RobustBench model ``name`` (CIFAR-10, L-inf) on the profile's evaluation images,
    stored once. The checkpoint is read from (or downloaded into) ``model_dir`` by `models.load_robustbench`."""
    from .models import load_robustbench

    robustbench_models(profile, [name])
    store = store or Store()
    key = {"robustbench": name, "dataset": "cifar10", "threat_model": "Linf"}

    def compute() -> dict[str, Tensor]:
        model = load_robustbench(name, dataset="cifar10", threat_model="Linf", model_dir=model_dir)
        return {"logits": predict_logits(model.to(profile.device), eval_split(profile)[0])}

    params = {"dataset": profile.dataset, "n_eval": profile.n_eval, "seed": profile.seed}
    return store.get_or_compute_tensors(key, "test-logits", params, compute)["logits"]
