"""Tests for advlogits.theory (chapter 2): the closed form against brute force and against our PGD, hand-checked
dual norms and summaries, the sweep criterion, and the RobustBench path offline."""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from advlogits import experiments, figures_logits, profiles, theory
from advlogits.attacks import pgd
from advlogits.logits import logit_gap, max_logit
from advlogits.store import Store
from helpers import cifar_batch, robustbench_zoo_model, write_cifar, write_robustbench_checkpoint

RB_NAME = "Ding2020MMA"  # smallest CIFAR-10 Linf zoo entry (WRN-28-4)


def _random_linear(k: int = 4, d: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(k, d, generator=g, dtype=torch.float64), torch.randn(k, generator=g, dtype=torch.float64)


def _inputs(n: int, d: int, seed: int, *, interior: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g, dtype=torch.float64)
    if interior:
        return theory.interior(x)
    x[:, :3] = torch.tensor([0.0, 1.0, 0.03], dtype=torch.float64)  # pixels on and near the box's faces
    return x


# ---------------------------------------------------------------------------------------------------------
# dual norms and the closed form
# ---------------------------------------------------------------------------------------------------------

def test_dual_norms_by_hand():
    v = torch.tensor([3.0, -4.0])
    assert theory.dual_norm(v, norm="linf").item() == 7.0  # ||.||_inf's dual is ||.||_1
    assert theory.dual_norm(v, norm="l2").item() == 5.0
    w = torch.tensor([[0.0, 0.0], [3.0, -4.0], [1.0, 1.0]])
    l1 = theory.pairwise_dual_norms(w, norm="linf")
    assert l1.tolist() == [[0, 7, 2], [7, 0, 7], [2, 7, 0]]
    assert theory.mean_pairwise_dual_norm(w, norm="linf") == pytest.approx((7 + 2 + 7) * 2 / 6)
    l2 = theory.pairwise_dual_norms(w, norm="l2")
    assert l2[1, 2].item() == pytest.approx(math.hypot(2, 5)) and l2[0, 2].item() == pytest.approx(math.sqrt(2))


def test_linf_worst_case_with_the_box_by_hand():
    x = torch.tensor([[0.0, 1.0, 0.5, 0.05, 0.5]])
    d = torch.tensor([[1.0, -1.0, 2.0, 1.0, 0.0]])
    delta = theory.worst_case_perturbation(d, x, eps=0.1, norm="linf")
    # a dark pixel cannot darken, a bright one cannot brighten; pixel 3 only has 0.05 to go; d = 0 -> no move
    assert torch.allclose(delta, torch.tensor([[0.0, 0.0, -0.1, -0.05, 0.0]]))
    assert theory.worst_case_change(d, x, eps=0.1, norm="linf").item() == pytest.approx(-0.25)
    assert theory.worst_case_change(d, None, eps=0.1, norm="linf", box=False).item() == pytest.approx(-0.5)


@pytest.mark.parametrize("seed", range(5))
def test_linf_closed_form_is_the_minimum_over_all_vertices(seed):
    # A linear function on a box attains its minimum at a vertex: enumerate all 2^D vertices of [lo, hi].
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(1, 6, generator=g, dtype=torch.float64)
    x = torch.rand(1, 6, generator=g, dtype=torch.float64)
    x[0, 0], x[0, 1] = 0.0, 0.98
    eps = 0.1
    lo, hi = torch.clamp(-x, min=-eps), torch.clamp(1 - x, max=eps)
    brute = min((d * torch.where(torch.tensor(c).bool(), hi, lo)).sum().item()
                for c in itertools.product([0, 1], repeat=6))
    assert theory.worst_case_change(d, x, eps=eps, norm="linf").item() == pytest.approx(brute, abs=1e-12)


def test_l2_closed_form_beats_every_point_of_the_ball_and_is_attained():
    g = torch.Generator().manual_seed(0)
    d = torch.randn(3, 5, generator=g, dtype=torch.float64)
    x = torch.full((3, 5), 0.5, dtype=torch.float64)
    eps = 0.3
    value = theory.worst_case_change(d, x, eps=eps, norm="l2")
    torch.testing.assert_close(value, -eps * d.norm(dim=1))  # Hoelder with p = q = 2
    delta = theory.worst_case_perturbation(d, x, eps=eps, norm="l2")
    torch.testing.assert_close(delta.norm(dim=1), torch.full((3,), eps, dtype=torch.float64))
    samples = torch.randn(20000, 5, generator=g, dtype=torch.float64)
    samples = eps * samples / samples.norm(dim=1, keepdim=True) * torch.rand(20000, 1, generator=g, dtype=torch.float64)
    assert bool(((samples @ d.T) >= value - 1e-12).all())


def test_l2_refuses_an_active_box():
    d = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    x = torch.tensor([[0.1, 0.5]], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"the box \[0, 1\] is active for the L2 worst case of 1 of 1 samples"):
        theory.worst_case_change(d, x, eps=0.2, norm="l2")
    assert theory.worst_case_change(d, None, eps=0.2, norm="l2", box=False).item() == pytest.approx(-0.2)
    assert theory.worst_case_change(d, x, eps=0.05, norm="l2").item() == pytest.approx(-0.05)


def test_bad_arguments_are_refused():
    w, b = _random_linear()
    x, y = _inputs(3, 12, 0), torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match=r"eps must be a finite number >= 0"):
        theory.linear_worst_case_margins(w, b, x, y, eps=-0.1, norm="linf")
    with pytest.raises(ValueError, match=r"norm must be one of \['linf', 'l2'\] \(got 'l1'\)"):
        theory.linear_worst_case_margins(w, b, x, y, eps=0.1, norm="l1")
    with pytest.raises(ValueError, match=r"bias must be a tensor of shape \(4,\)"):
        theory.linear_margins(w, b[:3], x, y)
    with pytest.raises(ValueError, match=r"x must have D=12 features per sample"):
        theory.linear_margins(w, b, x[:, :5], y)
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
        theory.linear_margins(w, b, x + 1, y)
    with pytest.raises(ValueError, match=r"y must hold class indices in \[0, 4\)"):
        theory.linear_margins(w, b, x, torch.tensor([0, 1, 7]))
    with pytest.raises(ValueError, match=r"j must differ from y for every sample"):
        theory.pgd_pair_margins(theory.linear_model_from(w, b), x, y, 1, eps=0.1, alpha=0.05, steps=2)


def test_linear_margins_and_the_multiclass_worst_case():
    w, b = _random_linear(k=4, d=12, seed=3)
    x, y = _inputs(6, 12, 1), torch.tensor([0, 1, 2, 3, 0, 1])
    z = x @ w.T + b
    m = theory.linear_margins(w, b, x, y)
    assert torch.isinf(m.gather(1, y[:, None])).all()
    assert m[0, 2].item() == pytest.approx((z[0, 0] - z[0, 2]).item())
    worst = theory.linear_worst_case_margins(w, b, x, y, eps=0.05, norm="linf", box=False)
    expected = m - 0.05 * theory.pairwise_dual_norms(w, norm="linf")[y]
    torch.testing.assert_close(worst, expected)
    assert (theory.linear_worst_case_margins(w, b, x, y, eps=0.05, norm="linf") >= worst - 1e-12).all()


# ---------------------------------------------------------------------------------------------------------
# PGD (advlogits.attacks.pgd) against the closed form
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("norm", "eps", "interior"), [("linf", 0.1, False), ("l2", 0.25, True)])
def test_pgd_reaches_the_closed_form_on_a_linear_model(norm, eps, interior):
    w, b = _random_linear(k=5, d=30, seed=1)
    x, y = _inputs(40, 30, 2, interior=interior), torch.arange(40) % 5
    check = theory.linear_check(theory.linear_model_from(w, b), x, y, eps=eps, norm=norm,
                                generator=torch.Generator().manual_seed(0))
    assert check["error"].max().item() < 1e-4
    finite = check["closed_form"].isfinite()
    assert finite.sum().item() == 40 * 4
    assert (check["closed_form"][finite] < check["clean"][finite]).all()  # the attack lowers every margin
    # The check can fail: two steps of eps / 4 do not reach the closed form.
    short = theory.linear_check(theory.linear_model_from(w, b), x, y, eps=eps, norm=norm, steps=2,
                                generator=torch.Generator().manual_seed(0))
    assert short["error"].max().item() > 1e-2


def test_untargeted_pgd_never_beats_the_closed_form():
    w, b = _random_linear(k=5, d=30, seed=4)
    x, y = _inputs(50, 30, 5), torch.arange(50) % 5
    model = theory.linear_model_from(w, b)
    worst = theory.linear_worst_case_margins(w, b, x, y, eps=0.1, norm="linf").amin(dim=1)
    x_adv = pgd(model, x, y, eps=0.1, alpha=0.025, steps=20, loss="cw",
                            generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reached = theory.linear_margins(w, b, x_adv, y).amin(dim=1)
    assert (reached >= worst - 1e-9).all()
    assert (reached - worst).abs().lt(1e-6).float().mean() > 0.5  # and reaches it for most samples


def test_pair_logits_select_the_two_classes():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x, y, j = torch.rand(5, 4), torch.tensor([0, 1, 2, 0, 1]), torch.tensor([1, 2, 0, 2, 0])
    z = model(x)
    pair = theory.PairLogits(model, y, j)(x)
    torch.testing.assert_close(pair, torch.stack([z[torch.arange(5), y], z[torch.arange(5), j]], 1))


# ---------------------------------------------------------------------------------------------------------
# deep models: first order and the last layer
# ---------------------------------------------------------------------------------------------------------

def test_margin_drops_of_a_linear_model_match_the_proposition():
    w, b = _random_linear(k=4, d=20, seed=6)
    x, y = _inputs(30, 20, 7).reshape(30, 1, 4, 5), torch.arange(30) % 4
    model = theory.linear_model_from(w, b)
    drops = theory.margin_drops(model, x, y, eps=0.1, alpha=0.025, steps=20,
                                generator=torch.Generator().manual_seed(0), batch_size=7)
    j = drops["j"]
    assert torch.equal(j, theory.runner_up(x.flatten(1) @ w.T + b, y))
    closed = theory.linear_worst_case_margins(w, b, x, y, eps=0.1, norm="linf").gather(1, j[:, None]).squeeze(1)
    torch.testing.assert_close(drops["first_order"], closed)  # the linearisation of a linear model is itself
    assert (drops["pgd"] - closed).abs().max().item() < 1e-4
    torch.testing.assert_close(drops["grad_l1"], (w[y] - w[j]).abs().sum(dim=1))
    summary = theory.drop_summary({k: v.tolist() for k, v in drops.items()})
    assert summary["ratio"] == pytest.approx(1.0, abs=1e-4)


def test_margin_drops_of_a_network_are_consistent():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 3))
    x, y = torch.rand(12, 1, 4, 4), torch.arange(12) % 3
    drops = theory.margin_drops(model, x, y, eps=0.05, alpha=0.0125, steps=10,
                                generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        z = model(x)
    idx = torch.arange(12)
    torch.testing.assert_close(drops["clean"], z[idx, y] - z[idx, drops["j"]])
    assert (drops["first_order"] <= drops["clean"]).all() and (drops["pgd"] <= drops["clean"] + 1e-6).all()
    assert model.training  # the model's mode is restored


def test_drop_summary_by_hand():
    s = theory.drop_summary({"clean": [1.0, 2.0], "first_order": [0.5, 1.0], "pgd": [0.0, 1.5], "grad_l1": [1, 3]})
    assert s["observed"] == pytest.approx(0.75) and s["predicted"] == pytest.approx(0.75)
    assert s["ratio"] == pytest.approx(1.0) and s["beyond_first_order"] == 0.5
    assert s["correlation"] == pytest.approx(-1.0) and s["grad_l1"] == 2.0


def test_last_layer_of_a_network_and_its_features():
    torch.manual_seed(0)
    from advlogits.models import build_model

    model = build_model("cnn-small").eval()
    x = torch.rand(6, 1, 28, 28)
    h, logits = theory.penultimate(model, x, batch_size=4)
    layer = theory.last_linear(model)
    assert layer is model.net.head[-1] and h.shape == (6, 128)
    torch.testing.assert_close(h @ layer.weight.T + layer.bias, logits, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="model has no nn.Linear layer"):
        theory.last_linear(nn.Sequential(nn.ReLU()))


def test_last_layer_summary_by_hand():
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 3))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
        model[1].bias.zero_()
    x = torch.tensor([[0.8, 0.2], [0.1, 0.5]])  # logits (0.8, 0.2, 0) and (0.1, 0.5, 0)
    s = theory.last_layer_summary(model, x)
    assert s["weight_diff_l1"] == pytest.approx((2 + 1 + 1) * 2 / 6)
    assert s["weight_diff_l2"] == pytest.approx((math.sqrt(2) + 1 + 1) * 2 / 6)
    assert s["feature_l2"] == pytest.approx((math.hypot(0.8, 0.2) + math.hypot(0.1, 0.5)) / 2)
    # top two: classes 0, 1 (gap 0.6) and classes 1, 0 (gap 0.4); ||w0 - w1||_2 = sqrt 2 (class 2 would give 1)
    assert s["boundary_distance"] == pytest.approx((0.6 + 0.4) / math.sqrt(2) / 2)


# ---------------------------------------------------------------------------------------------------------
# statistics, the sweep criterion, configs
# ---------------------------------------------------------------------------------------------------------

def test_summarise_and_compare_on_hand_made_logits():
    g = torch.Generator().manual_seed(0)
    st = torch.randn(200, 10, generator=g) * 3
    at = st - 1.0  # every logit one lower: max logit lower by exactly 1, gaps unchanged
    s = theory.summarise(st, n_resamples=500)
    assert s["max logit"][0] == pytest.approx(max_logit(st).mean().item(), rel=1e-6)
    assert s["logit gap"][1] < s["logit gap"][0] < s["logit gap"][2]
    diff = theory.compare(at, st, n_resamples=500)
    assert diff["max logit"] == pytest.approx((-1.0, -1.0, -1.0), abs=1e-5)
    assert diff["logit gap"] == pytest.approx((0.0, 0.0, 0.0), abs=1e-5)
    assert theory.lower_on_average(diff["max logit"]) and not theory.lower_on_average(diff["logit gap"])
    assert not theory.lower_on_average((-0.5, -1.0, 0.1))  # CI includes 0
    assert not theory.lower_on_average((0.5, 0.1, 1.0))
    with pytest.raises(ValueError, match="logits_a and logits_b must be the same images' logits"):
        theory.compare(at[:10], st)


def test_sorted_profile_and_interval_table():
    z = torch.tensor([[3.0, 1.0, 2.0], [0.0, 6.0, 3.0]])
    prof = theory.sorted_profile(z, n_resamples=200)
    np.testing.assert_allclose(prof["mean"], [4.5, 2.5, 0.5])
    assert (prof["low"] <= prof["mean"]).all() and (prof["mean"] <= prof["high"]).all()
    table = theory.interval_table({"ST": {"max logit": (1.234, 1.0, 1.5)}})
    assert table.loc["ST", "max logit"] == "1.23 [1.00, 1.50]"


def test_strictly_decreasing():
    assert theory.strictly_decreasing([3.0, 2.0, 1.5])
    assert not theory.strictly_decreasing([3.0, 3.0, 1.0])
    assert not theory.strictly_decreasing([1.0, 2.0])
    with pytest.raises(ValueError, match="values must be at least two finite numbers"):
        theory.strictly_decreasing([1.0])
    with pytest.raises(ValueError, match="values must be at least two finite numbers"):
        theory.strictly_decreasing([2.0, float("nan")])


def test_sweep_and_linear_configs():
    p = profiles.resolve("cpu", device="cpu")
    sweep = theory.sweep_configs(p)
    assert list(sweep) == [0.0, *p.eps_sweep]
    assert sweep[0.0].method == "standard" and sweep[0.0].n_train == p.sweep_n_train
    assert sweep[0.0].epochs == p.sweep_epochs
    assert all(sweep[e] == p.sweep(e) for e in p.eps_sweep)
    lin = theory.linear_config(p, eps=0.2)
    assert (lin.eps, lin.steps, lin.n_train, lin.epochs) == (0.2, p.steps, p.sweep_n_train, p.sweep_epochs)
    assert lin.alpha == pytest.approx(p.alpha * 2)
    assert theory.linear_config(p, eps=0.0).steps == 0


def test_train_linear_is_stored_once(tmp_path):
    store = Store(tmp_path)
    p = profiles.resolve("smoke", device="cpu", sweep_n_train=64, sweep_epochs=1)
    config = theory.linear_config(p, eps=0.1)
    model = theory.train_linear(config, store=store, progress=False)
    assert isinstance(model.linear, nn.Linear) and model.linear.weight.shape == (10, 784)
    stored = list((store.entry(config) / "results").glob("linear-model-*.pt"))
    assert len(stored) == 1
    again = theory.train_linear(config, store=store, progress=False)
    assert torch.equal(again.linear.weight, model.linear.weight)
    other = theory.train_linear(dataclasses.replace(config, eps=0.0, steps=0, alpha=0.0), store=store, progress=False)
    assert not torch.equal(other.linear.weight, model.linear.weight)


# ---------------------------------------------------------------------------------------------------------
# RobustBench (offline: random weights placed where RobustBench looks first, a CIFAR-10 test split written here)
# ---------------------------------------------------------------------------------------------------------

def test_robustbench_model_list():
    smoke, paper = profiles.resolve("smoke", device="cpu"), profiles.resolve("paper", device="cpu")
    assert theory.robustbench_models(smoke, None) == ()
    assert theory.robustbench_models(paper, None) == theory.PAPER_ROBUSTBENCH_MODELS
    assert theory.robustbench_models(paper, []) == ()
    assert theory.robustbench_models(paper, [RB_NAME]) == (RB_NAME,)
    with pytest.raises(ValueError, match=r"robustbench_models are CIFAR-10 models but profile 'smoke' uses "
                                         r"fashion-mnist; pass robustbench_models=\[\]"):
        theory.robustbench_models(smoke, [RB_NAME])
    with pytest.raises(ValueError, match="robustbench_models must be a list of RobustBench model names"):
        theory.robustbench_models(paper, RB_NAME)


def _write_cifar_test_split(root: Path) -> None:
    """A full-size CIFAR-10 test batch (10000 random images, 1000 per class), in the official format."""
    write_cifar(root, {"test_batch": cifar_batch(10000, seed=0, labels=np.repeat(np.arange(10), 1000))})


def test_robustbench_logits_and_statistics_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVLOGITS_DATA", str(tmp_path / "data"))
    _write_cifar_test_split(tmp_path / "data")
    torch.manual_seed(0)
    reference = robustbench_zoo_model(RB_NAME)
    model_dir = tmp_path / "robustbench"
    checkpoint = write_robustbench_checkpoint(model_dir, RB_NAME, reference.state_dict())

    p = profiles.resolve("paper", device="cpu", n_eval=6, n_autoattack=0)
    store = Store(tmp_path / "store")
    z = theory.robustbench_logits(p, RB_NAME, model_dir=model_dir, store=store)
    x, _ = experiments.eval_split(p)
    with torch.no_grad():
        torch.testing.assert_close(z, reference.eval()(x), rtol=1e-5, atol=1e-5)
    stats = theory.summarise(z, n_resamples=200)
    assert stats["max logit"][0] == pytest.approx(max_logit(z).mean().item(), rel=1e-6)
    assert stats["logit gap"][0] == pytest.approx(logit_gap(z).mean().item(), rel=1e-6)
    diff = theory.compare(z, z + 1.0, n_resamples=200)
    assert diff["max logit"] == pytest.approx((-1.0, -1.0, -1.0), abs=1e-5)
    # stored: a second call reads the store even when the checkpoint is gone
    checkpoint.unlink()
    torch.testing.assert_close(theory.robustbench_logits(p, RB_NAME, model_dir=model_dir, store=store), z)


# ---------------------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------------------

def test_figures_are_labelled():
    iv = {"max logit": (2.0, 1.8, 2.2), "logit gap": (1.0, 0.9, 1.1)}
    figs = [
        figures_logits.sorted_profiles({"ST": theory.sorted_profile(torch.randn(20, 4), n_resamples=50)}),
        figures_logits.eps_sweep({"net": {0.0: iv, 0.1: iv}}, {"net": {0.0: 2.0, 0.1: 1.0}}),
        figures_logits.closed_form_check({"a": {"closed_form": torch.tensor([[math.inf, 1.0]]),
                                                "pgd": torch.tensor([[math.inf, 1.0]]),
                                                "error": torch.zeros(1, 2)}}),
        figures_logits.margin_drops({"ST": {"clean": [1.0, 2.0], "first_order": [0.5, 1.0], "pgd": [0.2, 1.2]}}),
    ]
    for fig in figs:
        for ax in fig.axes:
            if ax.get_visible():
                assert ax.get_xlabel() and ax.get_ylabel()
        plt.close(fig)
    assert figs[1].axes[2].lines[0].get_ydata().tolist() == [1.0, 0.5]  # relative to eps = 0
