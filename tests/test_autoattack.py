"""Tests for advlogits.autoattack: AutoAttack no weaker than PGD, per-image results, seeding and restored state,
its attacks one by one (Square, the black-box check of masked gradients), and bad input refused before any compute."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advlogits._compat import import_autoattack
from advlogits.autoattack import adversary, autoattack_accuracy, autoattack_attacks_correct, autoattack_correct
from advlogits.evaluation import robust_accuracy

from helpers import CountingModel, accuracy_by_hand, linear_two_class

_X = torch.full((4, 1, 4, 4), 0.5)
_Y = torch.zeros(4, dtype=torch.int64)


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
    assert aa_acc < accuracy_by_hand(cnn, x, y) - 0.1


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


def unflippable_images() -> tuple[CountingModel, torch.Tensor, torch.Tensor]:
    """A model that counts its passes (from 0) and two images it labels itself: at eps 1e-4 no attack can flip them,
    so every attack makes all its iterations."""
    torch.manual_seed(0)
    model = CountingModel().eval()
    x = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    model.calls = 0
    return model, x, y


def passes_on_unflippable_images(**settings) -> int:
    """The model passes of the fast AutoAttack at ``settings`` on `unflippable_images`."""
    model, x, y = unflippable_images()
    assert autoattack_correct(model, x, y, eps=1e-4, version="fast", **settings).all()
    return model.calls


def test_n_targets_sets_how_many_target_classes_apgd_t_tries():
    """APGD-T runs its 100 iterations once per target class: 1 target class makes a ninth of the default's passes
    through it, and the result is the same."""
    calls = {n: passes_on_unflippable_images(n_targets=n) for n in (None, 1)}
    ce_only = calls[1] - (calls[None] - calls[1]) / 8  # the calls outside APGD-T: APGD-CE, checks
    assert 0 < ce_only < calls[1] < calls[None] and calls[None] - ce_only == pytest.approx(9 * (calls[1] - ce_only))


def test_n_iter_sets_how_many_iterations_apgd_makes():
    """APGD-CE and APGD-T make every iteration, one pass each: the passes grow linearly in ``n_iter``, AutoAttack's
    100 being the default; `autoattack_accuracy` passes it on."""
    calls = {n: passes_on_unflippable_images(n_targets=1, n_iter=n) for n in (10, 20, None)}
    assert calls[20] > calls[10] and calls[None] - calls[20] == 8 * (calls[20] - calls[10])
    model, x, y = unflippable_images()
    assert autoattack_accuracy(model, x, y, eps=1e-4, version="fast", n_targets=1, n_iter=10) == 1.0
    assert model.calls == calls[10], "the same passes"


@pytest.mark.slow
def test_n_iter_runs_apgd_as_autoattack_built_with_those_iterations(cnn, test_data):
    """The reference: AutoAttack's own APGD-CE, constructed with 12 iterations (its step-size schedule set by its
    constructor), flips exactly the images ours does with ``n_iter=12``."""
    x, y = test_data[0][:60], test_data[1][:60]
    ours = autoattack_attacks_correct(cnn, x, y, attacks=["apgd-ce"], eps=0.05, n_iter=12, seed=0)
    aa = import_autoattack()
    theirs = aa.AutoAttack(cnn, norm="Linf", eps=0.05, version="custom", attacks=["apgd-ce"], seed=0)
    theirs.apgd = aa.autopgd_base.APGDAttack(
        cnn, n_restarts=1, n_iter=12, eps=0.05, norm="Linf", seed=0, device=torch.device("cpu"), logger=theirs.logger
    )
    theirs.verbose = False
    cnn.eval()
    with torch.random.fork_rng(devices=[]):
        x_adv = theirs.run_standard_evaluation(x, y, batch_size=60)[0]
    with torch.no_grad():
        reference = cnn(x_adv).argmax(1) == y
    assert torch.equal(ours, reference)
    assert ours.sum() < (cnn(x).argmax(1) == y).sum(), "the attack flipped some images"


APGD_SCHEDULE = ("n_iter", "n_iter_orig", "n_iter_2", "n_iter_min", "size_decr")  # pyautoattack's attribute names


@pytest.mark.parametrize("n_iter", [None, 1, 5, 12, 50, 100, 250])
def test_adversary_gives_apgd_the_schedule_autoattack_builds_for_those_iterations(n_iter):
    """APGD's step-size checkpoints are set by its constructor from its iterations: configured afterwards, ours must
    equal those of an APGD attack constructed with them (AutoAttack's 100 by default)."""
    model = CountingModel().eval()
    ours = adversary(
        model, ["apgd-ce", "apgd-t"], eps=0.05, norm="linf", device=torch.device("cpu"), seed=0, n_targets=3,
        n_iter=n_iter,
    )  # fmt: skip
    reference = import_autoattack().autopgd_base.APGDAttack(model, n_iter=n_iter or 100, eps=0.05, norm="Linf")
    expected = {name: getattr(reference, name) for name in APGD_SCHEDULE}
    for attack in (ours.apgd, ours.apgd_targeted):
        assert {name: getattr(attack, name) for name in APGD_SCHEDULE} == expected
    assert ours.fab.n_iter == (n_iter or 100) and ours.apgd_targeted.n_target_classes == 3
    assert model.calls == 0, "configuring runs nothing"


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(norm="Linf"), r"norm must be one of 'linf', 'l2' \(got 'Linf'\)"),
        (dict(n_targets=0), r"n_targets must be an integer >= 1 \(got 0\)"),
        (dict(n_iter=0), r"n_iter must be an integer >= 1 \(got 0\)"),
        (dict(attacks=["apgd"]), r"attacks must be a non-empty list of distinct AutoAttack attacks"),
    ],
)
def test_adversary_refuses_bad_settings(kw, match):
    settings = dict(attacks=["apgd-ce"], eps=0.1, norm="linf", device=torch.device("cpu"), seed=0, n_targets=3)
    settings.update(kw)
    with pytest.raises(ValueError, match=match):
        adversary(CountingModel(), settings.pop("attacks"), **settings)


def test_autoattack_eps_zero_is_clean_accuracy(cnn, test_data):
    x, y = test_data[0][:100], test_data[1][:100]
    assert autoattack_accuracy(cnn, x, y, eps=0.0) == accuracy_by_hand(cnn, x, y)


def test_autoattack_correct_is_per_image_and_never_marks_a_misclassified_image(cnn, test_data):
    x, y = test_data[0][:60], test_data[1][:60]
    correct = autoattack_correct(cnn, x, y, eps=0.05, version="fast", batch_size=25)
    assert correct.dtype == torch.bool and correct.shape == (60,) and correct.device.type == "cpu"
    with torch.no_grad():
        clean = cnn(x).argmax(1) == y
    assert not (correct & ~clean).any()
    assert correct.sum().item() / 60 == autoattack_accuracy(cnn, x, y, eps=0.05, version="fast", batch_size=25)


def test_autoattack_rejects_models_with_fewer_than_four_classes():
    model = linear_two_class(torch.float32)
    x = torch.rand(8, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"model must be a model with at least 4 classes for AutoAttack \(got K=2\)"):
        autoattack_accuracy(model, x, torch.zeros(8, dtype=torch.int64), eps=0.1, version="fast")


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
    model = linear_two_class(torch.float32)
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
        (dict(n_iter=2.5), r"n_iter must be an integer >= 1 \(got 2.5\)"),
        (dict(eps=-0.1), r"eps must be a finite number >= 0 \(got -0.1\)"),
        (dict(norm="Linf"), r"norm must be one of 'linf', 'l2' \(got 'Linf'\)"),
        (dict(batch_size=0), r"batch_size must be an integer >= 1 \(got 0\)"),
        (dict(seed=0.5), r"seed must be an integer \(got 0.5\)"),
    ],
)
def test_autoattack_attacks_refuses_bad_input_before_compute(kw, match):
    model = CountingModel()
    with pytest.raises(ValueError, match=match):
        autoattack_attacks_correct(model, _X, _Y, **{**dict(attacks=["square"], eps=0.1), **kw})
    assert model.calls == 0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m: autoattack_accuracy(m, _X, _Y, eps=-0.1), r"eps must be a finite number >= 0 \(got -0.1\)"),
        (
            lambda m: autoattack_accuracy(m, _X, _Y, eps=0.1, norm="Linf"),
            r"norm must be one of 'linf', 'l2' \(got 'Linf'\)",
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
            r"y must be one label per row of x \(4 samples\) \(got 3 labels\)",
        ),
        (lambda m: autoattack_correct(m, _X[:0], _Y[:0], eps=0.1), r"x must be at least one sample \(got N=0\)"),
        (lambda m: autoattack_correct(m, _X, _Y, eps=0.1, n_targets=0), r"n_targets must be an integer >= 1 \(got 0\)"),
        (lambda m: autoattack_accuracy(m, _X, _Y, eps=0.1, n_iter=0), r"n_iter must be an integer >= 1 \(got 0\)"),
    ],
)
def test_autoattack_refuses_bad_input_before_compute(call, match):
    model = CountingModel()
    with pytest.raises(ValueError, match=match):
        call(model)
    assert model.calls == 0
