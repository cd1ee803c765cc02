"""Tests for advlogits.margins: the closed form of the worst-case margin of a linear model against brute force and
against our PGD, hand-checked dual norms, the first-order margin drops of networks and their last linear layer."""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch
from torch import nn

from advlogits import attacks, margins
from advlogits.attacks import pgd
from advlogits.logits import runner_up
from advlogits.models import build_model


def _random_linear(k: int = 4, d: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(k, d, generator=g, dtype=torch.float64), torch.randn(k, generator=g, dtype=torch.float64)


def _inputs(n: int, d: int, seed: int, *, interior: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g, dtype=torch.float64)
    if interior:
        return margins.interior(x)
    x[:, :3] = torch.tensor([0.0, 1.0, 0.03], dtype=torch.float64)  # pixels on and near the box's faces
    return x


# ---------------------------------------------------------------------------------------------------------
# dual norms and the closed form
# ---------------------------------------------------------------------------------------------------------


def test_dual_norms_by_hand():
    assert margins.NORMS == ("linf", "l2") and margins.NORMS is attacks.NORMS, "one Norm, the attacks'"
    v = torch.tensor([3.0, -4.0])
    assert margins.dual_norm(v, norm="linf").item() == 7.0  # ||.||_inf's dual is ||.||_1
    assert margins.dual_norm(v, norm="l2").item() == 5.0
    w = torch.tensor([[0.0, 0.0], [3.0, -4.0], [1.0, 1.0]])
    l1 = margins.pairwise_dual_norms(w, norm="linf")
    assert l1.tolist() == [[0, 7, 2], [7, 0, 7], [2, 7, 0]]
    assert margins.mean_pairwise_dual_norm(w, norm="linf") == pytest.approx((7 + 2 + 7) * 2 / 6)
    l2 = margins.pairwise_dual_norms(w, norm="l2")
    assert l2[1, 2].item() == pytest.approx(math.hypot(2, 5)) and l2[0, 2].item() == pytest.approx(math.sqrt(2))
    for call in (lambda: margins.dual_norm(v, norm="l1"), lambda: margins.pairwise_dual_norms(w, norm="l1")):
        with pytest.raises(ValueError, match=r"norm must be one of 'linf', 'l2' \(got 'l1'\)"):
            call()


def test_linf_worst_case_with_the_box_by_hand():
    x = torch.tensor([[0.0, 1.0, 0.5, 0.05, 0.5]])
    d = torch.tensor([[1.0, -1.0, 2.0, 1.0, 0.0]])
    delta = margins.worst_case_perturbation(d, x, eps=0.1, norm="linf")
    # a dark pixel cannot darken, a bright one cannot brighten; pixel 3 only has 0.05 to go; d = 0 -> no move
    assert torch.allclose(delta, torch.tensor([[0.0, 0.0, -0.1, -0.05, 0.0]]))
    assert margins.worst_case_change(d, x, eps=0.1, norm="linf").item() == pytest.approx(-0.25)
    assert margins.worst_case_change(d, None, eps=0.1, norm="linf", box=False).item() == pytest.approx(-0.5)
    # without the box: -eps * sign(d), 0 where d = 0
    unboxed = margins.worst_case_perturbation(d, None, eps=0.1, norm="linf", box=False)
    assert torch.allclose(unboxed, torch.tensor([[-0.1, 0.1, -0.1, -0.1, 0.0]]))
    with pytest.raises(ValueError, match=r"x must be given with d's shape \(1, 5\) when box=True \(got None\)"):
        margins.worst_case_perturbation(d, None, eps=0.1, norm="linf")


@pytest.mark.parametrize("seed", range(5))
def test_linf_closed_form_is_the_minimum_over_all_vertices(seed):
    # A linear function on a box attains its minimum at a vertex: enumerate all 2^D vertices of [lo, hi].
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(1, 6, generator=g, dtype=torch.float64)
    x = torch.rand(1, 6, generator=g, dtype=torch.float64)
    x[0, 0], x[0, 1] = 0.0, 0.98
    eps = 0.1
    lo, hi = torch.clamp(-x, min=-eps), torch.clamp(1 - x, max=eps)
    brute = min(
        (d * torch.where(torch.tensor(c).bool(), hi, lo)).sum().item() for c in itertools.product([0, 1], repeat=6)
    )
    assert margins.worst_case_change(d, x, eps=eps, norm="linf").item() == pytest.approx(brute, abs=1e-12)


def test_l2_closed_form_beats_every_point_of_the_ball_and_is_attained():
    g = torch.Generator().manual_seed(0)
    d = torch.randn(3, 5, generator=g, dtype=torch.float64)
    x = torch.full((3, 5), 0.5, dtype=torch.float64)
    eps = 0.3
    value = margins.worst_case_change(d, x, eps=eps, norm="l2")
    torch.testing.assert_close(value, -eps * d.norm(dim=1))  # Hoelder with p = q = 2
    delta = margins.worst_case_perturbation(d, x, eps=eps, norm="l2")
    torch.testing.assert_close(delta.norm(dim=1), torch.full((3,), eps, dtype=torch.float64))
    samples = torch.randn(20000, 5, generator=g, dtype=torch.float64)
    samples = eps * samples / samples.norm(dim=1, keepdim=True) * torch.rand(20000, 1, generator=g, dtype=torch.float64)
    assert bool(((samples @ d.T) >= value - 1e-12).all())


def test_l2_refuses_an_active_box():
    d = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    x = torch.tensor([[0.1, 0.5]], dtype=torch.float64)
    with pytest.raises(
        ValueError,
        match=r"eps must be small enough that the L2 worst case x - eps \* d / \|\|d\|\|_2 "
        r"stays in the box \[0, 1\] \(got 0.2: it leaves the box for 1 of 1 "
        r"samples\); the L2 closed form does not hold there",
    ):
        margins.worst_case_change(d, x, eps=0.2, norm="l2")
    assert margins.worst_case_change(d, None, eps=0.2, norm="l2", box=False).item() == pytest.approx(-0.2)
    assert margins.worst_case_change(d, x, eps=0.05, norm="l2").item() == pytest.approx(-0.05)


def test_interior_inputs_keep_the_l2_check_radius_inside_the_box():
    g = torch.Generator().manual_seed(0)
    x = margins.interior(torch.rand(200, 30, generator=g, dtype=torch.float64))
    assert x.min() >= 0.25 and x.max() <= 0.75
    torch.testing.assert_close(margins.interior(torch.tensor([0.0, 0.5, 1.0])), torch.tensor([0.25, 0.5, 0.75]))
    d = torch.randn(200, 30, generator=g, dtype=torch.float64)
    d[:, 0] = 1e3  # the whole radius on one pixel
    delta = margins.worst_case_perturbation(d, x, eps=margins.L2_CHECK_EPS, norm="l2")  # box never active
    assert ((x + delta) >= 0).all() and ((x + delta) <= 1).all()
    assert margins.CHECK_STEPS["linf"] * 0.25 >= 2  # eps / 4 steps cross the L-inf ball (2 eps wide)


def test_bad_arguments_are_refused():
    w, b = _random_linear()
    x, y = _inputs(3, 12, 0), torch.tensor([0, 1, 2])
    with pytest.raises(
        ValueError,
        match=r"eps must be a finite number >= 0 \(got -0.1\); a radius in \[0, 1\] pixel "
        r"units",
    ):
        margins.linear_worst_case_margins(w, b, x, y, eps=-0.1, norm="linf")
    with pytest.raises(ValueError, match=r"norm must be one of 'linf', 'l2' \(got 'l1'\)"):
        margins.linear_worst_case_margins(w, b, x, y, eps=0.1, norm="l1")
    with pytest.raises(
        ValueError,
        match=r"bias must be a tensor of shape \(4,\), one value per class \(got "
        r"torch.float64 tensor of shape \(3,\)\)",
    ):
        margins.linear_margins(w, b[:3], x, y)
    with pytest.raises(
        ValueError,
        match=r"weight must be a floating-point tensor of shape \(K, D\) with K >= 2 "
        r"classes \(got torch.float64 tensor of shape \(1, 12\)\)",
    ):
        margins.linear_margins(w[:1], b[:1], x, y)
    with pytest.raises(
        ValueError,
        match=r"x must be 12 features per sample, as many as weight has \(got "
        r"torch.float64 tensor of shape \(3, 5\)\)",
    ):
        margins.linear_margins(w, b, x[:, :5], y)
    with pytest.raises(ValueError, match=r"x must be in \[0, 1\] \(got min 1, max 2\)"):
        margins.linear_margins(w, b, x + 1, y)
    with pytest.raises(ValueError, match=r"y must be class indices in \[0, 4\) \(got values in \[0, 7\]\)"):
        margins.linear_margins(w, b, x, torch.tensor([0, 1, 7]))
    with pytest.raises(
        ValueError,
        match=r"j must be different from y for every sample \(the margin z_y - z_j needs "
        r"two classes\) \(got 1 equal\)",
    ):
        margins.pgd_pair_margins(margins.linear_model_from(w, b), x, y, 1, eps=0.1, alpha=0.05, steps=2)
    with pytest.raises(
        ValueError,
        match=r"j must be an int or a tensor of shape \(3,\) \(got torch.int64 tensor of "
        r"shape \(2,\)\)",
    ):
        margins.pgd_pair_margins(
            margins.linear_model_from(w, b), x, y, torch.tensor([1, 2]), eps=0.1, alpha=0.05, steps=2
        )


def test_linear_margins_and_the_multiclass_worst_case():
    w, b = _random_linear(k=4, d=12, seed=3)
    x, y = _inputs(6, 12, 1), torch.tensor([0, 1, 2, 3, 0, 1])
    z = x @ w.T + b
    m = margins.linear_margins(w, b, x, y)
    assert torch.isinf(m.gather(1, y[:, None])).all()
    assert m[0, 2].item() == pytest.approx((z[0, 0] - z[0, 2]).item())
    worst = margins.linear_worst_case_margins(w, b, x, y, eps=0.05, norm="linf", box=False)
    expected = m - 0.05 * margins.pairwise_dual_norms(w, norm="linf")[y]
    torch.testing.assert_close(worst, expected)
    assert (margins.linear_worst_case_margins(w, b, x, y, eps=0.05, norm="linf") >= worst - 1e-12).all()


def test_linear_model_from_is_shaped_like_the_linear_architecture():
    w, b = _random_linear(k=10, d=784, seed=2)
    model = margins.linear_model_from(w, b)
    reference = build_model("linear")
    assert [name for name, _ in model.named_children()] == ["flatten", "linear"]
    assert model.state_dict().keys() == reference.state_dict().keys()
    assert not model.training and model.linear.weight.dtype == torch.float64
    x = torch.rand(3, 1, 28, 28, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), x.flatten(1) @ w.T + b)
    reference.load_state_dict({k: v.float() for k, v in model.state_dict().items()})  # the weights fit it too


# ---------------------------------------------------------------------------------------------------------
# PGD (advlogits.attacks.pgd) against the closed form
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("norm", "eps", "interior"), [("linf", 0.1, False), ("l2", 0.25, True)])
def test_pgd_reaches_the_closed_form_on_a_linear_model(norm, eps, interior):
    w, b = _random_linear(k=5, d=30, seed=1)
    x, y = _inputs(40, 30, 2, interior=interior), torch.arange(40) % 5
    check = margins.linear_check(
        margins.linear_model_from(w, b), x, y, eps=eps, norm=norm, generator=torch.Generator().manual_seed(0)
    )
    assert check["error"].max().item() < 1e-4
    finite = check["closed_form"].isfinite()
    assert finite.sum().item() == 40 * 4
    assert (check["closed_form"][finite] < check["clean"][finite]).all()  # the attack lowers every margin
    # The check can fail: two steps of eps / 4 do not reach the closed form.
    short = margins.linear_check(
        margins.linear_model_from(w, b), x, y, eps=eps, norm=norm, steps=2, generator=torch.Generator().manual_seed(0)
    )
    assert short["error"].max().item() > 1e-2


def test_untargeted_pgd_never_beats_the_closed_form():
    w, b = _random_linear(k=5, d=30, seed=4)
    x, y = _inputs(50, 30, 5), torch.arange(50) % 5
    model = margins.linear_model_from(w, b)
    worst = margins.linear_worst_case_margins(w, b, x, y, eps=0.1, norm="linf").amin(dim=1)
    x_adv = pgd(model, x, y, eps=0.1, alpha=0.025, steps=20, loss="cw", generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reached = margins.linear_margins(w, b, x_adv, y).amin(dim=1)
    assert (reached >= worst - 1e-9).all()
    assert (reached - worst).abs().lt(1e-6).float().mean() > 0.5  # and reaches it for most samples


def test_pair_logits_select_the_two_classes():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x, y, j = torch.rand(5, 4), torch.tensor([0, 1, 2, 0, 1]), torch.tensor([1, 2, 0, 2, 0])
    z = model(x)
    pair = margins.PairLogits(model, y, j)
    torch.testing.assert_close(pair(x), torch.stack([z[torch.arange(5), y], z[torch.arange(5), j]], 1))
    assert set(pair.state_dict()) == {"model.1.weight", "model.1.bias"}  # the class index is not saved


def test_pgd_pairwise_margins_against_every_class_of_a_linear_model():
    w, b = _random_linear(k=3, d=8, seed=8)
    x, y = _inputs(6, 8, 9), torch.tensor([0, 1, 2, 0, 1, 2])
    found = margins.pgd_pairwise_margins(
        margins.linear_model_from(w, b),
        x,
        y,
        num_classes=3,
        eps=0.1,
        alpha=0.025,
        steps=20,
        generator=torch.Generator().manual_seed(0),
    )
    closed = margins.linear_worst_case_margins(w, b, x, y, eps=0.1, norm="linf")
    assert torch.isinf(found.gather(1, y[:, None])).all()
    torch.testing.assert_close(found, closed, atol=1e-6, rtol=0)
    single = margins.pgd_pair_margins(
        margins.linear_model_from(w, b),
        x,
        y,
        (y + 1) % 3,
        eps=0.1,
        alpha=0.025,
        steps=20,
        generator=torch.Generator().manual_seed(0),
    )
    torch.testing.assert_close(single, closed[torch.arange(6), (y + 1) % 3], atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------------------
# deep models: first order and the last layer
# ---------------------------------------------------------------------------------------------------------


def test_margin_drops_of_a_linear_model_match_the_proposition():
    w, b = _random_linear(k=4, d=20, seed=6)
    x, y = _inputs(30, 20, 7).reshape(30, 1, 4, 5), torch.arange(30) % 4
    model = margins.linear_model_from(w, b)
    drops = margins.margin_drops(
        model, x, y, eps=0.1, alpha=0.025, steps=20, generator=torch.Generator().manual_seed(0), batch_size=7
    )
    j = drops["j"]
    assert torch.equal(j, runner_up(x.flatten(1) @ w.T + b, y))
    closed = margins.linear_worst_case_margins(w, b, x, y, eps=0.1, norm="linf").gather(1, j[:, None]).squeeze(1)
    torch.testing.assert_close(drops["first_order"], closed)  # the linearisation of a linear model is itself
    assert (drops["pgd"] - closed).abs().max().item() < 1e-4
    torch.testing.assert_close(drops["grad_l1"], (w[y] - w[j]).abs().sum(dim=1))
    # the mean observed (PGD) drop over the mean first-order drop is 1
    ratio = (drops["clean"] - drops["pgd"]).mean() / (drops["clean"] - drops["first_order"]).mean()
    assert ratio.item() == pytest.approx(1.0, abs=1e-4)


def test_margin_drops_of_a_network_are_consistent():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 3))
    x, y = torch.rand(12, 1, 4, 4), torch.arange(12) % 3
    drops = margins.margin_drops(
        model, x, y, eps=0.05, alpha=0.0125, steps=10, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        z = model(x)
    idx = torch.arange(12)
    torch.testing.assert_close(drops["clean"], z[idx, y] - z[idx, drops["j"]])
    assert (drops["first_order"] <= drops["clean"]).all() and (drops["pgd"] <= drops["clean"] + 1e-6).all()
    assert model.training  # the model's mode is restored
    with pytest.raises(ValueError, match=r"eps must be a finite number >= 0 \(got -0.05\)"):
        margins.margin_drops(model, x, y, eps=-0.05, alpha=0.0125, steps=10)


def test_last_layer_of_a_network_and_its_features():
    torch.manual_seed(0)
    model = build_model("cnn-small").eval()
    x = torch.rand(6, 1, 28, 28)
    h, logits = margins.penultimate(model, x, batch_size=4)
    layer = margins.last_linear(model)
    assert layer is model.net.head[-1] and h.shape == (6, 128)
    torch.testing.assert_close(h @ layer.weight.T + layer.bias, logits, rtol=1e-5, atol=1e-5)
    with pytest.raises(
        ValueError,
        match=r"model must be a network with an nn.Linear layer \(its last layer is "
        r"analysed\) \(got Sequential\)",
    ):
        margins.last_linear(nn.Sequential(nn.ReLU()))


def test_penultimate_restores_train_mode_and_removes_its_hook():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Dropout(0.5), nn.Linear(3, 2)).train()
    x = torch.rand(5, 1, 2, 2)
    h, logits = margins.penultimate(model, x, batch_size=2)
    assert model.training and not model[3]._forward_pre_hooks
    model.eval()
    with torch.no_grad():  # eval mode: Dropout is the identity, so h is the first layer's output
        torch.testing.assert_close(h, model[1](x.flatten(1)))
        torch.testing.assert_close(logits, model(x))


def test_last_layer_summary_by_hand():
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 3))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
        model[1].bias.zero_()
    x = torch.tensor([[0.8, 0.2], [0.1, 0.5]])  # logits (0.8, 0.2, 0) and (0.1, 0.5, 0)
    s = margins.last_layer_summary(model, x)
    assert s["weight_diff_l1"] == pytest.approx((2 + 1 + 1) * 2 / 6)
    assert s["weight_diff_l2"] == pytest.approx((math.sqrt(2) + 1 + 1) * 2 / 6)
    assert s["feature_l2"] == pytest.approx((math.hypot(0.8, 0.2) + math.hypot(0.1, 0.5)) / 2)
    # top two: classes 0, 1 (gap 0.6) and classes 1, 0 (gap 0.4); ||w0 - w1||_2 = sqrt 2 (class 2 would give 1)
    assert s["boundary_distance"] == pytest.approx((0.6 + 0.4) / math.sqrt(2) / 2)


# ---------------------------------------------------------------------------------------------------------
# the input gradient of the logit gap (claim C3's penalty)
# ---------------------------------------------------------------------------------------------------------


def _top2(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    top2 = z.topk(2, dim=1).indices
    return top2[:, 0], top2[:, 1]


def test_gap_gradient_l1_of_a_linear_model_is_its_weight_difference():
    torch.manual_seed(0)
    model = build_model("linear")  # float32, as the book's models
    x = torch.rand(23, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    g1 = margins.gap_gradient_l1(model, x, batch_size=5)
    w = model.linear.weight.detach()
    with torch.no_grad():
        a, b = _top2(model(x))
    assert g1.shape == (23,) and g1.dtype == torch.float32 and g1.device.type == "cpu"
    torch.testing.assert_close(g1, (w[a] - w[b]).abs().sum(dim=1), rtol=1e-6, atol=0)
    assert len(set(zip(a.tolist(), b.tolist()))) > 1  # several class pairs, so the pair is really read per image


def test_gap_gradient_l1_times_eps_is_the_exact_drop_of_a_linear_gap():
    """A float64 linear model: moving by -eps * sign(w_(1) - w_(2)) lowers z_(1) - z_(2) by eps * gap_gradient_l1."""
    w, b = _random_linear(k=5, d=30, seed=11)
    model = margins.linear_model_from(w, b)
    x = _inputs(40, 30, 12)
    eps = 0.01
    g1 = margins.gap_gradient_l1(model, x)
    z = x @ w.T + b
    a, j = _top2(z)
    delta = -eps * torch.sign(w[a] - w[j])
    z_adv = (x + delta) @ w.T + b
    idx = torch.arange(40)
    drop = (z[idx, a] - z[idx, j]) - (z_adv[idx, a] - z_adv[idx, j])
    torch.testing.assert_close(eps * g1.double(), drop, rtol=1e-6, atol=0)


class _Net(nn.Module):
    """A small CNN with dropout and batch norm, so that a forward pass in train mode differs from eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(4 * 4 * 4, 16), nn.Tanh(), nn.Linear(16, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _trained_net() -> nn.Module:
    torch.manual_seed(0)
    net = _Net()
    with torch.no_grad():
        net(torch.rand(16, 1, 10, 10))  # running statistics that are not the defaults
    return net.train()


def test_gap_gradient_l1_of_a_cnn_matches_per_image_autograd_and_finite_differences():
    net = _trained_net()
    x = torch.rand(12, 1, 10, 10, generator=torch.Generator().manual_seed(1))
    g1 = margins.gap_gradient_l1(net, x, batch_size=5)
    assert net.training and net.head[1].training  # every submodule's mode is restored
    reference = copy.deepcopy(net).double().eval()  # float64, one image at a time
    for i in range(12):
        xi = x[i : i + 1].double().requires_grad_(True)
        z = reference(xi)
        a, j = _top2(z.detach())
        (grad,) = torch.autograd.grad((z[0, a] - z[0, j]).sum(), xi)
        assert g1[i].item() == pytest.approx(grad.abs().sum().item(), rel=1e-5)
        # central difference along sign(grad): the directional derivative there is ||grad||_1
        h, s = 1e-6, torch.sign(grad)
        with torch.no_grad():
            up, down = reference(xi + h * s), reference(xi - h * s)
        fd = ((up[0, a] - up[0, j]) - (down[0, a] - down[0, j])).item() / (2 * h)
        assert fd == pytest.approx(grad.abs().sum().item(), rel=1e-4)


def test_gap_gradient_l1_is_margin_drops_grad_l1_at_the_predicted_class():
    net = _trained_net()
    x = torch.rand(9, 1, 10, 10, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        predicted = net.eval()(x).argmax(1)
    net.train()
    drops = margins.margin_drops(net, x, predicted, eps=0.01, alpha=0.005, steps=1)
    torch.testing.assert_close(margins.gap_gradient_l1(net, x), drops["grad_l1"])


def test_gap_gradient_l1_of_no_images_and_its_refusals():
    net = _trained_net()
    assert margins.gap_gradient_l1(net, torch.zeros(0, 1, 10, 10)).shape == (0,)
    x = torch.rand(3, 1, 10, 10)
    with pytest.raises(ValueError, match=r"batch_size must be an integer >= 1 \(got 0\)"):
        margins.gap_gradient_l1(net, x, batch_size=0)
    with pytest.raises(ValueError, match=r"x must be in \[0, 1\] \(got min"):
        margins.gap_gradient_l1(net, x + 2)
    with pytest.raises(ValueError, match=r"x must be a floating-point tensor of shape \(N, C, H, W\) \(got list\)"):
        margins.gap_gradient_l1(net, [[0.5]])
    with pytest.raises(
        ValueError,
        match=r"model must be a model with at least 2 classes \(the logit gap needs two\) "
        r"\(got logits of shape \(3, 1\)\)",
    ):
        margins.gap_gradient_l1(nn.Sequential(nn.Flatten(), nn.Linear(100, 1)), x)
    assert net.training
