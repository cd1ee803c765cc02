"""Tests for advlogits.accel: GPU execution options (bf16 autocast, torch.compile, non-blocking copies), checked on
the CPU against fp32, and where computations run (`resolve_device`, `model_device`)."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch
from torch import nn

from advlogits import accel, profiles
from advlogits.accel import Autocast, accelerate, model_device, resolve_device, to_device
from advlogits.attacks import pgd
from advlogits.data import load_dataset
from advlogits.pipeline.measures import pgd_correct
from advlogits.pipeline.training import init_model, train_model
from advlogits.train import train_standard

from helpers import tiny_standard_config, train_config

CONFIG = tiny_standard_config(n_train=512)


@pytest.fixture(scope="module")
def trained() -> nn.Module:
    model, _ = train_model(dataclasses.replace(CONFIG, epochs=2, n_train=2048), device="cpu", progress=False)
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
    x_adv = pgd(
        accelerate(trained, precision="bf16"),
        x,
        y,
        eps=eps,
        alpha=0.025,
        steps=10,
        generator=torch.Generator().manual_seed(0),
    )
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
    model = init_model(CONFIG)
    history = train_standard(model, x, y, train_config(precision=precision, compile=compile), progress=False)
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
    torch.testing.assert_close(
        torch.tensor(compiled["batch_loss"]), torch.tensor(eager["batch_loss"]), rtol=1e-3, atol=1e-4
    )
    for a, b in zip(compiled_model.parameters(), eager_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


def test_config_and_profile_pass_the_options_to_training():
    p = profiles.resolve("smoke", device="cpu", precision="bf16", compile="false")
    assert p.standard().precision == "bf16" and p.adversarial().precision == "bf16"
    assert p.sweep(0.05).precision == "bf16" and p.standard().compile is False
    with pytest.raises(ValueError, match=r"TrainConfig: precision must be one of 'fp32', 'bf16' \(got 'fp16'\)"):
        dataclasses.replace(CONFIG, precision="fp16")
    with pytest.raises(ValueError, match=r"TrainConfig: compile must be True or False \(got 1\)"):
        dataclasses.replace(CONFIG, compile=1)
    with pytest.raises(profiles.ProfileError, match=r"compile must be True or False \(got 'yes please'\)"):
        profiles.resolve("smoke", compile="yes please")
    with pytest.raises(ValueError, match=r"precision must be one of 'fp32', 'bf16' \(got 'half'\)"):
        accelerate(nn.Linear(2, 2), precision="half")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"compile must be True or False \(got 'no'\)"):
        accelerate(nn.Linear(2, 2), compile="no")  # type: ignore[arg-type]


def test_to_device_on_the_cpu_is_a_plain_copy_target():
    t = torch.arange(4)
    assert to_device(t, torch.device("cpu")) is t
    moved = to_device(t, torch.device("meta"))  # any other device: an ordinary copy there
    assert moved.device.type == "meta" and moved.shape == t.shape


# ---------------------------------------------------------------------------------------------------------
# resolve_device, model_device
# ---------------------------------------------------------------------------------------------------------


def _machine(monkeypatch: pytest.MonkeyPatch, *, cuda: int, mps: bool) -> None:
    """Pretend this machine has ``cuda`` CUDA devices and MPS or not (resolve_device only asks torch)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
    monkeypatch.setattr(accel, "_mps_available", lambda: mps)


def test_resolve_device_auto_picks_the_best_available(monkeypatch):
    expected = "cuda" if torch.cuda.is_available() else "mps" if accel._mps_available() else "cpu"
    assert resolve_device("auto") == expected  # this machine, as it is
    _machine(monkeypatch, cuda=2, mps=True)
    assert resolve_device("auto") == "cuda"
    _machine(monkeypatch, cuda=0, mps=True)
    assert resolve_device("auto") == "mps"
    _machine(monkeypatch, cuda=0, mps=False)
    assert resolve_device("auto") == "cpu"


def test_resolve_device_keeps_an_available_device(monkeypatch):
    assert resolve_device("cpu") == "cpu"
    _machine(monkeypatch, cuda=2, mps=True)
    assert resolve_device("cuda") == "cuda"
    assert resolve_device("cuda:0") == "cuda:0" and resolve_device("cuda:1") == "cuda:1"
    assert resolve_device("mps") == "mps"


def test_resolve_device_refuses_cuda_on_a_machine_without_cuda(monkeypatch):
    _machine(monkeypatch, cuda=0, mps=False)
    for device in ("cuda", "cuda:0"):
        with pytest.raises(
            ValueError,
            match=rf"^device must be 'cpu' or 'auto' on this machine \(got '{device}'\); "
            r"CUDA is not available here$",
        ):
            resolve_device(device)
    with pytest.raises(
        ValueError,
        match=r"^device must be 'cpu' or 'auto' on this machine \(got 'mps'\); "
        r"MPS is not available here$",
    ):
        resolve_device("mps")


def test_resolve_device_refuses_a_cuda_index_that_does_not_exist(monkeypatch):
    _machine(monkeypatch, cuda=2, mps=False)
    with pytest.raises(
        ValueError,
        match=r"^device must be a CUDA device below cuda:2 \(got 'cuda:2'\); "
        r"only 2 CUDA device\(s\) exist$",
    ):
        resolve_device("cuda:2")


@pytest.mark.parametrize("bad", ["gpu", "CUDA", "cuda:", "cuda:x", "cuda:-1", "", "cpu:0", None, 0])
def test_resolve_device_refuses_a_bad_device(bad):
    with pytest.raises(
        ValueError,
        match=rf"^device must be one of 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' "
        rf"\(got {re.escape(repr(bad))}\)$",
    ):
        resolve_device(bad)  # type: ignore[arg-type]


def test_model_device_reads_the_first_parameter_or_buffer():
    assert model_device(nn.Linear(2, 2)) == torch.device("cpu")
    assert model_device(nn.Linear(2, 2, device="meta")) == torch.device("meta")
    buffers_only = nn.BatchNorm1d(3, affine=False, device="meta")  # running statistics, no parameters
    assert not list(buffers_only.parameters()) and model_device(buffers_only) == torch.device("meta")
    # a stateless model runs where the fallback says
    assert model_device(nn.ReLU()) == torch.device("cpu")
    assert model_device(nn.ReLU(), fallback="meta") == torch.device("meta")
    assert model_device(nn.Sequential(), fallback=torch.device("meta")) == torch.device("meta")
    # the parameter decides, not the fallback
    assert model_device(nn.Linear(2, 2, device="meta"), fallback="cpu") == torch.device("meta")


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


def test_resolve_device_accepts_a_torch_device():
    assert resolve_device(torch.device("cpu")) == "cpu"
