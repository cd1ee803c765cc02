"""advlogits.pipeline.measures: the per-image outcomes of clean evaluation, PGD (CE and CW loss) and AutoAttack, their
per-image worst case, and the margin drops, on small models (no store)."""

from __future__ import annotations

import json

import pytest
import torch

from advlogits.attacks import pgd
from advlogits.autoattack import autoattack_correct
from advlogits.data import load_dataset
from advlogits.margins import margin_drops
from advlogits.models import build_for
from advlogits.pipeline import measures
from advlogits.predict import predict_logits
from advlogits.train import train_standard

from helpers import train_config

ATTACK = dict(eps=0.1, alpha=0.025, steps=5, restarts=1, seed=0)


@pytest.fixture(scope="module")
def linear_model():
    """A linear model on Fashion-MNIST pixels trained one epoch (~80% clean accuracy), and 64 test images."""
    x, y = load_dataset("fashion-mnist", "train", n=2000, seed=0)
    torch.manual_seed(0)
    model = build_for("linear", "fashion-mnist")
    train_standard(model, x, y, train_config(arch="linear"), progress=False)
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


def test_attack_outcomes_are_per_image_and_the_worst_case_is_their_conjunction(linear_model):
    model, x, y = linear_model
    result = measures.attack_outcomes(model, x, y, **ATTACK, n_autoattack=16, autoattack_version="fast")
    json.dumps(result)
    clean = torch.tensor(result["clean_correct"])
    ce, cw = torch.tensor(result["pgd_correct"]), torch.tensor(result["pgd_cw_correct"])
    assert result["n_eval"] == 64 and len(clean) == len(ce) == len(cw) == 64
    assert torch.equal(clean, predict_logits(model, x).argmax(1) == y)
    attack = dict(eps=0.1, alpha=0.025, steps=5, seed=0)
    assert torch.equal(ce, clean & measures.pgd_correct(model, x, y, **attack))
    assert torch.equal(cw, clean & measures.pgd_correct(model, x, y, **attack, loss="cw"))
    for key, values in (("clean_acc", clean), ("pgd_acc", ce), ("pgd_cw_acc", cw)):
        assert result[key] == pytest.approx(values.float().mean().item())
    aa, worst = torch.tensor(result["autoattack_correct"]), torch.tensor(result["robust_correct"])
    assert result["n_autoattack"] == len(aa) == len(worst) == 16
    assert result["n_autoattacked"] == int(clean[:16].sum()), "AutoAttack attacks every clean-correct image"
    attacked = clean[:16].nonzero().flatten()
    assert torch.equal(
        aa[attacked], autoattack_correct(model, x[attacked], y[attacked], eps=0.1, version="fast", seed=0)
    ), "its own number: AutoAttack alone"
    assert not aa[~clean[:16]].any()
    assert torch.equal(worst, ce[:16] & cw[:16] & aa), "the worst case: robust under every attack at once"
    assert result["robust_acc"] == pytest.approx(worst.float().mean().item())
    assert result["autoattack_acc"] == pytest.approx(aa.float().mean().item())
    assert result["pgd_acc_on_autoattack_subset"] == pytest.approx(ce[:16].float().mean().item())
    assert result["pgd_cw_acc_on_autoattack_subset"] == pytest.approx(cw[:16].float().mean().item())
    assert result["robust_acc"] <= min(
        result["autoattack_acc"], result["pgd_acc_on_autoattack_subset"], result["pgd_cw_acc_on_autoattack_subset"]
    )
    assert result["autoattack_scope"] == "clean-correct"
    survivors = measures.attack_outcomes(
        model, x, y, **ATTACK, n_autoattack=16, autoattack_version="fast", autoattack_scope="pgd-survivors"
    )
    assert survivors["robust_correct"] == result["robust_correct"], "the same worst case either way"
    assert survivors["n_autoattacked"] == int((ce[:16] & cw[:16]).sum()) < result["n_autoattacked"]
    assert "autoattack_acc" not in survivors and "autoattack_correct" not in survivors
    with pytest.raises(ValueError, match=r"^autoattack_scope must be one of 'clean-correct', 'pgd-survivors'"):
        measures.attack_outcomes(
            model, x, y, **ATTACK, n_autoattack=16, autoattack_version="fast", autoattack_scope="all"
        )
    without = measures.attack_outcomes(model, x, y, **ATTACK, n_autoattack=0, autoattack_version="fast")
    assert "autoattack_acc" not in without and "robust_correct" not in without
    assert all(without[k] == result[k] for k in ("clean_correct", "pgd_correct", "pgd_cw_correct"))


def test_the_worst_case_counts_the_images_only_the_cw_attack_breaks():
    """A model whose CE gradients vanish (huge logits) but whose CW margin does not: PGD-CE leaves images standing
    that PGD-CW breaks, and the worst case counts them broken, below PGD-CE's accuracy."""
    g = torch.Generator().manual_seed(0)
    n, eps = 120, 0.04
    linear = torch.nn.Linear(16, 4)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(4, 16, generator=g))
        linear.bias.copy_(-0.5 * linear.weight.sum(1))
    model = torch.nn.Sequential(torch.nn.Flatten(), linear)
    x = 0.3 + 0.4 * torch.rand(n, 1, 4, 4, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)
        linear.weight.mul_(1e4)
        linear.bias.mul_(1e4)
    result = measures.attack_outcomes(
        model, x, y, eps=eps, alpha=eps / 4, steps=10, restarts=1, seed=0, n_autoattack=n, autoattack_version="fast"
    )
    ce, cw = torch.tensor(result["pgd_correct"]), torch.tensor(result["pgd_cw_correct"])
    worst = torch.tensor(result["robust_correct"])
    only_cw = ce & ~cw
    assert only_cw.sum() >= 10, "precondition: CW breaks images CE does not"
    assert not worst[only_cw].any(), "the worst case counts every image the CW attack broke"
    assert result["robust_acc"] <= result["pgd_cw_acc"] < result["pgd_acc"]


def test_margin_drop_lists_are_the_seeded_margin_drops_as_lists(linear_model):
    model, x, y = linear_model
    kw = dict(eps=0.1, alpha=0.025, steps=5, restarts=1)
    lists = measures.margin_drop_lists(model, x[:16], y[:16], **kw, seed=4)
    json.dumps(lists)
    drops = margin_drops(model, x[:16], y[:16], **kw, generator=torch.Generator().manual_seed(4))
    assert lists.keys() == drops.keys() and {"clean", "first_order", "pgd", "j"} <= set(lists)
    assert all(lists[k] == drops[k].tolist() and len(lists[k]) == 16 for k in lists)
    assert lists == measures.margin_drop_lists(model, x[:16], y[:16], **kw, seed=4), "seeded: the same lists again"
