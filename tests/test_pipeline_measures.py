"""advlogits.pipeline.measures: the per-image outcomes of clean evaluation, PGD (CE and CW loss), AutoAttack as an
ensemble with PGD, and the margin drops, on small models (no store)."""

from __future__ import annotations

import json

import pytest
import torch

from advlogits.attacks import autoattack_correct, pgd, predict_logits
from advlogits.data import load_dataset
from advlogits.margins import margin_drops
from advlogits.models import build_for
from advlogits.pipeline import measures
from advlogits.train import train_standard

ATTACK = dict(eps=0.1, alpha=0.025, steps=5, restarts=1, seed=0)


@pytest.fixture(scope="module")
def linear_model():
    """A linear model on Fashion-MNIST pixels trained one epoch (~80% clean accuracy), and 64 test images."""
    x, y = load_dataset("fashion-mnist", "train", n=2000, seed=0)
    torch.manual_seed(0)
    model = build_for("linear", "fashion-mnist")
    train_standard(model, x, y, epochs=1, batch_size=64, lr=0.05, progress=False)
    return model, *load_dataset("fashion-mnist", "test", n=64, seed=0)


def test_cw_loss_finds_what_saturated_cross_entropy_misses():
    """Why the book reports PGD-CW. A two-class linear model with huge logits: CE gradients underflow to 0,
    so CE-PGD only gets its random start, while CW-PGD reaches the closed-form worst case, i.e. the image is
    robust exactly when margin > eps * ||w_y - w_j||_1."""
    g = torch.Generator().manual_seed(0)
    n, eps = 200, 0.04
    linear = torch.nn.Linear(16, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(2, 16, generator=g))
        linear.bias.copy_(-0.5 * linear.weight.sum(1))  # margins centred on 0 for x around 0.5
    model = torch.nn.Sequential(torch.nn.Flatten(), linear)
    x = 0.3 + 0.4 * torch.rand(n, 1, 4, 4, generator=g)  # x +- eps stays inside [0, 1]: the box never binds
    with torch.no_grad():
        logits = model(x)
    y = logits.argmax(1)  # every image is classified correctly
    margin = (logits[:, 0] - logits[:, 1]).abs()
    robust = margin > eps * (linear.weight[0] - linear.weight[1]).abs().sum().item()
    with torch.no_grad():
        linear.weight.mul_(1e4)
        linear.bias.mul_(1e4)
    kw = dict(eps=eps, alpha=eps / 4, steps=10, seed=0)  # 10 steps of eps/4 cross the ball from any start
    ce = measures.pgd_correct(model, x, y, loss="ce", **kw)
    cw = measures.pgd_correct(model, x, y, loss="cw", **kw)
    assert 0.2 * n <= robust.sum() <= 0.6 * n
    assert torch.equal(cw, robust), "CW-PGD reaches the exact worst case of a linear two-class model"
    assert ce.sum() >= 0.75 * n, "CE-PGD is stuck at its random start"


def test_pgd_correct_stops_at_the_first_misclassified_iterate(linear_model):
    """An image robust under the early-stopping attack is robust under the plain attack from the same start, and
    the early stop finds at least as many errors; batches do not change the outcome."""
    model, x, y = linear_model
    kw = dict(eps=ATTACK["eps"], alpha=ATTACK["alpha"], steps=ATTACK["steps"])
    early = measures.pgd_correct(model, x, y, **kw, seed=3)
    assert early.dtype == torch.bool and early.shape == (64,)
    x_adv = pgd(model, x, y, **kw, generator=torch.Generator().manual_seed(3))
    plain = predict_logits(model, x_adv).argmax(1) == y
    assert not (early & ~plain).any()
    assert early.sum() <= plain.sum()
    assert torch.equal(measures.pgd_correct(model, x, y, **kw, seed=3, batch_size=10), early)
    assert early.sum() < (predict_logits(model, x).argmax(1) == y).sum(), "the attack breaks some images"


def test_clean_pgd_autoattack_is_an_ensemble_with_consistent_counts(linear_model):
    model, x, y = linear_model
    result = measures.clean_pgd_autoattack(model, x, y, **ATTACK, n_autoattack=16, autoattack_version="fast")
    json.dumps(result)
    clean, robust = torch.tensor(result["clean_correct"]), torch.tensor(result["pgd_correct"])
    assert result["n_eval"] == 64 and len(clean) == len(robust) == 64
    assert torch.equal(clean, predict_logits(model, x).argmax(1) == y)
    assert torch.equal(robust, clean & measures.pgd_correct(model, x, y, eps=0.1, alpha=0.025, steps=5, seed=0))
    assert result["clean_acc"] == pytest.approx(clean.float().mean().item())
    assert result["pgd_acc"] == pytest.approx(robust.float().mean().item())
    aa = torch.tensor(result["autoattack_correct"])
    assert result["n_autoattack"] == len(aa) == 16
    assert not (aa & ~robust[:16]).any(), "an image PGD broke never counts as robust under AutoAttack"
    assert result["n_autoattacked"] == int(robust[:16].sum()), "AutoAttack attacks exactly the images PGD left"
    assert result["autoattack_acc"] == pytest.approx(aa.float().mean().item())
    assert result["pgd_acc_on_autoattack_subset"] == pytest.approx(robust[:16].float().mean().item())
    attacked = robust[:16].nonzero().flatten()
    assert 0 < len(attacked) < 16, "precondition: PGD leaves some of the AutoAttack images, breaks others"
    alone = autoattack_correct(model, x[attacked], y[attacked], eps=0.1, version="fast", seed=0)
    assert torch.equal(aa[attacked], alone), "on the images it attacks, the ensemble is AutoAttack itself"
    without = measures.clean_pgd_autoattack(model, x, y, **ATTACK, n_autoattack=0, autoattack_version="fast")
    assert "autoattack_acc" not in without and "n_autoattack" not in without
    assert {k: without[k] for k in ("clean_correct", "pgd_correct")} == {k: result[k] for k in ("clean_correct",
                                                                                                 "pgd_correct")}


def test_pgd_cw_outcomes_and_their_autoattack_subset(linear_model):
    model, x, y = linear_model
    result = measures.pgd_cw(model, x, y, **ATTACK, n_autoattack=16)
    assert result["pgd_cw_correct"] == measures.pgd_correct(model, x, y, eps=0.1, alpha=0.025, steps=5,
                                                            loss="cw").tolist()
    assert result["pgd_cw_acc"] == pytest.approx(sum(result["pgd_cw_correct"]) / 64)
    assert result["pgd_cw_acc_on_autoattack_subset"] == pytest.approx(sum(result["pgd_cw_correct"][:16]) / 16)
    assert "pgd_cw_acc_on_autoattack_subset" not in measures.pgd_cw(model, x, y, **ATTACK, n_autoattack=0)


def test_margin_drop_lists_are_the_seeded_margin_drops_as_lists(linear_model):
    model, x, y = linear_model
    kw = dict(eps=0.1, alpha=0.025, steps=5, restarts=1)
    lists = measures.margin_drop_lists(model, x[:16], y[:16], **kw, seed=4)
    json.dumps(lists)
    drops = margin_drops(model, x[:16], y[:16], **kw, generator=torch.Generator().manual_seed(4))
    assert lists.keys() == drops.keys() and {"clean", "first_order", "pgd", "j"} <= set(lists)
    assert all(lists[k] == drops[k].tolist() and len(lists[k]) == 16 for k in lists)
    assert lists == measures.margin_drop_lists(model, x[:16], y[:16], **kw, seed=4), "seeded: the same lists again"
