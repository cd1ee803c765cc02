"""Tests for advlogits.attacks: closed forms on linear models, invariants, and torchattacks as a reference."""

from __future__ import annotations

import copy
import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advlogits.attacks import (
    autoattack_accuracy,
    autoattack_attacks_correct,
    autoattack_correct,
    eval_mode,
    fgsm,
    pgd,
    predict_logits,
    robust_accuracy,
)

from helpers import CountingModel

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
TORCHATTACKS_MISSING = (
    "torchattacks, the independent PGD reference, is not installed: `make setup` installs it "
    "(pip install --no-deps torchattacks==3.5.1)"
)


# ----------------------------------------------------------------------------------------------------
# fixtures: Fashion-MNIST read by hand (independent of advlogits.data), a tiny CNN, a 2-class linear model


def _read_idx_images(name: str, n: int) -> torch.Tensor:
    """The first n images of a gz IDX file as float32 (n, 1, 28, 28) in [0, 1]."""
    with gzip.open(FASHION_MNIST / name) as f:
        raw = f.read(16 + n * 28 * 28)
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, 1, 28, 28)
    return torch.from_numpy(pixels.astype(np.float32) / 255.0)


def _read_idx_labels(name: str, n: int) -> torch.Tensor:
    with gzip.open(FASHION_MNIST / name) as f:
        raw = f.read(8 + n)
    return torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=8).astype(np.int64))


def _tiny_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 7 * 7, 10),
    )


@pytest.fixture(scope="module")
def test_data() -> tuple[torch.Tensor, torch.Tensor]:
    """500 Fashion-MNIST test images (500, 1, 28, 28) and labels (500,)."""
    return _read_idx_images("t10k-images-idx3-ubyte.gz", 500), _read_idx_labels("t10k-labels-idx1-ubyte.gz", 500)


@pytest.fixture(scope="module")
def cnn() -> nn.Module:
    """A tiny CNN trained for 2 epochs on 2000 Fashion-MNIST images (clean accuracy ~75%), in eval mode."""
    x = _read_idx_images("train-images-idx3-ubyte.gz", 2000)
    y = _read_idx_labels("train-labels-idx1-ubyte.gz", 2000)
    torch.manual_seed(0)
    model = _tiny_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    order = torch.Generator().manual_seed(0)
    for _ in range(2):
        perm = torch.randperm(len(x), generator=order)
        for i in range(0, len(x), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    for p in model.parameters():
        p.grad = None
    return model


def _linear2(dtype: torch.dtype = torch.float64) -> nn.Module:
    """f(x) = W flatten(x) + b with 2 classes on (N, 3, 4, 4) inputs, fixed random weights."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2)).to(dtype)
    with torch.no_grad():
        model[1].weight.normal_(0.0, 0.3)
        model[1].bias.normal_(0.0, 0.3)
    return model.eval()


def _ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


def _margin(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """z_y - max_{j != y} z_j per sample (N,): negative means misclassified."""
    with torch.no_grad():
        z = model(x)
    z_y = z.gather(1, y[:, None]).squeeze(1)
    return z_y - z.scatter(1, y[:, None], float("-inf")).amax(dim=1)


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).double().mean().item()


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


class _BnDropNet(nn.Module):
    """A model whose output and buffers change in train mode (BatchNorm statistics, Dropout)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 28 * 28, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _run_every_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    gen = torch.Generator().manual_seed(0)
    pgd(model, x, y, eps=0.1, alpha=0.03, steps=3, generator=gen)
    pgd(model, x, y, eps=1.0, alpha=0.3, steps=3, norm="l2", loss="cw", restarts=2, generator=gen)
    fgsm(model, x, y, eps=0.1)
    robust_accuracy(model, x, y, attack="pgd", batch_size=4, eps=0.1, alpha=0.03, steps=2, generator=gen)
    robust_accuracy(model, x, y, attack="none", batch_size=4)


def test_attacks_restore_modes_and_leave_parameters_alone(test_data):
    x, y = test_data[0][:10], test_data[1][:10]
    torch.manual_seed(0)
    model = _BnDropNet().train()
    model.head.eval()  # mixed modes must be restored module by module
    model.features[0].bias.requires_grad_(False)
    model.head[1].weight.grad = torch.full_like(model.head[1].weight, 0.5)
    modes = {name: m.training for name, m in model.named_modules()}
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    grads = {name: None if p.grad is None else p.grad.clone() for name, p in model.named_parameters()}
    buffers = {name: b.clone() for name, b in model.named_buffers()}

    _run_every_attack(model, x, y)

    assert {name: m.training for name, m in model.named_modules()} == modes
    assert {name: p.requires_grad for name, p in model.named_parameters()} == flags
    for name, p in model.named_parameters():
        if grads[name] is None:
            assert p.grad is None, name
        else:
            assert torch.equal(p.grad, grads[name]), name
    for name, b in model.named_buffers():  # eval mode during the attack: BatchNorm statistics untouched
        assert torch.equal(b, buffers[name]), name


def test_attack_runs_in_eval_mode(test_data):
    """In train mode Dropout makes the logits random; in eval mode the attack is deterministic."""
    x, y = test_data[0][:10], test_data[1][:10]
    torch.manual_seed(0)
    model = _BnDropNet().train()
    runs = [
        pgd(model, x, y, eps=0.1, alpha=0.03, steps=5, generator=torch.Generator().manual_seed(0)) for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])
    assert model.training


def test_eval_mode_sets_every_submodule_to_eval_and_restores_each_own_flag():
    torch.manual_seed(0)
    model = _BnDropNet().train()
    model.head.eval()
    model.features[1].eval()  # mixed modes, also below the top level
    modes = {name: m.training for name, m in model.named_modules()}
    assert len(set(modes.values())) == 2, "the test needs both modes"
    with eval_mode(model):
        assert not any(m.training for m in model.modules())
    assert {name: m.training for name, m in model.named_modules()} == modes


def test_eval_mode_restores_the_flags_on_an_exception():
    model = _BnDropNet().train()
    model.features[3].eval()
    modes = {name: m.training for name, m in model.named_modules()}
    with pytest.raises(RuntimeError, match="inside"):
        with eval_mode(model):
            assert not model.training
            raise RuntimeError("inside")
    assert {name: m.training for name, m in model.named_modules()} == modes


def test_predict_logits_equals_the_model_in_eval_mode_batch_by_batch(test_data):
    x = test_data[0][:23]
    torch.manual_seed(0)
    model = _BnDropNet().train()
    with torch.no_grad():
        model.features[1].running_mean.uniform_(-0.5, 0.5)  # non-trivial BatchNorm statistics
        model.features[1].running_var.uniform_(0.5, 2.0)
    model.head.eval()
    modes = {name: m.training for name, m in model.named_modules()}
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    got = [predict_logits(model, x, batch_size=b) for b in (1000, 23, 5, 1)]
    assert {name: m.training for name, m in model.named_modules()} == modes  # modes restored
    for name, b in model.named_buffers():  # eval mode: BatchNorm statistics untouched
        assert torch.equal(b, buffers[name]), name
    reference = copy.deepcopy(model).eval()
    with torch.no_grad():
        expected = reference(x)
    for logits in got:
        assert logits.dtype == torch.float32 and logits.device.type == "cpu" and not logits.requires_grad
        torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-6)  # eval mode: no Dropout, BN running stats
    with torch.no_grad():  # in train mode the model gives other logits, so eval mode is what was used
        assert not torch.allclose(model.train()(x), expected, atol=1e-3)


def test_predict_logits_returns_float32_on_the_cpu_for_a_float64_model():
    model = _linear2(torch.float64)
    x = torch.rand(7, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    logits = predict_logits(model, x, batch_size=3)
    assert logits.dtype == torch.float32 and logits.shape == (7, 2)
    with torch.no_grad():
        torch.testing.assert_close(logits, model(x).float())
    assert predict_logits(model, x[:0]).numel() == 0  # no images: no logits
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match=rf"batch_size must be an integer >= 1 \(got {bad}\)"):
            predict_logits(model, x, batch_size=bad)


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
    model = _linear2()
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
    assert _accuracy(cnn, combined, y) <= _accuracy(cnn, singles[0], y)


def test_cw_loss_reduces_margin_and_accuracy(cnn, test_data):
    x, y = test_data
    x_adv = pgd(cnn, x, y, eps=0.05, alpha=0.0125, steps=20, loss="cw", generator=torch.Generator().manual_seed(0))
    clean_margin, adv_margin = _margin(cnn, x, y), _margin(cnn, x_adv, y)
    assert (adv_margin <= clean_margin + 1e-5).all()
    assert adv_margin.mean() < clean_margin.mean() - 1.0
    clean_acc = robust_accuracy(cnn, x, y, attack="none", batch_size=500)
    cw_acc = robust_accuracy(
        cnn,
        x,
        y,
        attack="pgd",
        batch_size=500,
        eps=0.05,
        alpha=0.0125,
        steps=20,
        loss="cw",
        generator=torch.Generator().manual_seed(0),
    )
    assert cw_acc < clean_acc - 0.1
    assert cw_acc == _accuracy(cnn, x_adv, y)


def test_fgsm_is_one_pgd_step_without_random_start(cnn, test_data):
    x, y = test_data
    x_fgsm = fgsm(cnn, x, y, eps=0.05)
    assert torch.equal(x_fgsm, pgd(cnn, x, y, eps=0.05, alpha=0.05, steps=1, random_start=False))
    # independent of pgd: x + eps * sign(d CE / dx), clamped to [0, 1]
    x_req = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(cnn(x_req), y, reduction="sum"), x_req)
    torch.testing.assert_close(x_fgsm, (x + 0.05 * grad.sign()).clamp(0, 1), atol=1e-7, rtol=0)


# ----------------------------------------------------------------------------------------------------
# robust_accuracy


def test_robust_accuracy_clean_matches_argmax_for_any_batch_size(cnn, test_data):
    x, y = test_data
    expected = _accuracy(cnn, x, y)
    assert 0.6 < expected < 0.95
    for batch_size in (1000, 500, 64, 7):
        assert robust_accuracy(cnn, x, y, attack="none", batch_size=batch_size) == pytest.approx(expected, abs=1e-12)


def test_robust_accuracy_shares_the_generator_across_batches(cnn, test_data):
    x, y = test_data[0][:250], test_data[1][:250]
    kw = dict(eps=0.05, alpha=0.0125, steps=5)
    got = robust_accuracy(cnn, x, y, attack="pgd", batch_size=100, **kw, generator=torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    x_adv = torch.cat([pgd(cnn, x[i : i + 100], y[i : i + 100], **kw, generator=gen) for i in range(0, 250, 100)])
    assert got == _accuracy(cnn, x_adv, y)
    again = robust_accuracy(cnn, x, y, attack="pgd", batch_size=100, **kw, generator=torch.Generator().manual_seed(3))
    assert again == got


def test_robust_accuracy_calls_a_callable_attack_per_batch(cnn, test_data):
    x, y = test_data[0][:100], test_data[1][:100]
    sizes: list[int] = []

    def flip_to_black(model, xb, yb, *, value):
        sizes.append(len(xb))
        assert not model.training
        return torch.full_like(xb, value)

    got = robust_accuracy(cnn, x, y, attack=flip_to_black, batch_size=30, value=0.0)
    assert sizes == [30, 30, 30, 10]
    assert got == _accuracy(cnn, torch.zeros_like(x), y)


def test_robust_accuracy_fgsm_matches_fgsm(cnn, test_data):
    x, y = test_data
    got = robust_accuracy(cnn, x, y, attack="fgsm", batch_size=500, eps=0.05)
    assert got == _accuracy(cnn, fgsm(cnn, x, y, eps=0.05), y)
    assert got < _accuracy(cnn, x, y) - 0.05


# ----------------------------------------------------------------------------------------------------
# independent reference: torchattacks.PGD


@pytest.mark.parametrize("random_start", [True, False])
def test_pgd_robust_accuracy_matches_torchattacks(cnn, test_data, random_start):
    torchattacks = pytest.importorskip("torchattacks", reason=TORCHATTACKS_MISSING)
    x, y = test_data
    eps, alpha, steps = 0.05, 0.0125, 20
    ours = robust_accuracy(
        cnn,
        x,
        y,
        attack="pgd",
        batch_size=250,
        eps=eps,
        alpha=alpha,
        steps=steps,
        random_start=random_start,
        generator=torch.Generator().manual_seed(0),
    )
    torch.manual_seed(0)
    reference = torchattacks.PGD(cnn, eps=eps, alpha=alpha, steps=steps, random_start=random_start)
    theirs = _accuracy(cnn, reference(x, y), y)

    clean = _accuracy(cnn, x, y)
    assert 0.2 < theirs < clean - 0.1  # a meaningful comparison: neither ~0 nor ~clean
    assert abs(ours - theirs) <= (0.01 if random_start else 0.002)


# ----------------------------------------------------------------------------------------------------
# AutoAttack


@pytest.mark.slow
def test_autoattack_fast_is_no_weaker_than_pgd(cnn, test_data):
    x, y = test_data[0][:100], test_data[1][:100]
    eps = 0.05
    pgd_acc = robust_accuracy(
        cnn,
        x,
        y,
        attack="pgd",
        batch_size=100,
        eps=eps,
        alpha=eps / 4,
        steps=20,
        generator=torch.Generator().manual_seed(0),
    )
    cnn.train()
    rng_before = torch.get_rng_state()
    aa_acc = autoattack_accuracy(cnn, x, y, eps=eps, version="fast", batch_size=100)
    assert cnn.training  # mode restored
    cnn.eval()
    assert torch.equal(torch.get_rng_state(), rng_before)  # AutoAttack's reseeding does not leak
    assert 0.0 <= aa_acc <= pgd_acc + 0.03
    assert aa_acc < _accuracy(cnn, x, y) - 0.1


@pytest.mark.slow
def test_autoattack_standard_adds_attacks_to_fast_with_five_classes():
    """K=5 needs fewer than AutoAttack's default 9 target classes; standard runs fast's attacks first, then more."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 5)).eval()
    x = torch.rand(40, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x).argmax(dim=1)  # clean accuracy 1
    fast = autoattack_accuracy(model, x, y, eps=0.05, version="fast")
    standard = autoattack_accuracy(model, x, y, eps=0.05, version="standard")
    pgd_acc = robust_accuracy(model, x, y, attack="pgd", batch_size=40, eps=0.05, alpha=0.01, steps=20)
    assert 0.0 < standard <= fast <= pgd_acc + 0.03
    assert fast < 0.9


def test_autoattack_eps_zero_is_clean_accuracy(cnn, test_data):
    x, y = test_data[0][:100], test_data[1][:100]
    assert autoattack_accuracy(cnn, x, y, eps=0.0) == _accuracy(cnn, x, y)


def test_autoattack_correct_is_per_image_and_never_marks_a_misclassified_image(cnn, test_data):
    x, y = test_data[0][:60], test_data[1][:60]
    correct = autoattack_correct(cnn, x, y, eps=0.05, version="fast", batch_size=25)
    assert correct.dtype == torch.bool and correct.shape == (60,) and correct.device.type == "cpu"
    with torch.no_grad():
        clean = cnn(x).argmax(1) == y
    assert not (correct & ~clean).any()
    assert correct.sum().item() / 60 == autoattack_accuracy(cnn, x, y, eps=0.05, version="fast", batch_size=25)


def test_autoattack_rejects_models_with_fewer_than_four_classes():
    model = _linear2(torch.float32)
    x = torch.rand(8, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"model must be a model with at least 4 classes for AutoAttack \(got K=2\)"):
        autoattack_accuracy(model, x, torch.zeros(8, dtype=torch.int64), eps=0.1, version="fast")


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
        (
            lambda m: robust_accuracy(m, _X, _Y, attack="none", batch_size=0),
            r"batch_size must be an integer >= 1 \(got 0\)",
        ),
        (
            lambda m: robust_accuracy(m, _X, _Y, attack="cw", batch_size=4),
            r"attack must be one of 'none', 'fgsm', 'pgd' \(got 'cw'\); or pass a callable",
        ),
        (
            lambda m: robust_accuracy(m, _X, _Y, attack="pgd", batch_size=4, eps=0.1),
            r"kw must be hyper-parameters of attack='pgd' \(got \['eps'\]\); .*'alpha'",
        ),
        (
            lambda m: robust_accuracy(m, _X, _Y, attack="pgd", batch_size=4, **{**_PGD, "steps": 0}),
            r"steps must be an integer >= 1",
        ),
        (
            lambda m: robust_accuracy(m, _X, _Y, attack="fgsm", batch_size=4, eps=-1.0),
            r"eps must be a finite number >= 0",
        ),
        (
            lambda m: robust_accuracy(m, _X, _Y, attack="none", batch_size=4, eps=0.1),
            r"kw must be empty for attack='none' \(clean accuracy takes no attack hyper-parameters\) \(got \['eps'\]\)",
        ),
        (
            lambda m: robust_accuracy(m, _X[:0], _Y[:0], attack="none", batch_size=4),
            r"x must be at least one sample \(got N=0\)",
        ),
        (
            lambda m: robust_accuracy(m, _X + 0.6, _Y, attack="none", batch_size=4),
            r"x must be in \[0, 1\] \(got min 1\.1",
        ),
        (lambda m: autoattack_accuracy(m, _X, _Y, eps=-0.1), r"eps must be a finite number >= 0 \(got -0.1\)"),
        (
            lambda m: autoattack_accuracy(m, _X, _Y, eps=0.1, norm="linf"),
            r"norm must be one of 'Linf', 'L2' \(got 'linf'\)",
        ),
        (
            lambda m: autoattack_accuracy(m, _X, _Y, eps=0.1, version="plus"),
            r"version must be one of 'standard', 'fast' \(got 'plus'\)",
        ),
        (
            lambda m: autoattack_accuracy(m, _X, _Y, eps=0.1, batch_size=0),
            r"batch_size must be an integer >= 1 \(got 0\)",
        ),
        (
            lambda m: autoattack_accuracy(m, _X, _Y[:3], eps=0.1),
            r"y must be one label per row of x \(4 samples\) "
            r"\(got 3 labels\)",
        ),
        (lambda m: predict_logits(m, _X, batch_size=0), r"batch_size must be an integer >= 1 \(got 0\)"),
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
    """The GPU variant (freeze by mask, no host read) gives the CPU variant's images (shrinking batch)."""
    from advlogits.attacks import _pgd_single

    x, y = test_data[0][:150], test_data[1][:150]
    run = dict(eps=0.05, alpha=0.0125, steps=8, norm="linf", random_start=True, loss="ce", early_stop=True)
    shrunk = _pgd_single(cnn, x, y, generator=torch.Generator().manual_seed(3), shrink=True, **run)
    masked = _pgd_single(cnn, x, y, generator=torch.Generator().manual_seed(3), shrink=False, **run)
    torch.testing.assert_close(shrunk, masked, atol=1e-5, rtol=0)
    with torch.no_grad():
        assert torch.equal(cnn(shrunk).argmax(1), cnn(masked).argmax(1))


def test_early_stop_rejects_a_non_boolean(cnn, test_data):
    with pytest.raises(ValueError, match=r"early_stop must be True or False \(got 1\)"):
        pgd(cnn, test_data[0][:4], test_data[1][:4], eps=0.1, alpha=0.01, steps=1, early_stop=1)


def test_predict_logits_of_no_images_has_one_column_per_class():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    logits = predict_logits(model, torch.zeros(0, 1, 2, 2))
    assert logits.shape == (0, 3) and logits.dtype == torch.float32


# ----------------------------------------------------------------------------------------------------
# AutoAttack's attacks one by one (autoattack_attacks_correct): Square, the black-box check of masked gradients


class _RoundedInput(nn.Module):
    """``model`` on its input rounded to 8 bits: the same predictions on 8-bit images, a zero input gradient."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.round(x * 255) / 255)


def test_autoattack_attacks_apgd_ce_and_apgd_t_are_the_fast_version(cnn, test_data):
    x, y = test_data[0][:40], test_data[1][:40]
    chosen = autoattack_attacks_correct(cnn, x, y, attacks=["apgd-ce", "apgd-t"], eps=0.05, batch_size=25, seed=3)
    fast = autoattack_correct(cnn, x, y, eps=0.05, version="fast", batch_size=25, seed=3)
    assert chosen.dtype == torch.bool and chosen.shape == (40,) and chosen.device.type == "cpu"
    assert torch.equal(chosen, fast)


def test_square_needs_no_gradient_and_restores_modes_and_the_rng(cnn, test_data):
    """On a model whose input gradient is zero, APGD-CE only has its random start; Square, a black-box attack,
    still breaks images. Square is seeded, leaves the global RNG state and the model's modes as they were."""
    x, y = test_data[0][:60], test_data[1][:60]
    rounded = _RoundedInput(cnn)
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(rounded(xr), y), xr)
    assert not grad.any()
    clean = rounded(x).argmax(1) == y
    apgd = autoattack_attacks_correct(rounded, x, y, attacks=["apgd-ce"], eps=0.1, seed=0)
    rounded.train()
    rng_before = torch.get_rng_state()
    square = autoattack_attacks_correct(rounded, x, y, attacks=["square"], eps=0.1, square_queries=300, seed=0)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert rounded.training and cnn.training
    rounded.eval()
    assert not (square & ~clean).any() and not (apgd & ~clean).any()
    assert square.sum() <= apgd.sum() - 10
    again = autoattack_attacks_correct(rounded, x, y, attacks=["square"], eps=0.1, square_queries=300, seed=0)
    assert torch.equal(square, again)
    more = autoattack_attacks_correct(rounded, x, y, attacks=["square"], eps=0.1, square_queries=1000, seed=0)
    assert more.sum() <= square.sum()  # the same seeded search, run longer, finds at least as much


def test_square_runs_on_two_classes_where_apgd_t_is_refused():
    model = _linear2(torch.float32)
    x = torch.rand(16, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x).argmax(1)
    square = autoattack_attacks_correct(model, x, y, attacks=["square"], eps=0.3, square_queries=100)
    assert square.shape == (16,) and square.sum() < 16
    assert torch.equal(autoattack_attacks_correct(model, x, y, attacks=["square"], eps=0.0), torch.ones(16, dtype=bool))
    with pytest.raises(
        ValueError,
        match=r"model must be a model with at least 4 classes for AutoAttack's apgd-t "
        r"\(got K=2\); its DLR loss is undefined below that",
    ):
        autoattack_attacks_correct(model, x, y, attacks=["square", "apgd-t"], eps=0.1)


_AA_NAMES = r"'apgd-ce', 'apgd-dlr', 'apgd-t', 'fab', 'fab-t', 'square'"


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (
            dict(attacks=[]),
            rf"attacks must be a non-empty list of distinct AutoAttack attacks from {_AA_NAMES} "
            r"\(got \[\]\)",
        ),
        (dict(attacks="square"), r"attacks must be a non-empty list .* \(got 'square'\)"),
        (dict(attacks=["sqaure"]), r"attacks must be a non-empty list .* \(got \['sqaure'\]\)"),
        (dict(attacks=["square", "square"]), r"attacks must be a non-empty list of distinct"),
        (dict(square_queries=0), r"square_queries must be an integer >= 1 \(got 0\)"),
        (dict(eps=-0.1), r"eps must be a finite number >= 0 \(got -0.1\)"),
        (dict(norm="linf"), r"norm must be one of 'Linf', 'L2' \(got 'linf'\)"),
        (dict(batch_size=0), r"batch_size must be an integer >= 1 \(got 0\)"),
        (dict(seed=0.5), r"seed must be an integer \(got 0.5\)"),
    ],
)
def test_autoattack_attacks_refuses_bad_input_before_compute(kw, match):
    model = CountingModel()
    with pytest.raises(ValueError, match=match):
        autoattack_attacks_correct(model, _X, _Y, **{**dict(attacks=["square"], eps=0.1), **kw})
    assert model.calls == 0
