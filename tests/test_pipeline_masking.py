"""advlogits.pipeline.masking: the checks of gradient masking (robust accuracy against the radius, Square, a transfer
attack) on a small trained CNN, and on the same CNN made to mask its gradients by rounding its input to 8 bits."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from advlogits.attacks import pgd
from advlogits.data import load_dataset
from advlogits.evaluation import attack_correct
from advlogits.margins import gap_gradient_l1
from advlogits.models import build_for
from advlogits.pipeline.masking import masking_checks
from advlogits.predict import predict_logits
from advlogits.train import train_standard

from helpers import CountingModel, train_config

EPS = 0.05
CHECK = dict(eps=EPS, alpha=EPS / 4, steps=20, radii=(EPS, 2 * EPS, 3 * EPS, 0.5), seed=0, square_queries=1000)


class RoundedInput(nn.Module):
    """``model`` on its input rounded to 8 bits: the same classifier on 8-bit images, with a zero input gradient
    (the derivative of rounding), so white-box PGD only gets its random start while a black-box attack or a
    transfer attack sees the model as it is."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.round(x * 255) / 255)


def _train(x: torch.Tensor, y: torch.Tensor, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = build_for("cnn-small", "fashion-mnist")
    train_standard(model, x, y, train_config(epochs=3, batch_size=32, seed=seed), progress=False)
    return model.eval()


@pytest.fixture(scope="module")
def setting() -> dict:
    """Two small CNNs trained on 500 Fashion-MNIST images (~70% clean accuracy), the model and its teacher (the
    source of the transfer attack), and 100 test images."""
    x, y = load_dataset("fashion-mnist", "train", n=500, seed=0)
    x_test, y_test = load_dataset("fashion-mnist", "test", n=100, seed=0)
    return {"model": _train(x, y, 0), "teacher": _train(x, y, 1), "x": x_test, "y": y_test}


def _white_box_robust(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """What the caller passes as ``robust``: correct clean, under PGD-CE and under PGD-CW (the book adds AutoAttack)."""
    robust = predict_logits(model, x).argmax(1) == y
    for loss in ("ce", "cw"):
        robust &= attack_correct(
            model,
            x,
            y,
            attack="pgd",
            batch_size=100,
            eps=EPS,
            alpha=EPS / 4,
            steps=20,
            loss=loss,
            generator=torch.Generator().manual_seed(0),
            early_stop=True,
        )
    return robust


@pytest.mark.slow
def test_a_genuine_model_falls_to_zero_and_is_not_flagged(setting):
    model, teacher, x, y = setting["model"], setting["teacher"], setting["x"], setting["y"]
    robust = _white_box_robust(model, x, y)
    assert 10 <= robust.sum() <= 90, "some images must survive the white-box attacks for the check to mean anything"
    out = masking_checks(model, teacher, x, y, robust=robust, **CHECK)

    assert out["radii"] == [EPS, 2 * EPS, 3 * EPS, 0.5]
    curve = out["robust_at_radius"]
    assert len(curve) == 4 and all(b <= a for a, b in zip(curve, curve[1:])), curve
    assert curve[-1] == 0.0 and curve[0] > 0.0
    assert curve[0] <= (predict_logits(model, x).argmax(1) == y).float().mean().item()
    assert out["square_breaks"] == 0 and out["transfer_breaks"] == 0 and out["masked"] is False
    assert out["square_correct"] == robust.tolist()  # nothing broken by Square, and non-robust images are False

    # the transfer attack, computed independently: PGD-CE against the teacher, then the model's predictions
    x_adv = pgd(teacher, x, y, eps=EPS, alpha=EPS / 4, steps=20, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert out["transfer_correct"] == (model(x_adv).argmax(1) == y).tolist()
    assert not all(out["transfer_correct"])

    assert json.loads(json.dumps(out)) == out  # JSON-able as it is
    assert masking_checks(model, teacher, x, y, robust=robust.tolist(), **CHECK) == out  # deterministic for a seed


@pytest.mark.slow
def test_a_model_that_masks_its_gradients_is_flagged(setting):
    model, teacher, x, y = setting["model"], setting["teacher"], setting["x"], setting["y"]
    masked = RoundedInput(model)
    assert torch.equal(predict_logits(masked, x), predict_logits(model, x))  # the same classifier on 8-bit images
    assert not gap_gradient_l1(masked, x).any()  # but its input gradient is zero
    robust = _white_box_robust(masked, x, y)
    assert robust.sum() >= _white_box_robust(model, x, y).sum() + 10  # so white-box PGD overestimates its robustness
    out = masking_checks(masked, teacher, x, y, robust=robust, **CHECK)

    assert out["masked"] is True
    assert out["square_breaks"] > 0 and out["transfer_breaks"] > 0
    assert out["robust_at_radius"][-1] > 0  # PGD at radius 0.5 does not bring it to 0 either
    square, transfer = torch.tensor(out["square_correct"]), torch.tensor(out["transfer_correct"])
    assert out["square_breaks"] == int((robust & ~square).sum()) and not (square & ~robust).any()
    assert out["transfer_breaks"] == int((robust & ~transfer).sum())


_X = torch.full((4, 1, 4, 4), 0.5)
_Y = torch.zeros(4, dtype=torch.int64)
_ROBUST = torch.zeros(4, dtype=torch.bool)
_RADII = r"radii must be a non-empty increasing list of radii in \(0, 1\] pixel units"


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (
            dict(robust=torch.zeros(3, dtype=torch.bool)),
            r"robust must be a bool tensor of shape \(4,\), one white-box "
            r"verdict per image \(got torch.bool tensor of shape \(3,\)\)",
        ),
        (dict(robust=torch.zeros(4)), r"robust must be a bool tensor of shape \(4,\).* \(got torch.float32 tensor"),
        (dict(robust=[0, 1, 0, 1]), r"robust must be a bool tensor of shape \(4,\).* \(got int64 values\)"),
        (dict(robust=None), r"robust must be a bool tensor of shape \(4,\).* \(got NoneType\)"),
        (dict(eps=0.0), r"eps must be a finite number > 0 and <= 1 \(got 0.0\)"),
        (dict(eps=2.0), r"eps must be a finite number > 0 and <= 1 \(got 2.0\)"),
        (dict(alpha=0.0), r"alpha must be a finite number > 0 \(got 0.0\)"),
        (dict(steps=0), r"steps must be an integer >= 1 \(got 0\)"),
        (dict(radii=()), _RADII + r" \(got \(\)\); e.g. \(eps, 2 \* eps, 3 \* eps, 0.5\)"),
        (dict(radii=(0.2, 0.1)), _RADII + r" \(got \(0.2, 0.1\)\)"),
        (dict(radii=(0.1, 0.1)), _RADII + r" \(got \(0.1, 0.1\)\)"),
        (dict(radii=(0.1, 2)), _RADII + r" \(got \(0.1, 2\)\)"),
        (dict(radii=(0.0, 0.1)), _RADII + r" \(got \(0.0, 0.1\)\)"),
        (dict(radii=0.5), _RADII + r" \(got 0.5\)"),
        (dict(radii=(True,)), _RADII + r" \(got \(True,\)\)"),
        (dict(seed=-1), r"seed must be an integer >= 0 and <= 4294967295 \(got -1\)"),
        (dict(square_queries=0), r"square_queries must be an integer >= 1 \(got 0\)"),
        (dict(batch_size=0), r"batch_size must be an integer >= 1 \(got 0\)"),
        (dict(x=_X + 1), r"x must be in \[0, 1\] \(got min 1.5, max 1.5\)"),
        (dict(x=_X[:0], y=_Y[:0], robust=_ROBUST[:0]), r"x must be at least one image \(got N=0\)"),
        (
            dict(y=_Y[:3]),
            r"y must be of shape \(4,\), one class index per sample \(got torch.int64 tensor of "
            r"shape \(3,\)\)",
        ),
        (dict(teacher=None), r"teacher must be a torch.nn.Module \(got NoneType\)"),
    ],
)
def test_bad_arguments_are_refused_before_compute(kw, match):
    model, teacher = CountingModel(), CountingModel()
    args = dict(
        model=model,
        teacher=teacher,
        x=_X,
        y=_Y,
        robust=_ROBUST,
        eps=0.1,
        alpha=0.025,
        steps=2,
        radii=(0.1, 0.5),
        seed=0,
    )
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        masking_checks(args.pop("model"), args.pop("teacher"), args.pop("x"), args.pop("y"), **args)
    assert model.calls == 0 and teacher.calls == 0


def test_robust_must_not_mark_a_misclassified_image():
    model = CountingModel()
    with torch.no_grad():
        y = (predict_logits(model, _X).argmax(1) + 1) % 10  # every image misclassified
    with pytest.raises(
        ValueError,
        match=r"robust must be False wherever the model misclassifies the clean image "
        r"\(got True for 2 misclassified image\(s\)\)",
    ):
        masking_checks(
            model,
            model,
            _X,
            y,
            robust=torch.tensor([True, False, True, False]),
            eps=0.1,
            alpha=0.025,
            steps=2,
            radii=(0.1,),
            seed=0,
        )
