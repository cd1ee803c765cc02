"""Tests for advlogits.evaluation: clean accuracy one way, accuracy under one attack batch by batch (a shared
generator, a callable attack), the model's state left alone, and bad input refused before any compute."""

from __future__ import annotations

import copy

import pytest
import torch

from advlogits.attacks import fgsm, pgd
from advlogits.evaluation import accuracy, attack_correct, clean_correct, robust_accuracy

from helpers import (
    BatchNormDropoutNet,
    CountingModel,
    accuracy_by_hand,
    assert_same_state,
    model_state,
)

# ----------------------------------------------------------------------------------------------------
# clean accuracy


def test_clean_accuracy_matches_argmax_for_any_batch_size(cnn, test_data):
    x, y = test_data
    expected = accuracy_by_hand(cnn, x, y)
    assert 0.6 < expected < 0.95
    for batch_size in (1000, 500, 64, 7):
        assert accuracy(cnn, x, y, batch_size=batch_size) == pytest.approx(expected, abs=1e-12)
        correct = clean_correct(cnn, x, y, batch_size=batch_size)
        assert correct.dtype == torch.bool and correct.shape == (len(y),) and correct.device.type == "cpu"
        assert correct.sum().item() == round(expected * len(y))


def test_accuracy_of_no_images_is_zero_and_the_mode_is_restored(cnn, test_data):
    x, y = test_data
    model = copy.deepcopy(cnn).train()
    assert accuracy(model, x[:0], y[:0]) == 0.0
    assert accuracy(model, x[:100], y[:100]) == accuracy_by_hand(cnn, x[:100], y[:100])
    assert model.training


# ----------------------------------------------------------------------------------------------------
# accuracy under one attack


def test_robust_accuracy_shares_the_generator_across_batches(cnn, test_data):
    x, y = test_data[0][:250], test_data[1][:250]
    kw = dict(eps=0.05, alpha=0.0125, steps=5)
    got = robust_accuracy(cnn, x, y, attack="pgd", batch_size=100, **kw, generator=torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    x_adv = torch.cat([pgd(cnn, x[i : i + 100], y[i : i + 100], **kw, generator=gen) for i in range(0, 250, 100)])
    assert got == accuracy_by_hand(cnn, x_adv, y)
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
    assert got == accuracy_by_hand(cnn, torch.zeros_like(x), y)


def test_robust_accuracy_fgsm_matches_fgsm(cnn, test_data):
    x, y = test_data
    got = robust_accuracy(cnn, x, y, attack="fgsm", batch_size=500, eps=0.05)
    assert got == accuracy_by_hand(cnn, fgsm(cnn, x, y, eps=0.05), y)
    assert got < accuracy_by_hand(cnn, x, y) - 0.05


def test_attack_correct_is_per_image_and_robust_accuracy_its_mean(cnn, test_data):
    x, y = test_data[0][:120], test_data[1][:120]
    kw = dict(attack="pgd", batch_size=50, eps=0.05, alpha=0.0125, steps=5)
    correct = attack_correct(cnn, x, y, **kw, generator=torch.Generator().manual_seed(1))
    assert correct.dtype == torch.bool and correct.shape == (120,) and correct.device.type == "cpu"
    assert not (correct & ~clean_correct(cnn, x, y)).any(), "PGD never repairs a misclassified image"
    assert robust_accuracy(cnn, x, y, **kw, generator=torch.Generator().manual_seed(1)) == correct.sum().item() / 120


def test_evaluation_restores_modes_and_leaves_parameters_alone(test_data):
    x, y = test_data[0][:10], test_data[1][:10]
    torch.manual_seed(0)
    model = BatchNormDropoutNet().train()
    model.head.eval()  # mixed modes must be restored module by module
    model.head[1].weight.grad = torch.full_like(model.head[1].weight, 0.5)
    before = model_state(model)
    gen = torch.Generator().manual_seed(0)
    robust_accuracy(model, x, y, attack="pgd", batch_size=4, eps=0.1, alpha=0.03, steps=2, generator=gen)
    robust_accuracy(model, x, y, attack="fgsm", batch_size=4, eps=0.1)
    accuracy(model, x, y, batch_size=4)
    assert_same_state(before, model_state(model))


# ----------------------------------------------------------------------------------------------------
# bad input: ValueError naming the parameter, raised before any compute


_X = torch.full((4, 1, 4, 4), 0.5)
_Y = torch.zeros(4, dtype=torch.int64)
_PGD = dict(eps=0.1, alpha=0.01, steps=2)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda m: robust_accuracy(m, _X, _Y, attack="pgd", batch_size=0, **_PGD),
            r"batch_size must be an integer >= 1 \(got 0\)",
        ),
        (
            lambda m: robust_accuracy(m, _X, _Y, attack="cw", batch_size=4),
            r"attack must be one of 'fgsm', 'pgd' \(got 'cw'\); or pass a callable",
        ),
        (
            lambda m: robust_accuracy(m, _X, _Y, attack="none", batch_size=4),
            r"attack must be one of 'fgsm', 'pgd' \(got 'none'\); .*clean accuracy is accuracy\(model, x, y\)",
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
            lambda m: robust_accuracy(m, _X, _Y, attack="pgd", batch_size=4, **_PGD, shrink="yes"),
            r"shrink must be True or False \(got 'yes'\)",
        ),
        (
            lambda m: robust_accuracy(m, _X, _Y, attack="fgsm", batch_size=4, eps=-1.0),
            r"eps must be a finite number >= 0",
        ),
        (
            lambda m: robust_accuracy(m, _X[:0], _Y[:0], attack="fgsm", batch_size=4, eps=0.1),
            r"x must be at least one sample \(got N=0\)",
        ),
        (
            lambda m: robust_accuracy(m, _X + 0.6, _Y, attack="fgsm", batch_size=4, eps=0.1),
            r"x must be in \[0, 1\] \(got min 1\.1",
        ),
        (lambda m: accuracy(m, _X, _Y, batch_size=0), r"batch_size must be an integer >= 1 \(got 0\)"),
        (lambda m: accuracy(m, _X, _Y[:3]), r"y must be one label per row of x \(4 samples\) \(got 3 labels\)"),
        (lambda m: clean_correct(m, _X - 0.6, _Y), r"x must be in \[0, 1\] \(got min -0\.1"),
    ],
)
def test_bad_input_raises_before_compute(call, match):
    model = CountingModel()
    with pytest.raises(ValueError, match=match):
        call(model)
    assert model.calls == 0
