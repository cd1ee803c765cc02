"""Tests for advlogits.attacks (PGD and FGSM): closed forms on linear models, invariants, early stopping, and
torchattacks as a reference."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advlogits.attacks import fgsm, pgd

from helpers import (
    BatchNormDropoutNet,
    CountingModel,
    accuracy_by_hand,
    assert_same_state,
    linear_two_class,
    model_state,
)

TORCHATTACKS_MISSING = (
    "torchattacks, the independent PGD reference, is not installed: `make setup` installs it "
    "(pip install --no-deps torchattacks==3.5.1)"
)

# ----------------------------------------------------------------------------------------------------
# losses and margins computed by hand (the images and the tiny CNN are conftest.py's fixtures)


def _ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


def _margin(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """z_y - max_{j != y} z_j per sample (N,): negative means misclassified."""
    with torch.no_grad():
        z = model(x)
    z_y = z.gather(1, y[:, None]).squeeze(1)
    return z_y - z.scatter(1, y[:, None], float("-inf")).amax(dim=1)


# ----------------------------------------------------------------------------------------------------
# constraints and loss


@pytest.mark.parametrize(
    ("norm", "eps"), [("linf", 0.03), ("linf", 0.1), ("linf", 0.3), ("l2", 0.3), ("l2", 1.0), ("l2", 3.0)]
)
def test_pgd_stays_in_eps_ball_and_box(cnn, test_data, norm, eps):
    x, y = test_data[0][:200], test_data[1][:200]
    gen = torch.Generator().manual_seed(0)
    x_adv = pgd(cnn, x, y, eps=eps, alpha=eps / 4, steps=10, norm=norm, generator=gen)

    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and x_adv.device == x.device
    assert not x_adv.requires_grad
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(dim=1) if norm == "linf" else delta.norm(dim=1)
    assert (size <= eps + 1e-6).all(), size.max()
    # the attack uses its budget (so the check above is not vacuous): most samples get near the boundary
    # (not always onto it: clamping to [0, 1] after the projection can shorten an L2 step)
    assert (size >= 0.9 * eps).double().mean() > 0.9


@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.05), ("l2", 1.0)])
@pytest.mark.parametrize("random_start", [True, False])
def test_pgd_raises_the_loss_of_every_sample(cnn, test_data, norm, eps, random_start):
    x, y = test_data
    gen = torch.Generator().manual_seed(0)
    x_adv = pgd(cnn, x, y, eps=eps, alpha=eps / 4, steps=10, norm=norm, random_start=random_start, generator=gen)
    clean, adv = _ce(cnn, x, y), _ce(cnn, x_adv, y)
    assert (adv >= clean).all()
    assert adv.mean() > clean.mean() + 0.2


def test_eps_zero_returns_a_copy_of_x(cnn, test_data):
    x, y = test_data[0][:8], test_data[1][:8]
    for x_adv in (pgd(cnn, x, y, eps=0.0, alpha=0.1, steps=3), fgsm(cnn, x, y, eps=0.0)):
        assert torch.equal(x_adv, x) and x_adv.data_ptr() != x.data_ptr()


# ----------------------------------------------------------------------------------------------------
# side effects: model modes, parameter gradients, requires_grad, global RNG


def mixed_mode_model() -> nn.Module:
    """A BatchNorm-and-Dropout model in mixed modes (restored module by module), one frozen parameter and one
    parameter holding a gradient."""
    torch.manual_seed(0)
    model = BatchNormDropoutNet().train()
    model.head.eval()
    model.features[0].bias.requires_grad_(False)
    model.head[1].weight.grad = torch.full_like(model.head[1].weight, 0.5)
    return model


def test_attacks_restore_modes_and_leave_parameters_alone(test_data):
    """Modes, requires_grad, gradients and (in eval mode during the attack) BatchNorm statistics as they were."""
    x, y = test_data[0][:10], test_data[1][:10]
    model = mixed_mode_model()
    before = model_state(model)
    gen = torch.Generator().manual_seed(0)
    pgd(model, x, y, eps=0.1, alpha=0.03, steps=3, generator=gen)
    pgd(model, x, y, eps=1.0, alpha=0.3, steps=3, norm="l2", loss="cw", restarts=2, generator=gen)
    pgd(model, x, y, eps=0.1, alpha=0.03, steps=3, early_stop=True, generator=gen)
    fgsm(model, x, y, eps=0.1)
    assert_same_state(before, model_state(model))


def test_attack_runs_in_eval_mode(test_data):
    """In train mode Dropout makes the logits random; in eval mode the attack is deterministic."""
    x, y = test_data[0][:10], test_data[1][:10]
    torch.manual_seed(0)
    model = BatchNormDropoutNet().train()
    runs = [
        pgd(model, x, y, eps=0.1, alpha=0.03, steps=5, generator=torch.Generator().manual_seed(0)) for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])
    assert model.training


def test_pgd_works_inside_no_grad(cnn, test_data):
    x, y = test_data[0][:20], test_data[1][:20]
    expected = pgd(cnn, x, y, eps=0.1, alpha=0.03, steps=3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = pgd(cnn, x, y, eps=0.1, alpha=0.03, steps=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(got, expected)
    assert not torch.equal(got, x)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_generator_seed_decides_the_random_start(cnn, test_data, norm):
    x, y = test_data[0][:50], test_data[1][:50]
    kw = dict(eps=0.1 if norm == "linf" else 1.0, alpha=0.02, steps=2, norm=norm)
    rng_before = torch.get_rng_state()
    a = pgd(cnn, x, y, **kw, generator=torch.Generator().manual_seed(7))
    b = pgd(cnn, x, y, **kw, generator=torch.Generator().manual_seed(7))
    c = pgd(cnn, x, y, **kw, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), rng_before)  # an explicit generator leaves the global RNG alone


def test_without_generator_the_global_rng_is_used(cnn, test_data):
    x, y = test_data[0][:50], test_data[1][:50]
    torch.manual_seed(3)
    a = pgd(cnn, x, y, eps=0.1, alpha=0.02, steps=2)
    torch.manual_seed(3)
    b = pgd(cnn, x, y, eps=0.1, alpha=0.02, steps=2)
    torch.manual_seed(4)
    c = pgd(cnn, x, y, eps=0.1, alpha=0.02, steps=2)
    assert torch.equal(a, b) and not torch.equal(a, c)


# ----------------------------------------------------------------------------------------------------
# closed form: 2-class linear model, worst-case margin = clean margin - eps * dual norm of (w_y - w_other)


@pytest.mark.parametrize("loss", ["ce", "cw"])
@pytest.mark.parametrize(("norm", "dual_p", "alpha", "steps"), [("linf", 1, 0.03, 10), ("l2", 2, 0.05, 60)])
def test_linear_two_class_worst_case_margin(norm, dual_p, alpha, steps, loss):
    model = linear_two_class()
    gen = torch.Generator().manual_seed(0)
    x = 0.3 + 0.4 * torch.rand(64, 3, 4, 4, generator=gen, dtype=torch.float64)  # far from the box [0, 1]
    y = torch.randint(0, 2, (64,), generator=gen)
    eps = 0.1

    x_adv = pgd(model, x, y, eps=eps, alpha=alpha, steps=steps, norm=norm, loss=loss, generator=gen)

    w = model[1].weight.detach()
    dual = torch.linalg.vector_norm(w[y] - w[1 - y], ord=dual_p, dim=1)
    expected = _margin(model, x, y) - eps * dual
    assert x_adv.dtype == torch.float64
    assert (x_adv > 0.0).all() and (x_adv < 1.0).all()  # the box was never active
    torch.testing.assert_close(_margin(model, x_adv, y), expected, atol=1e-4, rtol=0)


# ----------------------------------------------------------------------------------------------------
# restarts, CW loss, FGSM


def test_restarts_keep_each_samples_worst_case(cnn, test_data):
    """restarts=3 equals picking, per sample, the worst of 3 single runs drawn from the same generator."""
    x, y = test_data[0][:300], test_data[1][:300]
    kw = dict(eps=0.05, alpha=0.02, steps=2)
    gen = torch.Generator().manual_seed(11)
    singles = torch.stack([pgd(cnn, x, y, **kw, generator=gen) for _ in range(3)])  # (3, N, 1, 28, 28)
    combined = pgd(cnn, x, y, **kw, restarts=3, generator=torch.Generator().manual_seed(11))

    fooled = torch.stack([_margin(cnn, s, y) < 0 for s in singles])  # (3, N)
    losses = torch.stack([_ce(cnn, s, y) for s in singles])
    score = losses.double() + 1e6 * fooled  # misclassified first, then the highest loss (float64: no ties)
    best = score.argmax(dim=0)
    assert len(set(best.tolist())) == 3  # every restart wins somewhere, so the selection is exercised
    expected = singles[best, torch.arange(len(y))]
    torch.testing.assert_close(combined, expected, atol=0, rtol=0)

    combined_loss, combined_fooled = _ce(cnn, combined, y), _margin(cnn, combined, y) < 0
    assert (combined_fooled >= fooled.any(dim=0)).all()
    unfooled = ~fooled.any(dim=0)
    assert (combined_loss[unfooled] >= losses[:, unfooled].amax(dim=0)).all()
    assert accuracy_by_hand(cnn, combined, y) <= accuracy_by_hand(cnn, singles[0], y)


def test_cw_loss_reduces_margin_and_accuracy(cnn, test_data):
    x, y = test_data
    x_adv = pgd(cnn, x, y, eps=0.05, alpha=0.0125, steps=20, loss="cw", generator=torch.Generator().manual_seed(0))
    clean_margin, adv_margin = _margin(cnn, x, y), _margin(cnn, x_adv, y)
    assert (adv_margin <= clean_margin + 1e-5).all()
    assert adv_margin.mean() < clean_margin.mean() - 1.0
    clean_acc, cw_acc = accuracy_by_hand(cnn, x, y), accuracy_by_hand(cnn, x_adv, y)
    assert cw_acc < clean_acc - 0.1


def test_fgsm_is_one_pgd_step_without_random_start(cnn, test_data):
    x, y = test_data
    x_fgsm = fgsm(cnn, x, y, eps=0.05)
    assert torch.equal(x_fgsm, pgd(cnn, x, y, eps=0.05, alpha=0.05, steps=1, random_start=False))
    # independent of pgd: x + eps * sign(d CE / dx), clamped to [0, 1]
    x_req = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(cnn(x_req), y, reduction="sum"), x_req)
    torch.testing.assert_close(x_fgsm, (x + 0.05 * grad.sign()).clamp(0, 1), atol=1e-7, rtol=0)


# ----------------------------------------------------------------------------------------------------
# independent reference: torchattacks.PGD


@pytest.mark.parametrize("random_start", [True, False])
def test_pgd_accuracy_matches_torchattacks(cnn, test_data, random_start):
    torchattacks = pytest.importorskip("torchattacks", reason=TORCHATTACKS_MISSING)
    x, y = test_data
    eps, alpha, steps = 0.05, 0.0125, 20
    gen = torch.Generator().manual_seed(0)
    run = dict(eps=eps, alpha=alpha, steps=steps, random_start=random_start, generator=gen)
    x_adv = torch.cat([pgd(cnn, x[i : i + 250], y[i : i + 250], **run) for i in range(0, len(x), 250)])
    ours = accuracy_by_hand(cnn, x_adv, y)
    torch.manual_seed(0)
    reference = torchattacks.PGD(cnn, eps=eps, alpha=alpha, steps=steps, random_start=random_start)
    theirs = accuracy_by_hand(cnn, reference(x, y), y)

    clean = accuracy_by_hand(cnn, x, y)
    assert 0.2 < theirs < clean - 0.1  # a meaningful comparison: neither ~0 nor ~clean
    assert abs(ours - theirs) <= (0.01 if random_start else 0.002)


# ----------------------------------------------------------------------------------------------------
# bad input: ValueError naming the parameter, raised before any compute


_X = torch.full((4, 1, 4, 4), 0.5)
_Y = torch.zeros(4, dtype=torch.int64)
_PGD = dict(eps=0.1, alpha=0.01, steps=2)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m: pgd(m, _X, _Y, **{**_PGD, "eps": -0.1}), r"eps must be a finite number >= 0 \(got -0.1\)"),
        (lambda m: pgd(m, _X, _Y, **{**_PGD, "eps": float("nan")}), r"eps must be a finite number >= 0"),
        (lambda m: pgd(m, _X, _Y, **{**_PGD, "alpha": 0.0}), r"alpha must be a finite number > 0 \(got 0.0\)"),
        (lambda m: pgd(m, _X, _Y, **{**_PGD, "alpha": -1.0}), r"alpha must be a finite number > 0"),
        (lambda m: pgd(m, _X, _Y, **{**_PGD, "steps": 0}), r"steps must be an integer >= 1 \(got 0\)"),
        (lambda m: pgd(m, _X, _Y, **_PGD, restarts=0), r"restarts must be an integer >= 1 \(got 0\)"),
        (lambda m: pgd(m, _X, _Y, **_PGD, norm="l3"), r"norm must be one of 'linf', 'l2' \(got 'l3'\)"),
        (lambda m: pgd(m, _X, _Y, **_PGD, loss="foo"), r"loss must be one of 'ce', 'cw' \(got 'foo'\)"),
        (lambda m: pgd(m, _X, _Y, **_PGD, generator=42), r"generator must be a CPU torch.Generator or None \(got 42\)"),
        (lambda m: pgd(m, _X + 0.6, _Y, **_PGD), r"x must be in \[0, 1\] \(got min 1\.1, max 1\.1\)"),
        (lambda m: pgd(m, _X - 0.6, _Y, **_PGD), r"x must be in \[0, 1\] \(got min -0\.1, max -0\.1\)"),
        (lambda m: pgd(m, _X, _Y[:3], **_PGD), r"y must be one label per row of x \(4 samples\) \(got 3 labels\)"),
        (
            lambda m: pgd(m, _X, _Y.float(), **_PGD),
            r"y must be an integer tensor of shape \(N,\) holding class "
            r"indices \(got torch.float32 tensor of shape \(4,\)\)",
        ),
        (lambda m: pgd(m, _X, _Y.to("meta"), **_PGD), r"y must be on x's device \(cpu\) \(got meta\)"),
        (
            lambda m: pgd(m, _X.long(), _Y, **_PGD),
            r"x must be a floating-point tensor of shape \(N, C, H, W\) "
            r"\(got torch.int64 tensor",
        ),
        (lambda m: pgd(m, _X, _Y, **{**_PGD, "eps": True}), r"eps must be a finite number >= 0 \(got True\)"),
        (lambda m: pgd(m, _X, _Y, **{**_PGD, "steps": 2.0}), r"steps must be an integer >= 1 \(got 2.0\)"),
        (
            lambda m: pgd(m, _X, _Y, **{**_PGD, "alpha": float("inf")}),
            r"alpha must be a finite number > 0 "
            r"\(got inf\)",
        ),
        (lambda m: fgsm(m, _X, _Y, eps=-0.1), r"eps must be a finite number >= 0 \(got -0.1\)"),
        (lambda m: fgsm(m, _X, _Y[:2], eps=0.1), r"y must be one label per row of x \(4 samples\) \(got 2 labels\)"),
    ],
)
def test_bad_input_raises_before_compute(call, match):
    model = CountingModel()
    with pytest.raises(ValueError, match=match):
        call(model)
    assert model.calls == 0


# ----------------------------------------------------------------------------------------------------
# early stopping (the book's evaluation attack)


@pytest.mark.parametrize("norm,eps", [("linf", 0.05), ("l2", 1.0)])
def test_early_stop_is_never_weaker_and_a_survivor_followed_the_plain_path(norm, eps, cnn, test_data):
    """In float64 a survivor's image matches the plain run's to rounding (a smaller batch may round differently)."""
    model = copy.deepcopy(cnn).double().eval()
    x, y = test_data[0][:200].double(), test_data[1][:200]
    args = dict(eps=eps, alpha=eps / 4, steps=10, norm=norm)
    plain = pgd(model, x, y, generator=torch.Generator().manual_seed(1), **args)
    early = pgd(model, x, y, generator=torch.Generator().manual_seed(1), early_stop=True, **args)
    with torch.no_grad():
        plain_ok, early_ok = model(plain).argmax(1) == y, model(early).argmax(1) == y
    assert not (early_ok & ~plain_ok).any(), "an image early stopping leaves robust is robust for plain PGD"
    torch.testing.assert_close(early[early_ok], plain[early_ok], atol=1e-9, rtol=0)
    assert 0 < early_ok.sum() < len(y), "the model must be partly robust for the test to mean anything"
    norms = (early - x).flatten(1).abs().amax(1) if norm == "linf" else (early - x).flatten(1).norm(dim=1)
    assert (norms <= eps + 1e-9).all() and early.min() >= 0 and early.max() <= 1


def test_early_stop_masked_path_equals_shrinking_path(cnn, test_data):
    """The GPU's default (freeze by mask, no host read) gives the CPU's images (shrinking batch)."""
    x, y = test_data[0][:150], test_data[1][:150]
    run = dict(eps=0.05, alpha=0.0125, steps=8, early_stop=True)
    shrunk = pgd(cnn, x, y, generator=torch.Generator().manual_seed(3), shrink=True, **run)
    masked = pgd(cnn, x, y, generator=torch.Generator().manual_seed(3), shrink=False, **run)
    default = pgd(cnn, x, y, generator=torch.Generator().manual_seed(3), **run)
    assert torch.equal(default, shrunk), "on the CPU the batch shrinks"
    torch.testing.assert_close(shrunk, masked, atol=1e-5, rtol=0)
    with torch.no_grad():
        assert torch.equal(cnn(shrunk).argmax(1), cnn(masked).argmax(1))


@pytest.mark.parametrize("name", ["early_stop", "shrink", "random_start"])
def test_pgd_flags_reject_a_non_boolean(name):
    model = CountingModel()
    with pytest.raises(ValueError, match=rf"^{name} must be True or False \(got 1\)"):
        pgd(model, _X, _Y, eps=0.1, alpha=0.01, steps=1, **{name: 1})
    assert model.calls == 0
