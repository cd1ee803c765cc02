"""The networks of the book, each a ``Normalize`` layer followed by a classifier that returns logits.

Normalisation is the model's first layer, so inputs, ``eps`` and ``alpha`` all live in [0, 1] pixel
units (RobustBench's convention). The normalisation statistics follow from ``in_channels``: 1 channel
is Fashion-MNIST (28x28), 3 channels is CIFAR-10 (32x32); the CNNs size their heads for that input
(``model.net.input_shape``), the ResNets pool globally and take any size.

Architectures (written here from the papers):

* ``cnn-small``: conv(32)-pool-conv(64)-pool-fc(128)-fc(K), the CPU workhorse (PGD-AT on 60k images):
  forward + backward of 256 Fashion-MNIST images takes 0.3-0.5 s on 2 CPU cores.
* ``cnn``: conv(32)-conv(32)-pool-conv(64)-conv(64)-pool-fc(200)-fc(200)-fc(K) (Carlini & Wagner 2017's
  MNIST network).
* ``preact-resnet18``: PreActResNet-18 (He et al. 2016, "Identity Mappings in Deep Residual Networks").
* ``wrn-34-10``: WideResNet-34-10 (Zagoruyko & Komodakis 2016), the usual PGD-AT network on CIFAR-10.
* ``linear``: multinomial logistic regression on raw pixels (``Flatten`` then ``Linear(D, K)``, no normalisation
  layer), the model of the book's proposition: its weights are read in pixel units.

`ARCHS_FOR` says which architectures fit which data set; `build_for` builds one for a data set of the registry
in `advlogits.data` (input channels and number of classes from there).

``load_robustbench`` loads a pretrained RobustBench model zoo entry; those take [0, 1] inputs and (almost
all) normalise internally, so they slot in where ``build_model``'s models do.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from . import passes
from ._compat import import_robustbench_utils
from .checks import check_choice, check_int, fail
from .data import DATASETS, input_shape, num_classes
from .downloads import socket_timeout

Arch = Literal["cnn-small", "cnn", "preact-resnet18", "wrn-34-10", "linear"]
ARCHS: tuple[str, ...] = get_args(Arch)
# The architectures that fit each data set: the CNNs size their heads for 28x28 inputs.
ARCHS_FOR: dict[str, tuple[str, ...]] = {"fashion-mnist": ("cnn-small", "cnn", "linear"), "cifar10": ARCHS}

# Per-channel pixel statistics of the training sets, keyed by number of input channels.
NORMALIZATION: dict[int, tuple[tuple[float, ...], tuple[float, ...]]] = {
    1: ((0.2860,), (0.3530,)),  # Fashion-MNIST
    3: ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)),  # CIFAR-10
}
INPUT_SHAPES: dict[int, tuple[int, int, int]] = {1: input_shape("fashion-mnist"), 3: input_shape("cifar10")}


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, for x (N, C, H, W) in [0, 1]; mean and std are buffers."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std) or len(mean) == 0:
            fail("std", f"one value per channel, as many as mean ({len(mean)})", tuple(std))
        if min(std) <= 0:
            fail("std", "positive", tuple(std))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


def build_model(arch: Arch, *, num_classes: int = 10, in_channels: int | None = None) -> nn.Module:
    """A freshly initialised network mapping x (N, C, H, W) in [0, 1] to logits (N, num_classes).

    Every architecture but ``linear`` is ``nn.Sequential(Normalize, network)``; ``linear`` is
    ``nn.Sequential(flatten, linear)`` on raw pixels. ``in_channels`` defaults to 1 for the CNNs and the linear
    model and 3 for the ResNets; initialisation draws from torch's global generator, so ``torch.manual_seed``
    fixes it.
    """
    check_choice("arch", arch, ARCHS)
    check_int("num_classes", num_classes, at_least=2)
    if in_channels is None:
        in_channels = 3 if arch in ("preact-resnet18", "wrn-34-10") else 1
    if in_channels not in NORMALIZATION:
        fail("in_channels", "1 (Fashion-MNIST) or 3 (CIFAR-10)", in_channels)

    if arch == "linear":
        c, h, w = INPUT_SHAPES[in_channels]
        return passes.watch(
            nn.Sequential(OrderedDict(flatten=nn.Flatten(), linear=nn.Linear(c * h * w, num_classes))), arch
        )
    if arch == "cnn-small":
        net: nn.Module = SmallCNN(INPUT_SHAPES[in_channels], num_classes)
    elif arch == "cnn":
        net = CNN(INPUT_SHAPES[in_channels], num_classes)
    elif arch == "preact-resnet18":
        net = PreActResNet(in_channels, num_classes, blocks=(2, 2, 2, 2))
    else:
        net = WideResNet(in_channels, num_classes, depth=34, width=10)
    mean, std = NORMALIZATION[in_channels]
    model = nn.Sequential(OrderedDict(normalize=Normalize(mean, std), net=net))
    # Convolution weights in channels_last layout: the same function, and convolutions run 1.2-2.5x faster
    # on CPUs (oneDNN) and with tensor cores; inputs may stay in the default layout.
    return passes.watch(model.to(memory_format=torch.channels_last), arch)


def build_for(arch: Arch, dataset: str) -> nn.Module:
    """`build_model` sized for ``dataset`` (its input channels and number of classes, from `advlogits.data`)."""
    check_choice("dataset", dataset, DATASETS)
    check_choice("arch", arch, ARCHS_FOR[dataset], hint=f"those are the architectures that fit {dataset}")
    return build_model(arch, num_classes=num_classes(dataset), in_channels=input_shape(dataset)[0])


# ----------------------------------------------------------------------------------------------
# Small CNNs (Fashion-MNIST, CPU)
# ----------------------------------------------------------------------------------------------


def _conv_out(size: int, convs: int) -> int:
    """Side length after ``convs`` unpadded 3x3 convs and then a 2x2 max-pool (floor)."""
    return (size - 2 * convs) // 2


class SmallCNN(nn.Module):
    """conv3x3(32)-pool-ReLU-conv3x3(64)-pool-ReLU-fc(128)-ReLU-fc(K); 0.23M parameters on 28x28.

    Max-pool comes before ReLU (the two commute, and the pool shrinks what ReLU touches). The head's input
    size is computed from ``input_shape`` (C, H, W), kept as an attribute.
    """

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        self.input_shape = input_shape
        c, h, w = input_shape
        h, w = _conv_out(_conv_out(h, 1), 1), _conv_out(_conv_out(w, 1), 1)  # 28 -> 26 -> 13 -> 11 -> 5
        self.features = nn.Sequential(
            nn.Conv2d(c, 32, 3),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3),
            nn.MaxPool2d(2),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64 * h * w, 128), nn.ReLU(), nn.Linear(128, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class CNN(nn.Module):
    """Four 3x3 convs (32-32-pool-64-64-pool) and fc(200)-fc(200)-fc(K) (Carlini & Wagner 2017's MNIST
    network); 0.31M parameters on 28x28. The head's input size follows ``input_shape`` (C, H, W)."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        self.input_shape = input_shape
        c, h, w = input_shape
        h, w = _conv_out(_conv_out(h, 2), 2), _conv_out(_conv_out(w, 2), 2)  # 28 -> 24 -> 12 -> 8 -> 4
        self.features = nn.Sequential(
            nn.Conv2d(c, 32, 3),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3),
            nn.MaxPool2d(2),
            nn.ReLU(),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * h * w, 200),
            nn.ReLU(),
            nn.Linear(200, 200),
            nn.ReLU(),
            nn.Linear(200, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


# ----------------------------------------------------------------------------------------------
# Pre-activation residual networks (CIFAR-10)
# ----------------------------------------------------------------------------------------------


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 plus identity, or a strided 1x1 conv of the pre-activated input
    when the shape changes (He et al. 2016, Fig. 4e; also the wide block of Zagoruyko & Komodakis 2016)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), _conv3x3(c_in, c_out, stride)
        self.bn2, self.conv2 = nn.BatchNorm2d(c_out), _conv3x3(c_out, c_out)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False) if stride != 1 or c_in != c_out else None

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + skip


class _PreActNet(nn.Module):
    """Stem conv, stages of ``PreActBlock``s, final BN-ReLU, global average pool, linear head."""

    def __init__(self, in_channels: int, num_classes: int, *, stem: int, stages: Sequence[tuple[int, int, int]]):
        super().__init__()
        self.stem = _conv3x3(in_channels, stem)
        blocks: list[nn.Module] = []
        c_in = stem
        for c_out, n_blocks, stride in stages:
            for i in range(n_blocks):
                blocks.append(PreActBlock(c_in, c_out, stride if i == 0 else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(c_in)
        self.fc = nn.Linear(c_in, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn(self.blocks(self.stem(x))))
        return self.fc(out.mean(dim=(2, 3)))


class PreActResNet(_PreActNet):
    """PreActResNet with widths 64-128-256-512; ``blocks=(2, 2, 2, 2)`` is PreActResNet-18: 11,172,170
    parameters, i.e. the common CIFAR implementation (11,171,146) plus He et al.'s final BN before pooling."""

    def __init__(self, in_channels: int, num_classes: int, *, blocks: Sequence[int] = (2, 2, 2, 2)) -> None:
        widths, strides = (64, 128, 256, 512), (1, 2, 2, 2)
        super().__init__(in_channels, num_classes, stem=64, stages=list(zip(widths, blocks, strides)))


class WideResNet(_PreActNet):
    """WRN-depth-width: three groups of (depth - 4) / 6 blocks, widths 16w-32w-64w; WRN-34-10 has 46.16M params."""

    def __init__(self, in_channels: int, num_classes: int, *, depth: int = 34, width: int = 10) -> None:
        if (depth - 4) % 6 != 0:
            fail("depth", "6n + 4 (e.g. 28, 34) for a WideResNet", depth)
        n = (depth - 4) // 6
        stages = [(16 * width, n, 1), (32 * width, n, 2), (64 * width, n, 2)]
        super().__init__(in_channels, num_classes, stem=16, stages=stages)


# ----------------------------------------------------------------------------------------------
# RobustBench
# ----------------------------------------------------------------------------------------------

# RobustBench's name of the L-inf threat model (the library spells the norm "linf", `advlogits.attacks.Norm`): the
# only place it is written, at the boundary where RobustBench is called.
ROBUSTBENCH_LINF = "Linf"


def robustbench_zoo_entry(name: str, *, dataset: str = "cifar10", threat_model: str = ROBUSTBENCH_LINF) -> dict:
    """RobustBench's zoo record of model ``name``; a clear error if it is not in the zoo of
    ``dataset``/``threat_model``. Cheap: reads RobustBench's model list, downloads nothing."""
    import_robustbench_utils()
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    check_choice("dataset", dataset, tuple(d.value for d in BenchmarkDataset))
    check_choice("threat_model", threat_model, tuple(t.value for t in ThreatModel))
    zoo = model_dicts[BenchmarkDataset(dataset)].get(ThreatModel(threat_model), {})
    if name not in zoo:
        known = ", ".join(list(zoo)[:6])
        fail(
            "name",
            f"a RobustBench model of {dataset}/{threat_model}",
            name,
            hint=f"known ones include {known} ({len(zoo)} in all, see robustbench.model_zoo.{dataset})",
        )
    return zoo[name]


def load_robustbench(
    name: str, *, dataset: str = "cifar10", threat_model: str = ROBUSTBENCH_LINF, model_dir: str | Path
) -> nn.Module:
    """Load RobustBench zoo model ``name`` in eval mode on the CPU.

    The checkpoint is ``<model_dir>/<dataset>/<threat_model>/<name>.pt`` (ensembles: ``<name>.pt_m<i>.pt``),
    downloaded only if absent. Before RobustBench reads it, it is opened here with
    ``torch.load(weights_only=True)``, so a checkpoint that would run code when unpickled is refused even
    if ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` turns off torch's safe default in RobustBench's own call.
    The model takes x (N, 3, H, W) in [0, 1] and returns logits; RobustBench models normalise internally.
    """
    rb_utils = import_robustbench_utils()
    zoo = robustbench_zoo_entry(name, dataset=dataset, threat_model=threat_model)
    folder = Path(model_dir).expanduser() / dataset / threat_model
    ids = zoo["gdrive_id"]
    files: dict[Path, str | None]
    if dataset == "imagenet" and "Standard" in name:  # RobustBench takes these from torchvision, no file
        files = {}
    elif isinstance(ids, list):  # ensembles: one file per member
        files = {folder / f"{name}.pt_m{i}.pt": gid for i, gid in enumerate(ids)}
    else:
        files = {folder / f"{name}.pt": ids}
    for path, gid in files.items():
        if not path.is_file():
            _download_checkpoint(gid, path)
        _check_checkpoint(path)

    model = rb_utils.load_model(model_name=name, model_dir=model_dir, dataset=dataset, threat_model=threat_model)
    return model.cpu().eval()


def _download_checkpoint(gdrive_id: str | None, path: Path) -> None:
    """Download a RobustBench checkpoint to ``path`` via a ``.part`` file, so a failure leaves nothing behind."""
    rb_utils = import_robustbench_utils()
    where = f"Put the checkpoint at {path} (from the RobustBench model zoo)"
    if not gdrive_id:
        raise FileNotFoundError(f"{path} does not exist and RobustBench has no download for it. {where}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    try:
        with socket_timeout():
            rb_utils.download_gdrive(gdrive_id, part)
        _check_checkpoint(part)
    except Exception as exc:  # any download failure becomes one actionable message
        part.unlink(missing_ok=True)
        raise FileNotFoundError(
            f"{path} does not exist and downloading it (Google Drive id {gdrive_id}) failed: "
            f"{type(exc).__name__}: {exc}. {where}."
        ) from exc
    part.replace(path)


def _check_checkpoint(path: Path) -> None:
    """Open ``path`` with ``torch.load(weights_only=True)``: it must hold tensors and containers only."""
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise RuntimeError(
            f"refusing to load {path}: torch.load(weights_only=True) cannot open it, so it is "
            f"corrupt or would run code when unpickled ({type(exc).__name__}: {exc}). Replace it "
            f"with the official RobustBench checkpoint."
        ) from exc
