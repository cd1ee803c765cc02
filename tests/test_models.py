"""Tests for advlogits.models: shapes, the Normalize layer, parameter counts against published numbers,
forward passes against RobustBench's independent implementations, and offline RobustBench loading."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from advlogits._compat import import_robustbench_utils
from advlogits.data import DATASET_INFO, DATASETS
from advlogits.models import ARCHS, ARCHS_FOR, Normalize, WideResNet, build_for, build_model, load_robustbench

from helpers import PICKLE_FORMATS, code_running_bytes, online, robustbench_zoo_model, write_robustbench_checkpoint


@pytest.fixture(scope="module")
def robustbench() -> SimpleNamespace:
    """RobustBench's ResNet and WideResNet modules (the paper extra), imported by the tests that compare with it or
    load its models (a second and a half of import, paid by those tests only); without the extra they skip, naming
    it and how to install it."""
    try:  # aliases autoattack first: `import robustbench` alone fails where only pyautoattack is installed
        import_robustbench_utils()
    except ModuleNotFoundError as missing:
        pytest.skip(str(missing))
    from robustbench.model_zoo.architectures import resnet, wide_resnet

    return SimpleNamespace(resnet=resnet, wrn=wide_resnet)


FMNIST_STATS = ((0.2860,), (0.3530,))
CIFAR_STATS = ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616))
RB_NAME = "Ding2020MMA"  # smallest CIFAR-10 Linf zoo entry: a WRN-28-4, 5.8M parameters


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _copy_in_order(src: nn.Module, dst: nn.Module) -> None:
    """Copy ``src``'s state into ``dst`` entry by entry, in registration order (same layout, other names)."""
    src_state, dst_state = list(src.state_dict().values()), dst.state_dict()
    assert len(src_state) == len(dst_state)
    for (key, target), value in zip(dst_state.items(), src_state):
        assert target.shape == value.shape, key
        target.copy_(value)


def _randomise_bn(model: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial BN statistics and affine parameters, so eval-mode comparisons test them too."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=generator))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=generator))
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=generator))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=generator))


# ---------------------------------------------------------------------------------------------
# build_model
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arch", "in_channels", "size"),
    [
        ("cnn-small", None, 28),
        ("cnn", None, 28),
        ("cnn-small", 3, 32),
        ("cnn", 3, 32),
        ("preact-resnet18", None, 32),
        ("preact-resnet18", 1, 28),
    ],
)
def test_output_shape(arch: str, in_channels: int | None, size: int) -> None:
    torch.manual_seed(0)
    model = build_model(arch, in_channels=in_channels).eval()  # type: ignore[arg-type]
    c = in_channels or (1 if arch.startswith("cnn") else 3)
    with torch.no_grad():
        logits = model(torch.rand(3, c, size, size))
    assert logits.shape == (3, 10) and torch.isfinite(logits).all()


def test_num_classes() -> None:
    torch.manual_seed(0)
    with torch.no_grad():
        assert build_model("cnn-small", num_classes=7)(torch.rand(2, 1, 28, 28)).shape == (2, 7)
        assert build_model("preact-resnet18", num_classes=100).eval()(torch.rand(1, 3, 32, 32)).shape == (1, 100)


def test_small_wideresnet_forward() -> None:
    # WRN-34-10 itself is too slow for a unit-test forward; the same class at depth 16, width 2 is not.
    torch.manual_seed(0)
    net = WideResNet(3, 10, depth=16, width=2).eval()
    with torch.no_grad():
        assert net(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match=r"depth must be 6n \+ 4 \(e.g. 28, 34\) for a WideResNet \(got 30\)"):
        WideResNet(3, 10, depth=30, width=2)


@pytest.mark.parametrize(
    ("arch", "in_channels", "stats"),
    [
        ("cnn-small", None, FMNIST_STATS),
        ("cnn", None, FMNIST_STATS),
        ("preact-resnet18", None, CIFAR_STATS),
        ("cnn", 3, CIFAR_STATS),
    ],
)
def test_normalize_is_first_and_closed_form(
    arch: str, in_channels: int | None, stats: tuple[tuple[float, ...], tuple[float, ...]]
) -> None:
    torch.manual_seed(0)
    model = build_model(arch, in_channels=in_channels).eval()  # type: ignore[arg-type]
    first = next(iter(model.children()))
    assert isinstance(first, Normalize) and first is model.normalize
    x = torch.rand(2, len(stats[0]), 28, 28, generator=torch.Generator().manual_seed(1))
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in stats)
    torch.testing.assert_close(first(x), (x - mean) / std, rtol=0, atol=0)
    assert all(b.dtype == torch.float32 for b in first.buffers()) and not list(first.parameters())
    assert [name for name, _ in model.named_children()] == ["normalize", "net"]
    if arch.startswith("cnn"):  # the whole model is the network applied to normalised pixels
        x = torch.rand(2, *model.net.input_shape)
        with torch.no_grad():
            torch.testing.assert_close(model(x), model.net(first(x)), rtol=0, atol=0)


def test_normalize_rejects_bad_stats() -> None:
    with pytest.raises(ValueError, match=r"std must be one value per channel, as many as mean \(2\) \(got \(0.3,\)\)"):
        Normalize((0.1, 0.2), (0.3,))
    with pytest.raises(ValueError, match=r"std must be positive \(got \(0.0,\)\)"):
        Normalize((0.1,), (0.0,))


def test_bad_arguments() -> None:
    with pytest.raises(
        ValueError,
        match=r"arch must be one of 'cnn-small', 'cnn', 'preact-resnet18', "
        r"'wrn-34-10', 'linear' \(got 'resnet50'\)",
    ):
        build_model("resnet50")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"num_classes must be an integer >= 2 \(got 1\)"):
        build_model("cnn", num_classes=1)
    with pytest.raises(ValueError, match=r"num_classes must be an integer >= 2 \(got True\)"):
        build_model("linear", num_classes=True)
    with pytest.raises(ValueError, match=r"in_channels must be 1 \(Fashion-MNIST\) or 3 \(CIFAR-10\) \(got 2\)"):
        build_model("cnn", in_channels=2)
    with pytest.raises(ValueError, match=r"in_channels must be 1 \(Fashion-MNIST\) or 3 \(CIFAR-10\) \(got 2\)"):
        build_model("linear", in_channels=2)
    assert ARCHS == ("cnn-small", "cnn", "preact-resnet18", "wrn-34-10", "linear")


# ---------------------------------------------------------------------------------------------
# the linear model, and models sized for a data set of the registry
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("in_channels", "shape"), [(None, (1, 28, 28)), (1, (1, 28, 28)), (3, (3, 32, 32))])
def test_linear_is_flatten_then_linear_on_raw_pixels(in_channels: int | None, shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    model = build_model("linear", num_classes=7, in_channels=in_channels)
    assert [name for name, _ in model.named_children()] == ["flatten", "linear"]
    assert isinstance(model.flatten, nn.Flatten) and type(model.linear) is nn.Linear
    assert not any(isinstance(m, Normalize) for m in model.modules()) and not list(model.buffers())
    d = shape[0] * shape[1] * shape[2]
    assert model.linear.weight.shape == (7, d) and model.linear.bias.shape == (7,)
    assert _n_params(model) == 7 * d + 7
    assert set(model.state_dict()) == {"linear.weight", "linear.bias"}
    # raw pixels: the logits are W x + b of the flattened image, no normalisation in between
    x = torch.rand(4, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(x), x.flatten(1) @ model.linear.weight.T + model.linear.bias)


def test_archs_for_each_dataset_of_the_registry() -> None:
    assert set(ARCHS_FOR) == set(DATASETS) == set(DATASET_INFO)
    assert ARCHS_FOR["fashion-mnist"] == ("cnn-small", "cnn", "linear")
    assert ARCHS_FOR["cifar10"] == ARCHS
    assert all(set(archs) <= set(ARCHS) for archs in ARCHS_FOR.values())


@pytest.mark.parametrize(
    ("arch", "dataset"),
    [
        ("cnn-small", "fashion-mnist"),
        ("cnn", "fashion-mnist"),
        ("linear", "fashion-mnist"),
        ("linear", "cifar10"),
        ("cnn-small", "cifar10"),
        ("preact-resnet18", "cifar10"),
    ],
)
def test_build_for_sizes_the_model_from_the_data_registry(arch: str, dataset: str) -> None:
    info = DATASET_INFO[dataset]
    torch.manual_seed(0)
    model = build_for(arch, dataset).eval()  # type: ignore[arg-type]
    with torch.no_grad():
        logits = model(torch.rand(2, *info.input_shape))
    assert logits.shape == (2, len(info.classes)) and torch.isfinite(logits).all()
    torch.manual_seed(0)  # the same network build_model makes with the registry's sizes
    same = build_model(arch, num_classes=len(info.classes), in_channels=info.input_shape[0])  # type: ignore[arg-type]
    state, other = model.state_dict(), same.state_dict()
    assert state.keys() == other.keys() and all(torch.equal(state[k], other[k]) for k in state)


def test_build_for_uses_the_registry_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry entry with 4 classes gives a 4-class head: the sizes are read from the registry, not assumed."""
    from advlogits import data

    entry = data.DATASET_INFO["fashion-mnist"]
    monkeypatch.setitem(data.DATASET_INFO, "fashion-mnist", entry._replace(classes=entry.classes[:4]))
    model = build_for("linear", "fashion-mnist")
    assert model.linear.weight.shape == (4, 784)


def test_build_for_refuses_an_arch_that_does_not_fit_the_dataset() -> None:
    for arch in ("preact-resnet18", "wrn-34-10"):
        with pytest.raises(
            ValueError,
            match=rf"arch must be one of 'cnn-small', 'cnn', 'linear' \(got '{arch}'\)"
            r"; those are the architectures that fit fashion-mnist",
        ):
            build_for(arch, "fashion-mnist")  # type: ignore[arg-type]
    with pytest.raises(
        ValueError,
        match=r"arch must be one of 'cnn-small', 'cnn', 'preact-resnet18', 'wrn-34-10', "
        r"'linear' \(got 'resnet50'\); those are the architectures that fit cifar10",
    ):
        build_for("resnet50", "cifar10")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"dataset must be one of 'fashion-mnist', 'cifar10' \(got 'mnist'\)"):
        build_for("cnn", "mnist")


def test_init_is_seeded() -> None:
    states = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        states.append(build_model("cnn").state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not torch.equal(states[0]["net.features.0.weight"], states[2]["net.features.0.weight"])


def test_published_parameter_counts(robustbench: SimpleNamespace) -> None:
    # He et al. 2016 / Zagoruyko & Komodakis 2016 as reported for CIFAR-10: 11.17M and 46.16M parameters.
    preact, wrn = build_model("preact-resnet18"), build_model("wrn-34-10")
    assert abs(_n_params(preact) - 11.17e6) / 11.17e6 < 0.01
    assert abs(_n_params(wrn) - 46.16e6) / 46.16e6 < 0.01
    # Exact match with RobustBench's implementations (its PreActResNet-18 has the final BN as an option).
    assert _n_params(wrn) == _n_params(robustbench.wrn.WideResNet(depth=34, widen_factor=10)) == 46_160_474
    rb_preact = robustbench.resnet.PreActResNet(robustbench.resnet.PreActBlock, [2, 2, 2, 2], bn_before_fc=True)
    assert _n_params(preact) == _n_params(rb_preact) == 11_172_170


def test_small_cnn_sizes() -> None:
    # cnn-small: conv(1->32) 320, conv(32->64) 18496, fc(64*5*5->128) 204928, fc(128->10) 1290.
    assert _n_params(build_model("cnn-small")) == 320 + 18496 + 204928 + 1290
    # cnn: convs 320 + 9248 + 18496 + 36928, fc(1024->200) 205000, fc(200->200) 40200, fc(200->10) 2010.
    assert _n_params(build_model("cnn")) == 320 + 9248 + 18496 + 36928 + 205000 + 40200 + 2010
    assert build_model("cnn").net.input_shape == (1, 28, 28)
    assert build_model("cnn-small", in_channels=3).net.input_shape == (3, 32, 32)


def test_resnets_match_robustbench_forward(robustbench: SimpleNamespace) -> None:
    """Same weights in our networks and RobustBench's (independent code) give the same logits."""
    resnet = robustbench.resnet
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    pairs = [
        (
            build_model("preact-resnet18").net,
            resnet.PreActResNet(resnet.PreActBlock, [2, 2, 2, 2], bn_before_fc=True, out_shortcut=True),
        ),
        (WideResNet(3, 10, depth=16, width=2), robustbench.wrn.WideResNet(depth=16, widen_factor=2)),
    ]
    x = torch.rand(2, 3, 32, 32, generator=gen)
    for ours, theirs in pairs:
        _randomise_bn(theirs, gen)
        _copy_in_order(theirs, ours)
        ours.eval(), theirs.eval()
        with torch.no_grad():
            torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# load_robustbench (offline: the test writes the checkpoint where RobustBench looks first)
# ---------------------------------------------------------------------------------------------


def test_load_robustbench_from_local_checkpoint(robustbench: SimpleNamespace, tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = robustbench_zoo_model(RB_NAME)
    _randomise_bn(reference, torch.Generator().manual_seed(1))
    saved = {k: v.clone() for k, v in reference.state_dict().items()}
    write_robustbench_checkpoint(tmp_path, RB_NAME, saved)

    torch.manual_seed(123)  # the loaded weights must come from the file, not from a fresh init
    model = load_robustbench(RB_NAME, dataset="cifar10", threat_model="Linf", model_dir=tmp_path)
    assert not model.training and all(p.device.type == "cpu" for p in model.parameters())
    state = model.state_dict()
    assert state.keys() == saved.keys() and all(torch.equal(state[k], saved[k]) for k in saved)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits = model(x)
        assert logits.shape == (2, 10)
        torch.testing.assert_close(logits, reference.eval()(x), rtol=0, atol=0)


@pytest.mark.parametrize("fmt", PICKLE_FORMATS)
def test_load_robustbench_refuses_code_in_checkpoint(
    robustbench: SimpleNamespace, tmp_path: Path, monkeypatch, fmt: str
) -> None:
    """In every format, even where the environment turns off torch's safe default."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar10" / "Linf"  # where RobustBench looks before downloading
    folder.mkdir(parents=True)
    (folder / f"{RB_NAME}.pt").write_bytes(code_running_bytes(marker, fmt, wrap=lambda e: {"state_dict": e}))
    with pytest.raises(
        RuntimeError,
        match=rf"refusing to load {folder / RB_NAME}\.pt: torch\.load\(weights_only="
        r"True\) cannot open it",
    ):
        load_robustbench(RB_NAME, model_dir=tmp_path)
    assert not marker.exists()


def test_load_robustbench_bad_names(robustbench: SimpleNamespace, tmp_path: Path) -> None:
    with pytest.raises(
        ValueError,
        match=r"name must be a RobustBench model of cifar10/Linf \(got 'NoSuchModel'\); "
        r"known ones include Andriushchenko2020Understanding, Carmon2019Unlabeled",
    ):
        load_robustbench("NoSuchModel", model_dir=tmp_path)
    with pytest.raises(ValueError, match=r"dataset must be one of 'cifar10', 'cifar100', 'imagenet'.* \(got 'mnist'\)"):
        load_robustbench(RB_NAME, dataset="mnist", model_dir=tmp_path)
    with pytest.raises(ValueError, match=r"threat_model must be one of 'Linf', 'L2', 'corruptions'.* \(got 'L1'\)"):
        load_robustbench(RB_NAME, threat_model="L1", model_dir=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing created before the arguments were checked


@pytest.mark.skipif(online("docs.google.com"), reason="network reachable: the download would succeed")
def test_load_robustbench_missing_offline(robustbench: SimpleNamespace, tmp_path: Path) -> None:
    path = tmp_path / "cifar10" / "Linf" / f"{RB_NAME}.pt"
    with pytest.raises(
        FileNotFoundError,
        match=rf"{path} does not exist and downloading it \(Google Drive id "
        rf".*\) failed: ConnectionError.*Put the checkpoint at {path}",
    ):
        load_robustbench(RB_NAME, model_dir=tmp_path)
    assert list(path.parent.iterdir()) == []  # no partial download left behind


def test_models_use_channels_last_weights_and_compute_the_same_function():
    torch.manual_seed(0)
    model = build_model("cnn-small")
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    reference = build_model("cnn-small").to(memory_format=torch.contiguous_format)
    reference.load_state_dict(model.state_dict())
    x = torch.rand(8, 1, 28, 28)
    torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-5)
