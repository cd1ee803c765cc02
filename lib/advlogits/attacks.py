"""Adversarial attacks and robust accuracy: FGSM, PGD (L-inf / L2), and AutoAttack.

Threat model: a perturbation of L-inf (or L2) norm at most ``eps`` in pixel space, images in [0, 1];
normalisation lives inside the model, so ``eps`` is in pixel units (0.1 = 10% of the intensity range).
PGD follows Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks" (ICLR 2018),
with the vocabulary of torchattacks: ``eps, alpha, steps, random_start``. Attacks take input gradients
with ``torch.autograd.grad`` (parameters' ``.grad`` are never touched) and run the model in eval mode,
restoring every submodule's train/eval flag afterwards.

Shapes: ``x`` is (N, C, H, W) (any (N, ...) works) with values in [0, 1], ``y`` is int64 (N,), and the
model maps ``x`` to logits (N, K).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from ._compat import import_autoattack
from .accel import model_device, to_device
from .checks import check_bool, check_choice, check_images, check_int, check_number, describe, fail

Norm = Literal["linf", "l2"]
Loss = Literal["ce", "cw"]
AttackName = Literal["none", "fgsm", "pgd"]
AANorm = Literal["Linf", "L2"]
AAVersion = Literal["standard", "fast"]

_NORM_TINY = 1e-12  # guards the L2 normalisations against division by zero
_AA_FAST_ATTACKS = ("apgd-ce", "apgd-t")  # the book's protocol: AutoAttack means APGD-CE + APGD-T at least
_AA_STANDARD_ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square")  # AutoAttack's standard version (RobustBench)
_AA_MAX_TARGETS = 9  # AutoAttack's standard number of target classes for APGD-T and FAB-T
_AA_MIN_CLASSES = 4  # the targeted DLR loss reads the 4th-largest logit


# ----------------------------------------------------------------------------------------------------
# validation (always before any compute)


def _check_data(x: object, y: object) -> None:
    """Check that x is a float (N, ...) tensor in [0, 1] and y an integer (N,) tensor on x's device."""
    check_images(x)
    if not isinstance(y, Tensor) or y.dim() != 1 or y.is_floating_point() or y.is_complex():
        fail("y", "an integer tensor of shape (N,) holding class indices", y, shown=describe(y))
    if y.device != x.device:
        fail("y", f"on x's device ({x.device})", y, shown=str(y.device), hint="move both with .to(device)")
    if y.shape[0] != x.shape[0]:
        fail("y", f"one label per row of x ({x.shape[0]} samples)", y, shown=f"{y.shape[0]} labels")


def _check_pgd_args(
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    norm: str,
    restarts: int,
    loss: str,
    generator: torch.Generator | None,
    early_stop: bool = False,
) -> None:
    check_number("eps", eps, at_least=0)
    check_bool("early_stop", early_stop)
    check_number("alpha", alpha, above=0)
    check_int("steps", steps, at_least=1)
    check_int("restarts", restarts, at_least=1)
    check_choice("norm", norm, get_args(Norm))
    check_choice("loss", loss, get_args(Loss))
    if generator is not None and (not isinstance(generator, torch.Generator) or generator.device.type != "cpu"):
        fail(
            "generator",
            "a CPU torch.Generator or None",
            generator,
            hint="random starts are drawn on the CPU so that a seed gives the same x_adv on every device",
        )
    _check_data(x, y)


# ----------------------------------------------------------------------------------------------------
# the model in eval mode, and batched inference


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode; restore each one's own train/eval flag on exit."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def predict_logits(model: nn.Module, x: Tensor, *, batch_size: int = 1000) -> Tensor:
    """Logits (N, K) of ``model`` on clean ``x`` (N, C, H, W), in eval mode, in batches on the model's device.

    Returned in float32 on the CPU; the model's train/eval modes are restored. The one batched inference loop
    of the library: accuracies, stored logits and feature hooks all go through it.

    Examples::

        logits = predict_logits(model, x)
        accuracy = (logits.argmax(1) == y).float().mean()
    """
    check_int("batch_size", batch_size, at_least=1)
    device = model_device(model, fallback=x.device)
    with eval_mode(model), torch.no_grad():  # not inference_mode: callers may combine the logits with parameters
        starts = range(0, len(x), batch_size) if len(x) else (0,)  # an empty x still gives (0, K) logits
        out = [model(to_device(x[i : i + batch_size], device)).float().cpu() for i in starts]
    return torch.cat(out)


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
    followed exactly the plain run's path) and much cheaper against models that most images fool quickly.
    """
    _check_pgd_args(
        x,
        y,
        eps=eps,
        alpha=alpha,
        steps=steps,
        norm=norm,
        restarts=restarts,
        loss=loss,
        generator=generator,
        early_stop=early_stop,
    )
    if eps == 0:
        return x.detach().clone()

    x, y = x.detach(), y.detach()
    run = dict(
        eps=eps, alpha=alpha, steps=steps, norm=norm, random_start=random_start, loss=loss, early_stop=early_stop
    )
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
    """
    check_number("eps", eps, at_least=0)
    _check_data(x, y)
    if eps == 0:
        return x.detach().clone()
    return pgd(model, x, y, eps=eps, alpha=eps, steps=1, norm="linf", random_start=False, loss="ce")


_ATTACKS: dict[str, Callable[..., Tensor]] = {"fgsm": fgsm, "pgd": pgd}


def _resolve_attack(
    model: nn.Module, x: Tensor, y: Tensor, attack: object, kw: dict[str, object]
) -> Callable[..., Tensor] | None:
    """The attack function for ``robust_accuracy`` (None for clean accuracy), its ``kw`` validated."""
    if callable(attack):
        return attack
    check_choice("attack", attack, get_args(AttackName), hint="or pass a callable attack(model, x, y, **kw)")
    if attack == "none":
        if kw:
            fail("kw", "empty for attack='none' (clean accuracy takes no attack hyper-parameters)", sorted(kw))
        return None
    attack_fn = _ATTACKS[attack]
    try:
        bound = inspect.signature(attack_fn).bind(model, x, y, **kw)
    except TypeError as err:
        raise ValueError(f"kw must be hyper-parameters of attack={attack!r} (got {sorted(kw)}); {err}") from err
    bound.apply_defaults()
    args = {k: v for k, v in bound.arguments.items() if k not in ("model", "random_start")}
    if attack == "pgd":
        _check_pgd_args(**args)
    else:
        check_number("eps", args["eps"], at_least=0)
    return attack_fn


# ----------------------------------------------------------------------------------------------------
# accuracy under attack


def robust_accuracy(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    attack: AttackName | Callable[..., Tensor],
    batch_size: int,
    **kw: object,
) -> float:
    """Fraction in [0, 1] of samples the model still classifies correctly after ``attack``.

    ``attack``: "none" (clean accuracy), "fgsm" or "pgd" (``kw`` are their hyper-parameters, e.g.
    eps, alpha, steps), or a callable ``attack(model, xb, yb, **kw) -> x_adv``. Runs in batches of
    ``batch_size`` on the model's device; a ``generator`` in ``kw`` is shared by all batches, so a seeded
    generator gives a deterministic result. The model's train/eval modes are restored afterwards.
    """
    correct = robust_correct(model, x, y, attack=attack, batch_size=batch_size, **kw)
    return correct.sum().item() / correct.numel()


def robust_correct(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    attack: AttackName | Callable[..., Tensor],
    batch_size: int,
    **kw: object,
) -> Tensor:
    """Per-sample robustness (N,) bool on the CPU: `robust_accuracy`'s arguments, one verdict per sample."""
    check_int("batch_size", batch_size, at_least=1)
    attack_fn = _resolve_attack(model, x, y, attack, kw)
    _check_data(x, y)
    if x.shape[0] == 0:
        fail("x", "at least one sample", 0, shown="N=0")

    device = model_device(model, fallback=x.device)
    out = []
    name = attack if isinstance(attack, str) else getattr(attack, "__name__", "attack")
    starts = range(0, x.shape[0], batch_size)
    with eval_mode(model):
        for start in progress_bar(starts, desc=f"{name} attack", unit="batch", active=attack_fn is not None):
            xb = x[start : start + batch_size].to(device)
            yb = y[start : start + batch_size].to(device)
            if attack_fn is not None:
                xb = attack_fn(model, xb, yb, **kw)
                model.eval()  # a user callable may have switched modes; predictions are made in eval mode
            with torch.inference_mode():
                out.append((model(xb).argmax(dim=1) == yb).cpu())
    return torch.cat(out)


def autoattack_accuracy(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: AANorm = "Linf",
    version: AAVersion = "standard",
    batch_size: int = 500,
    seed: int = 0,
) -> float:
    """Robust accuracy in [0, 1] under AutoAttack: the mean of `autoattack_correct` (same arguments)."""
    correct = autoattack_correct(model, x, y, eps=eps, norm=norm, version=version, batch_size=batch_size, seed=seed)
    return correct.sum().item() / correct.numel()


def autoattack_correct(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: AANorm = "Linf",
    version: AAVersion = "standard",
    batch_size: int = 500,
    seed: int = 0,
) -> Tensor:
    """Per-image robustness (N,) bool on the CPU under AutoAttack (Croce & Hein, ICML 2020), ``pyautoattack``.

    version "standard": APGD-CE, APGD-T, FAB-T and Square (the RobustBench protocol); "fast": APGD-CE
    and APGD-T only, with the standard settings (100 iterations, one restart, up to 9 target classes).
    Runs on the model's device with AutoAttack's ``seed``; its logging is silenced, the global RNG state
    (which AutoAttack reseeds) and the model's train/eval modes are restored. x: (N, C, H, W) in [0, 1];
    y: int64 (N,). The model needs at least 4 classes (the targeted DLR loss reads the 4th logit). It is
    `autoattack_attacks_correct` with the version's attacks.
    """
    check_number("eps", eps, at_least=0)
    check_choice("norm", norm, get_args(AANorm))
    check_choice("version", version, get_args(AAVersion))
    check_int("batch_size", batch_size, at_least=1)
    check_int("seed", seed)
    _check_data(x, y)
    if x.shape[0] == 0:
        fail("x", "at least one sample", 0, shown="N=0")
    if eps > 0:
        with eval_mode(model), torch.inference_mode():
            n_classes = model(x[:1].to(model_device(model, fallback=x.device))).shape[1]
        if n_classes < _AA_MIN_CLASSES:
            fail(
                "model",
                f"a model with at least {_AA_MIN_CLASSES} classes for AutoAttack",
                n_classes,
                shown=f"K={n_classes}",
                hint="AutoAttack's targeted DLR loss is undefined below that; use "
                "robust_accuracy(attack='pgd') instead",
            )
    attacks = _AA_STANDARD_ATTACKS if version == "standard" else _AA_FAST_ATTACKS
    return autoattack_attacks_correct(
        model, x, y, attacks=attacks, eps=eps, norm=norm, batch_size=batch_size, seed=seed
    )


AA_ATTACKS: tuple[str, ...] = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")  # AutoAttack's names
_AA_ATTACK_MIN_CLASSES = {"apgd-dlr": 3, "apgd-t": _AA_MIN_CLASSES}  # the DLR losses read the 3rd / 4th logit
AA_SQUARE_QUERIES = 5000  # AutoAttack's standard number of Square queries


def autoattack_attacks_correct(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    attacks: list[str] | tuple[str, ...],
    eps: float,
    norm: AANorm = "Linf",
    square_queries: int = AA_SQUARE_QUERIES,
    n_targets: int | None = None,
    batch_size: int = 500,
    seed: int = 0,
) -> Tensor:
    """Per-image robustness (N,) bool on the CPU under the AutoAttack ``attacks`` chosen, run in that order, each on
    the images the previous ones left standing (``pyautoattack``'s "custom" version).

    ``attacks``: names from `AA_ATTACKS`, e.g. ``["square"]`` for the black-box Square attack alone, which makes
    ``square_queries`` queries per image (p_init 0.8, one restart, AutoAttack's schedule). The other attacks keep
    `autoattack_correct`'s standard settings (100 iterations, one restart, up to 9 target classes), so
    ``attacks=["apgd-ce", "apgd-t"]`` is its version "fast". ``n_targets`` (default: AutoAttack's 9, or K - 1
    below 10 classes) sets how many target classes APGD-T and FAB-T try. Seeding, silenced logging, the restored
    global RNG state and train/eval modes are as in `autoattack_correct`. APGD-DLR needs 3 classes and APGD-T 4.
    """
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
    check_choice("norm", norm, get_args(AANorm))
    check_int("square_queries", square_queries, at_least=1)
    if n_targets is not None:
        check_int("n_targets", n_targets, at_least=1)
    check_int("batch_size", batch_size, at_least=1)
    check_int("seed", seed)
    _check_data(x, y)
    if x.shape[0] == 0:
        fail("x", "at least one sample", 0, shown="N=0")
    device = model_device(model, fallback=x.device)
    if eps == 0:
        return robust_correct(model, x, y, attack="none", batch_size=batch_size)

    with eval_mode(model):
        with torch.inference_mode():
            n_classes = model(x[:1].to(device)).shape[1]
        for name in attacks:
            needed = _AA_ATTACK_MIN_CLASSES.get(name, 2)
            if n_classes < needed:
                fail(
                    "model",
                    f"a model with at least {needed} classes for AutoAttack's {name}",
                    n_classes,
                    shown=f"K={n_classes}",
                    hint="its DLR loss is undefined below that",
                )
        n_targets = min(_AA_MAX_TARGETS if n_targets is None else n_targets, n_classes - 1)

        aa_module = import_autoattack()
        adversary = aa_module.AutoAttack(
            model, attacks=list(attacks), norm=norm, eps=eps, version="custom", device=device, seed=seed
        )
        adversary.verbose = False
        adversary.apgd.n_restarts = 1
        adversary.apgd_targeted.n_restarts = 1
        adversary.apgd_targeted.n_target_classes = n_targets
        adversary.fab.n_restarts = 1
        adversary.fab.n_target_classes = n_targets
        adversary.square.n_queries = square_queries

        fork = dict(devices=[]) if device.type == "cpu" else dict(device_type=device.type)
        chunks = []
        with torch.random.fork_rng(**fork), _silenced_logger(adversary.logger):
            # one AutoAttack run per batch (each seeded alike), so that a progress bar can follow the batches
            for start in progress_bar(range(0, x.shape[0], batch_size), desc="AutoAttack", unit="batch"):
                xb, yb = x[start : start + batch_size], y[start : start + batch_size]
                chunks.append(adversary.run_standard_evaluation(xb, yb, batch_size=batch_size)[0].cpu())
    return robust_correct(model, torch.cat(chunks), y, attack="none", batch_size=batch_size)


def progress_bar(items: Sequence[int], *, desc: str, unit: str, active: bool = True) -> Iterable[int]:
    """``items`` with a tqdm progress bar on a terminal (none in notebooks, logs or pipes, and none when not
    ``active`` or when there is a single item)."""
    if not active or len(items) <= 1:
        return items
    return tqdm(items, desc=desc, unit=unit, leave=False, disable=None)


@contextlib.contextmanager
def _silenced_logger(logger: logging.Logger) -> Iterator[None]:
    """Disable a ``logging.Logger`` (AutoAttack's progress and sanity-check messages) for the block."""
    previous = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = previous
