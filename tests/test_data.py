"""Tests for advlogits.data: the registry, the real Debian Fashion-MNIST, seeded subsets, where files are looked for
(root=, $ADVLOGITS_DATA_ONLY, $ADVLOGITS_DATA, the Debian folder, a download) and which copies must be complete. The
files' own checks are tests/test_datafiles.py's."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from advlogits import data, paths
from advlogits.data import (
    DATASET_INFO,
    DATASETS,
    DatasetError,
    DatasetInfo,
    class_names,
    dataset_info,
    input_shape,
    load_dataset,
    num_classes,
)
from advlogits.synthetic import cifar_batch, write_cifar

from helpers import online, random_idx_set, write_idx_set

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
needs_debian = pytest.mark.skipif(
    not (DEBIAN / "train-labels-idx1-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist is not installed",
)


@pytest.fixture(autouse=True)
def no_data_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's $ADVLOGITS_DATA_ONLY must not change what these tests see."""
    monkeypatch.delenv(paths.DATA_ONLY, raising=False)


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(paths.DATA, raising=False)


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST: the real Debian copy
# ---------------------------------------------------------------------------------------------


@needs_debian
@pytest.mark.parametrize(("split", "size", "prefix"), [("train", 60000, "train"), ("test", 10000, "t10k")])
def test_debian_fashion_mnist(no_env: None, split: str, size: int, prefix: str) -> None:
    x, y = load_dataset("fashion-mnist", split)
    assert x.shape == (size, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (size,) and y.dtype == torch.int64
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert torch.bincount(y, minlength=10).tolist() == [size // 10] * 10
    # Independent decode of the first labels and image with gzip + numpy.
    with gzip.open(DEBIAN / f"{prefix}-labels-idx1-ubyte.gz") as fh:
        first_labels = np.frombuffer(fh.read(20)[8:], dtype=np.uint8)
    with gzip.open(DEBIAN / f"{prefix}-images-idx3-ubyte.gz") as fh:
        first_image = np.frombuffer(fh.read(16 + 784)[16:], dtype=np.uint8).reshape(28, 28)
    assert y[:12].tolist() == first_labels.tolist()
    torch.testing.assert_close(x[0, 0], torch.from_numpy(first_image.astype(np.float32) / 255), rtol=0, atol=0)
    if split == "train":  # the well-known first labels: ankle boot, T-shirt, T-shirt, dress, ...
        assert y[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]


@needs_debian
def test_subset_is_seeded_permutation(no_env: None) -> None:
    full = load_dataset("fashion-mnist", "test")
    a = load_dataset("fashion-mnist", "test", n=100, seed=3)
    b = load_dataset("fashion-mnist", "test", n=100, seed=3)
    c = load_dataset("fashion-mnist", "test", n=100, seed=4)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.y, c.y)
    idx = torch.randperm(10000, generator=torch.Generator().manual_seed(3))[:100]
    assert torch.equal(a.x, full.x[idx]) and torch.equal(a.y, full.y[idx])


@needs_debian
def test_returns_fresh_tensors(no_env: None) -> None:
    first = load_dataset("fashion-mnist", "test", n=5)
    first.x.zero_()
    first.y.fill_(7)
    again = load_dataset("fashion-mnist", "test", n=5)
    assert float(again.x.max()) > 0 and again.y.tolist() != [7] * 5


@needs_debian
def test_bad_arguments_raise_before_loading(no_env: None) -> None:
    with pytest.raises(ValueError, match=r"dataset must be one of 'fashion-mnist', 'cifar10' \(got 'mnist'\)"):
        load_dataset("mnist", "train")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"split must be one of 'train', 'test' \(got 'val'\)"):
        load_dataset("fashion-mnist", "val")  # type: ignore[arg-type]
    with pytest.raises(
        ValueError,
        match=r"n must be an integer >= 1 \(got 0\); n is the subset size; None loads "
        r"the whole split",
    ):
        load_dataset("fashion-mnist", "test", n=0)
    with pytest.raises(ValueError, match=r"n must be an integer >= 1 \(got True\)"):
        load_dataset("fashion-mnist", "test", n=True)
    with pytest.raises(ValueError, match=r"seed must be an integer >= 0 and <= 4294967295 \(got -1\)"):
        load_dataset("fashion-mnist", "test", seed=-1)
    with pytest.raises(
        ValueError,
        match=r"n must be at most the size of the fashion-mnist test split \(10000 "
        r"images\) \(got 10001\); pass a smaller n, or n=None for all of it",
    ):
        load_dataset("fashion-mnist", "test", n=10001)


def test_class_names_and_shapes() -> None:
    assert class_names("fashion-mnist")[0] == "T-shirt/top" and class_names("fashion-mnist")[9] == "Ankle boot"
    assert class_names("cifar10") == (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    )
    assert input_shape("fashion-mnist") == (1, 28, 28) and input_shape("cifar10") == (3, 32, 32)
    for function in (class_names, input_shape, num_classes, dataset_info):
        with pytest.raises(ValueError, match=r"dataset must be one of 'fashion-mnist', 'cifar10' \(got 'svhn'\)"):
            function("svhn")  # type: ignore[arg-type]


def test_the_dataset_registry() -> None:
    assert set(DATASET_INFO) == set(DATASETS) == {"fashion-mnist", "cifar10"}
    assert all(isinstance(info, DatasetInfo) for info in DATASET_INFO.values())
    # the published sizes of the two data sets
    fashion, cifar = DATASET_INFO["fashion-mnist"], DATASET_INFO["cifar10"]
    assert (fashion.input_shape, fashion.train_size, fashion.test_size) == ((1, 28, 28), 60_000, 10_000)
    assert (cifar.input_shape, cifar.train_size, cifar.test_size) == ((3, 32, 32), 50_000, 10_000)
    for name in DATASETS:
        info = dataset_info(name)  # type: ignore[arg-type]
        assert info is DATASET_INFO[name]
        assert class_names(name) == info.classes and input_shape(name) == info.input_shape  # type: ignore[arg-type]
        assert num_classes(name) == len(info.classes) == 10  # type: ignore[arg-type]
        assert len(set(info.classes)) == len(info.classes)  # distinct names


def test_num_classes_follows_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = DATASET_INFO["cifar10"]
    monkeypatch.setitem(DATASET_INFO, "cifar10", entry._replace(classes=entry.classes[:3]))
    assert num_classes("cifar10") == 3 and class_names("cifar10") == ("airplane", "automobile", "bird")


@needs_debian
def test_registry_sizes_match_the_debian_copy(no_env: None) -> None:
    info = dataset_info("fashion-mnist")
    for split, size in (("train", info.train_size), ("test", info.test_size)):
        x, y = load_dataset("fashion-mnist", split)
        assert x.shape == (size, *info.input_shape) and int(y.max()) + 1 == num_classes("fashion-mnist")


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST: test-written IDX files, lookup, missing data
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "gz"), [(".", True), (".", False), ("fashion-mnist", True), ("FashionMNIST/raw", False)]
)
def test_small_idx_set_via_root(tmp_path: Path, layout: str, gz: bool) -> None:
    images, labels = random_idx_set(20, seed=0)
    write_idx_set(tmp_path / layout, "test", images, labels, gz=gz)
    x, y = load_dataset("fashion-mnist", "test", root=tmp_path)
    assert x.shape == (20, 1, 28, 28)
    assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))
    torch.testing.assert_close(x[:, 0], torch.from_numpy(images.astype(np.float32) / 255), rtol=0, atol=0)
    with pytest.raises(
        ValueError,
        match=r"n must be at most the size of the fashion-mnist test split \(20 images\) "
        r"\(got 21\)",
    ):
        load_dataset("fashion-mnist", "test", n=21, root=tmp_path)


def test_env_lookup_uses_full_size_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(10000, 28, 28), dtype=np.uint8)
    labels = np.repeat(np.arange(10, dtype=np.uint8), 1000)
    rng.shuffle(labels)
    write_idx_set(tmp_path / "fashion-mnist", "test", images, labels, gz=False)
    monkeypatch.setenv(paths.DATA, str(tmp_path))
    x, y = load_dataset("fashion-mnist", "test", n=50, seed=2)
    idx = torch.randperm(10000, generator=torch.Generator().manual_seed(2))[:50].numpy()
    assert torch.equal(y, torch.from_numpy(labels[idx].astype(np.int64)))
    torch.testing.assert_close(x[:, 0], torch.from_numpy(images[idx].astype(np.float32) / 255), rtol=0, atol=0)


def test_env_lookup_rejects_small_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_idx_set(tmp_path, "train", *random_idx_set(20, seed=0), gz=True)
    monkeypatch.setenv(paths.DATA, str(tmp_path))
    with pytest.raises(
        DatasetError,
        match=r"train-labels-idx1-ubyte.gz has 20 items; the Fashion-MNIST train "
        r"split has 60000.*pass root= to load a smaller set",
    ):
        load_dataset("fashion-mnist", "train")


@pytest.mark.skipif(
    online("fashion-mnist.s3-website.eu-central-1.amazonaws.com"),
    reason="network reachable: the download would succeed",
)
def test_failing_download_lists_places_and_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv(paths.DATA, str(home))
    monkeypatch.setattr(data, "SYSTEM_FASHION_MNIST", tmp_path / "not-installed")
    with pytest.raises(DatasetError) as info:
        load_dataset("fashion-mnist", "test")
    msg = str(info.value)
    assert f"{tmp_path / 'not-installed'}\n" in msg and f"{home / 'FashionMNIST' / 'raw'}\n" in msg
    assert f"the download into {home} failed" in msg
    assert "`apt-get install -y dataset-fashion-mnist`" in msg and "set ADVLOGITS_DATA" in msg


# ---------------------------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------------------------


def test_cifar_env_lookup_requires_full_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cifar(tmp_path, {"data_batch_1": cifar_batch(30, 0)})
    monkeypatch.setenv(paths.DATA, str(tmp_path))
    with pytest.raises(
        DatasetError,
        match=r"is not the full CIFAR-10 train split: found 1 batch\(es\) of sizes "
        r"\[30\], expected 5 x 10000",
    ):
        load_dataset("cifar10", "train")


def test_data_only_is_an_explicit_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$ADVLOGITS_DATA_ONLY acts as root= for calls without one: a small set loads (the same set found through
    $ADVLOGITS_DATA is refused, above), it is still checked batch by batch, and root= wins over it."""
    small, other = tmp_path / "small", tmp_path / "other"
    train = cifar_batch(30, 0)
    write_cifar(small, {"data_batch_1": train, "test_batch": cifar_batch(10, 1)})
    write_cifar(other, {"test_batch": cifar_batch(7, 2)})
    monkeypatch.setenv(paths.DATA, str(tmp_path / "never-used"))
    monkeypatch.setenv(paths.DATA_ONLY, str(small))
    x, y = load_dataset("cifar10", "train")
    assert x.shape == (30, 3, 32, 32) and y.tolist() == train[b"labels"]
    assert len(load_dataset("cifar10", "test", root=other).y) == 7
    assert not (tmp_path / "never-used").exists(), "nothing downloaded"
    bad = cifar_batch(5, 3)
    bad[b"labels"] = bad[b"labels"][:4]
    write_cifar(small, {"test_batch": bad})
    with pytest.raises(DatasetError, match=r"test_batch has 5 images and 4 labels"):
        load_dataset("cifar10", "test")
    monkeypatch.setenv(paths.DATA_ONLY, str(tmp_path / "empty"))
    with pytest.raises(DatasetError, match=r"nothing is downloaded into an explicit root"):
        load_dataset("cifar10", "test")


@pytest.mark.skipif(online("www.cs.toronto.edu"), reason="network reachable: the download would succeed")
def test_cifar_failing_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(paths.DATA, str(tmp_path))
    with pytest.raises(
        DatasetError,
        match=rf"looked in {tmp_path}/cifar-10-batches-py and the download into "
        rf"{tmp_path} failed.*Fix: download https://www\.cs\.toronto\.edu",
    ):
        load_dataset("cifar10", "test")


# ---------------------------------------------------------------------------------------------
# the two settings are path settings
# ---------------------------------------------------------------------------------------------


def test_the_data_home_is_resolved_like_every_path_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``~`` expanded, a relative path taken from the repository's root (wherever the process runs in it), a file
    refused in one line naming the setting."""
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root / "chapters")
    monkeypatch.setenv(paths.DATA, "reldata")
    assert data.data_home() == root / "reldata"
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(paths.DATA, "~/d")
    assert data.data_home() == tmp_path / "d"
    monkeypatch.delenv(paths.DATA)
    assert data.data_home() == tmp_path / ".cache" / "advlogits" / "data"
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv(paths.DATA, str(tmp_path / "a-file"))
    with pytest.raises(paths.SettingError, match=r"^ADVLOGITS_DATA must name a folder \(got .*a-file"):
        load_dataset("cifar10", "test")


def test_data_only_is_resolved_like_every_path_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = tmp_path / "repo-like" / "small"
    write_cifar(small, {"test_batch": cifar_batch(6, 0)})
    monkeypatch.chdir(tmp_path / "repo-like")  # no checkout here: relative to the working directory
    monkeypatch.setenv(paths.DATA_ONLY, "small")
    assert len(load_dataset("cifar10", "test").y) == 6
    monkeypatch.setenv(paths.DATA_ONLY, str(small / "cifar-10-batches-py" / "test_batch"))
    with pytest.raises(paths.SettingError, match=r"^ADVLOGITS_DATA_ONLY must name a folder \(got .*test_batch"):
        load_dataset("cifar10", "test")
    assert paths.DATA_ONLY in paths.SETTINGS, "a child process (a chapter) gets it absolute"
