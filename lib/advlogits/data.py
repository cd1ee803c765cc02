"""The data sets: the registry of their facts (`DATASET_INFO`) and `load_dataset`, a split as tensors with pixels in
[0, 1] and labels as int64. The files are read by `advlogits.datafiles`; this module decides where they are looked
for and whether a copy must be complete.

Where the files are looked for (first hit wins; a corrupt copy raises instead of falling through):

* ``root=`` given: only there. Nothing is downloaded into an explicit ``root``, and it may hold a smaller set in the
  same format (tests, excerpts).
* otherwise ``$ADVLOGITS_DATA_ONLY`` (if set) is that explicit ``root`` for every call, with the same rules: it lets a
  process that cannot pass ``root=`` (a chapter run by papermill, in tests) read a small set. Store keys do not
  record which copy of the data a model saw, so give such a run its own ``$ADVLOGITS_HOME``.
* otherwise the data home ``$ADVLOGITS_DATA`` (if set), then, for Fashion-MNIST, the Debian folder
  ``/usr/share/datasets/fashion-mnist``, then a download into the data home (``$ADVLOGITS_DATA`` or
  ``~/.cache/advlogits/data``). A copy found this way must be the full data set (Fashion-MNIST 60000/10000
  images, CIFAR-10 5 x 10000 + 10000, balanced classes: the sizes of the registry).

Both settings are path settings of `advlogits.paths`: ``~`` expanded, a relative path taken from the repository's
root, a file refused with one line naming the setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, NamedTuple, get_args

import numpy as np
import torch
from torch import Tensor

from .checks import check_choice, check_int, check_seed, fail
from .datafiles import SYSTEM_FASHION_MNIST, Arrays, DatasetError, read_cifar10, read_fashion_mnist
from .paths import DATA, DATA_ONLY, check_folder, setting

DatasetName = Literal["fashion-mnist", "cifar10"]
SplitName = Literal["train", "test"]
DATASETS: tuple[str, ...] = get_args(DatasetName)
SPLITS: tuple[str, ...] = get_args(SplitName)

__all__ = [
    "DATASETS",
    "DATASET_INFO",
    "SPLITS",
    "DatasetError",
    "DatasetInfo",
    "Split",
    "class_names",
    "data_home",
    "dataset_info",
    "input_shape",
    "load_dataset",
    "num_classes",
    "read_split",
]


class DatasetInfo(NamedTuple):
    """What the rest of the library needs to know about a data set without reading it."""

    classes: tuple[str, ...]  # class names, indexed by label
    input_shape: tuple[int, int, int]  # (C, H, W) of one image
    train_size: int  # images in the full train split
    test_size: int  # images in the full test split


# The one registry of data sets: every other module reads these facts from here.
DATASET_INFO: dict[str, DatasetInfo] = {
    "fashion-mnist": DatasetInfo(
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        (1, 28, 28),
        60_000,
        10_000,
    ),
    "cifar10": DatasetInfo(
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        (3, 32, 32),
        50_000,
        10_000,
    ),
}


class Split(NamedTuple):
    """One split of a data set: ``x`` (N, C, H, W) float32 in [0, 1], ``y`` (N,) int64 class indices."""

    x: Tensor
    y: Tensor


def dataset_info(dataset: DatasetName) -> DatasetInfo:
    """The registry entry of a data set (class names, image shape, split sizes)."""
    check_choice("dataset", dataset, DATASETS)
    return DATASET_INFO[dataset]


def class_names(dataset: DatasetName) -> tuple[str, ...]:
    """Class names of a data set, indexed by label."""
    return dataset_info(dataset).classes


def num_classes(dataset: DatasetName) -> int:
    """Number of classes of a data set."""
    return len(dataset_info(dataset).classes)


def input_shape(dataset: DatasetName) -> tuple[int, int, int]:
    """Shape (C, H, W) of one image of the data set."""
    return dataset_info(dataset).input_shape


def data_home() -> Path:
    """The data home, searched first and where downloads go: ``$ADVLOGITS_DATA`` if set, else
    ``~/.cache/advlogits/data``, absolute; a setting naming a file is refused with a SettingError naming it."""
    home = setting(DATA, Path.home() / ".cache" / "advlogits" / "data")
    assert home is not None
    return check_folder(DATA, home)


def read_split(dataset: DatasetName, split: SplitName, *, root: str | Path | None = None) -> Arrays:
    """The decoded files of a split, found as the module docstring says: images (N, C, H, W) and labels (N,), uint8,
    read-only and cached (no torch operation runs, so a process may call this before it forks).

    Examples::

        images, labels = read_split("fashion-mnist", "test")  # (10000, 1, 28, 28) and (10000,), uint8
    """
    check_choice("dataset", dataset, DATASETS)
    check_choice("split", split, SPLITS)
    only = Path(root).expanduser() if root is not None else setting(DATA_ONLY)
    if only is not None:  # an explicit root: only there, nothing downloaded, a smaller set allowed
        if root is None:
            check_folder(DATA_ONLY, only)
        return read_fashion_mnist(split, [only]) if dataset == "fashion-mnist" else read_cifar10(split, only)
    info, home = dataset_info(dataset), data_home()
    full = info.train_size if split == "train" else info.test_size
    if dataset == "cifar10":
        return read_cifar10(split, home, download=True, full_size=full)
    # the data home first when it is set, else after the Debian folder (where it is only the download's target)
    searched = list(dict.fromkeys([*([home] if setting(DATA) else []), SYSTEM_FASHION_MNIST, home]))
    return read_fashion_mnist(split, searched, download_into=home, full_size=full)


def load_dataset(
    dataset: DatasetName, split: SplitName, *, n: int | None = None, seed: int = 0, root: str | Path | None = None
) -> Split:
    """Load a split as tensors (see the module docstring for where files are looked for).

    ``n`` draws a random subset of ``n`` images without replacement: the first ``n`` entries of
    ``torch.randperm(size, generator=torch.Generator().manual_seed(seed))``, in that permuted order
    (deterministic for a seed). ``n=None`` returns the whole split in file order.
    Returns ``Split(x, y)``: x (N, C, H, W) float32 = uint8 pixels / 255, y (N,) int64; new tensors on every call,
    so callers may modify what they get.

    Examples::

        x, y = load_dataset("fashion-mnist", "test", n=1000, seed=0)
    """
    check_choice("dataset", dataset, DATASETS)
    check_choice("split", split, SPLITS)
    if n is not None:
        check_int("n", n, at_least=1, hint="n is the subset size; None loads the whole split")
    check_seed("seed", seed)
    images, labels = read_split(dataset, split, root=root)
    size = len(labels)
    if n is None:
        index = torch.arange(size)
    else:
        if n > size:
            fail(
                "n",
                f"at most the size of the {dataset} {split} split ({size} images)",
                n,
                hint="pass a smaller n, or n=None for all of it",
            )
        index = torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:n]
    idx = index.numpy()
    x = torch.from_numpy(images[idx]).to(torch.float32).div_(255.0)
    y = torch.from_numpy(labels[idx].astype(np.int64))
    return Split(x, y)
