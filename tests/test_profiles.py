"""Profiles: defaults, overrides, and a clear error for every bad value before any compute."""

from __future__ import annotations

import pytest
import torch

from advlogits import profiles
from advlogits.profiles import ProfileError, resolve


@pytest.mark.parametrize("name", ["smoke", "cpu", "paper"])
def test_every_profile_resolves_on_this_machine(name):
    p = resolve(name, device="cpu")
    assert p.name == name and p.device == "cpu"
    assert p.standard().method == "standard" and p.adversarial().method == "adversarial"


def test_cpu_is_the_default_and_auto_device_resolves():
    p = resolve()
    assert p.name == "cpu" and p.dataset == "fashion-mnist" and p.eps == 0.1
    assert p.device == ("cuda" if torch.cuda.is_available() else p.device)
    assert p.device in {"cpu", "cuda", "mps"}
    assert p.eval_steps >= 20, "PAPER.md: evaluation PGD uses at least 20 steps"


def test_paper_profile_matches_the_literature_setting():
    p = resolve("paper", device="cpu")
    assert (p.dataset, p.arch) == ("cifar10", "preact-resnet18")
    assert p.eps == pytest.approx(8 / 255) and p.eval_alpha == pytest.approx(2 / 255)


def test_eps_override_scales_step_sizes_and_strings_are_coerced():
    base = resolve("cpu", device="cpu")
    p = resolve("cpu", device="cpu", eps="0.2")
    assert p.eps == 0.2
    assert p.alpha == pytest.approx(base.alpha * 2) and p.eval_alpha == pytest.approx(base.eval_alpha * 2)
    assert resolve("cpu", device="cpu", eps=0.2, alpha=0.01).alpha == 0.01
    assert resolve("cpu", device="cpu", epochs="3").epochs == 3
    assert resolve("cpu", device="cpu", eps_sweep="0.05, 0.1").eps_sweep == (0.05, 0.1)


def test_none_overrides_keep_the_profile_value():
    assert resolve("smoke", device="cpu", eps=None, seed=None).eps == resolve("smoke", device="cpu").eps


def test_adversarial_config_of_another_eps_scales_alpha():
    p = resolve("cpu", device="cpu")
    c = p.adversarial(eps=0.2)
    assert c.eps == 0.2 and c.alpha == pytest.approx(2 * p.alpha) and c.steps == p.steps
    assert p.adversarial(seed=3).seed == 3 and p.standard(seed=3).seed == 3


BAD = [
    (dict(name="gpu-fast"), "profile must be one of smoke, cpu, paper"),
    (dict(eps=-1), r"eps must be in \(0, 1\)"),
    (dict(eps=0), r"eps must be in \(0, 1\)"),
    (dict(eps=1.5), r"eps must be in \(0, 1\)"),
    (dict(eps="abc"), "eps must be a number"),
    (dict(alpha=0.5), r"alpha must be in \(0, eps=0.1\]"),
    (dict(eval_alpha=0), r"eval_alpha must be in \(0, eps=0.1\]"),
    (dict(steps=0), "steps must be an integer >= 1"),
    (dict(eval_steps=0), "eval_steps must be an integer >= 1"),
    (dict(epochs=0), "epochs must be an integer >= 1"),
    (dict(epochs=2.5), "epochs must be an integer"),
    (dict(batch_size=-4), "batch_size must be an integer >= 1"),
    (dict(seed=-1), "seed must be an integer >= 0"),
    (dict(arch="vit"), "arch must be one of cnn-small, cnn, preact-resnet18, wrn-34-10"),
    (dict(arch="preact-resnet18"), "does not fit dataset 'fashion-mnist'"),
    (dict(dataset="mnist"), "dataset must be one of fashion-mnist, cifar10"),
    (dict(n_train=70_000), r"n_train must be None or in \[1, 60000\]"),
    (dict(n_eval=0), r"n_eval must be in \[1, 10000\]"),
    (dict(n_autoattack=5000), r"n_autoattack must be in \[0, n_eval=1000\]"),
    (dict(lr=0), "lr must be > 0"),
    (dict(temperature=-1), "temperature must be > 0"),
    (dict(autoattack_version="plus"), "autoattack_version must be one of fast, standard"),
    (dict(eps_sweep=(0.1, 2.0)), "eps_sweep must be one or more radii"),
    (dict(seeds=(-1,)), "seeds must be integers >= 0"),
    (dict(device="tpu"), "device must be one of 'auto', 'cpu', 'cuda', 'cuda:N', 'mps'"),
    (dict(epoch=3), "unknown parameter 'epoch'; profile parameters are:"),
]


@pytest.mark.parametrize("kwargs, message", BAD, ids=[m[:30] for _, m in BAD])
def test_bad_values_raise_a_clear_error(kwargs, message):
    kwargs = dict(kwargs)
    name = kwargs.pop("name", "cpu")
    kwargs.setdefault("device", "cpu")
    with pytest.raises(ProfileError, match=message):
        resolve(name, **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_cuda_is_refused(device):
    with pytest.raises(ProfileError, match=f"device='{device}' but CUDA is not available.*device='cpu'"):
        resolve("cpu", device=device)


def test_profile_errors_are_value_errors():
    assert issubclass(ProfileError, ValueError)
    assert set(profiles.PROFILES) == {"smoke", "cpu", "paper"}


def test_sweep_models_use_the_reduced_budget():
    p = resolve("cpu", device="cpu")
    c = p.sweep(0.2)
    assert (c.eps, c.n_train, c.epochs, c.method) == (0.2, p.sweep_n_train, p.sweep_epochs, "adversarial")
    assert c.alpha == pytest.approx(p.alpha * 2)
    with pytest.raises(ProfileError, match=r"student_n_train must be None or in \[1, 60000\]"):
        resolve("cpu", device="cpu", student_n_train=0)
