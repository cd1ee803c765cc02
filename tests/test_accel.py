"""GPU execution options (bf16 autocast, torch.compile, non-blocking copies), checked on the CPU against fp32."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from advlogits import profiles
from advlogits.accel import Autocast, accelerate, to_device
from advlogits.attacks import pgd
from advlogits.data import load_dataset
from advlogits.experiments import model_for, pgd_correct, train_from_config
from advlogits.train import TrainConfig, train_standard

CONFIG = TrainConfig(dataset="fashion-mnist", arch="cnn-small", method="standard", epochs=1, batch_size=64,
                     lr=0.05, weight_decay=5e-4, n_train=512, n_val=64, seed=0)


@pytest.fixture(scope="module")
def trained() -> nn.Module:
    model, _ = train_from_config(dataclasses.replace(CONFIG, epochs=2, n_train=2048), device="cpu", progress=False)
    return model


@pytest.fixture(scope="module")
def test_images() -> tuple[torch.Tensor, torch.Tensor]:
    return load_dataset("fashion-mnist", "test", n=200, seed=0)


def test_autocast_shares_weights_and_returns_float32_logits_close_to_fp32(trained, test_images):
    x, _ = test_images
    wrapped = accelerate(trained, precision="bf16")
    assert isinstance(wrapped, Autocast) and wrapped.module is trained
    assert {p.data_ptr() for p in wrapped.parameters()} == {p.data_ptr() for p in trained.parameters()}
    with torch.no_grad():
        low, full = wrapped(x), trained(x)
    assert low.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa: logits agree to a few percent of their scale, predictions almost always
    assert (low - full).abs().max() < 0.05 * full.abs().max()
    assert (low.argmax(1) == full.argmax(1)).float().mean() >= 0.97
    wrapped.train()
    assert trained.training
    wrapped.eval()
    assert not trained.training


def test_fp32_is_the_model_itself():
    model = nn.Linear(3, 2)
    assert accelerate(model) is model


def test_pgd_under_bf16_stays_in_the_ball_and_matches_fp32_robust_accuracy(trained, test_images):
    x, y = test_images
    eps = 0.1
    x_adv = pgd(accelerate(trained, precision="bf16"), x, y, eps=eps, alpha=0.025, steps=10,
                generator=torch.Generator().manual_seed(0))
    assert x_adv.dtype == torch.float32
    assert (x_adv - x).abs().max() <= eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    args = dict(eps=eps, alpha=0.025, steps=10, seed=0)
    low = pgd_correct(accelerate(trained, precision="bf16"), x, y, **args).float().mean().item()
    full = pgd_correct(trained, x, y, **args).float().mean().item()
    clean = (trained(x).argmax(1) == y).float().mean().item()
    assert full < clean - 0.2, "the attack must bite for the comparison to mean anything"
    assert abs(low - full) <= 0.05


def _train(precision: str, compile: bool) -> tuple[nn.Module, dict]:
    x, y = load_dataset("fashion-mnist", "train", n=512, seed=0)
    model = model_for(CONFIG)
    history = train_standard(model, x, y, epochs=1, batch_size=64, lr=0.05, seed=0, progress=False,
                             precision=precision, compile=compile)
    return model, history


def test_bf16_training_follows_fp32_training():
    full_model, full = _train("fp32", False)
    low_model, low = _train("bf16", False)
    assert all(p.dtype == torch.float32 for p in low_model.parameters()), "master weights stay float32"
    assert full_model.state_dict().keys() == low_model.state_dict().keys()
    losses = torch.tensor([full["batch_loss"], low["batch_loss"]])
    assert losses[1, 0] == pytest.approx(losses[0, 0].item(), rel=0.02)  # same start, bf16 rounding only
    assert (losses[1] - losses[0]).abs().mean() < 0.1 * losses[0].mean()
    assert low["train_loss"][0] < losses[1, 0], "it learns"


@pytest.mark.slow
def test_compiled_training_matches_eager_training():
    """torch.compile (inductor, C++ on the CPU) trains the same weights as eager mode, up to float reassociation."""
    eager_model, eager = _train("fp32", False)
    compiled_model, compiled = _train("fp32", True)
    assert compiled_model.state_dict().keys() == eager_model.state_dict().keys(), "weights are saved unwrapped"
    torch.testing.assert_close(torch.tensor(compiled["batch_loss"]), torch.tensor(eager["batch_loss"]),
                               rtol=1e-3, atol=1e-4)
    for a, b in zip(compiled_model.parameters(), eager_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


def test_config_and_profile_pass_the_options_to_training():
    p = profiles.resolve("smoke", device="cpu", precision="bf16", compile="false")
    assert p.standard().precision == "bf16" and p.adversarial().precision == "bf16"
    assert p.sweep(0.05).precision == "bf16" and p.standard().compile is False
    with pytest.raises(ValueError, match=r"TrainConfig: precision must be one of fp32, bf16 \(got 'fp16'\)"):
        dataclasses.replace(CONFIG, precision="fp16")
    with pytest.raises(ValueError, match=r"TrainConfig: compile must be True or False \(got 1\)"):
        dataclasses.replace(CONFIG, compile=1)
    with pytest.raises(profiles.ProfileError, match=r"compile must be True or False \(got 'yes please'\)"):
        profiles.resolve("smoke", compile="yes please")
    with pytest.raises(ValueError, match=r"precision must be one of fp32, bf16 \(got 'half'\)"):
        accelerate(nn.Linear(2, 2), precision="half")  # type: ignore[arg-type]


def test_to_device_on_the_cpu_is_a_plain_copy_target():
    t = torch.arange(4)
    assert to_device(t, torch.device("cpu")) is t


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pgd_never_synchronises_with_the_host_on_cuda(trained, test_images):
    x, y = (t.cuda() for t in test_images)
    model = accelerate(trained.cuda(), precision="bf16")
    torch.cuda.set_sync_debug_mode("error")  # any implicit device-to-host sync raises
    try:
        pgd(model, x, y, eps=0.1, alpha=0.025, steps=5)  # random start drawn on the host, then copied
    finally:
        torch.cuda.set_sync_debug_mode("default")
        trained.cpu()
