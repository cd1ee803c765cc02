"""Tests for advlogits.data: the real Debian Fashion-MNIST, test-written IDX and CIFAR-10 sets, lookup
order, corrupt files, the failing download, and the restricted CIFAR unpickler."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from advlogits import data
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

from helpers import CodeRunningPayload, online

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
needs_debian = pytest.mark.skipif(
    not (DEBIAN / "train-labels-idx1-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist is not installed",
)


@pytest.fixture(autouse=True)
def no_root_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's $ADVLOGITS_DATA_ROOT must not change what these tests see."""
    monkeypatch.delenv(data.ROOT_ENV_VAR, raising=False)


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(data.ENV_VAR, raising=False)


# ---------------------------------------------------------------------------------------------
# helpers writing data sets in the real formats
# ---------------------------------------------------------------------------------------------


def _idx_images(images: np.ndarray) -> bytes:
    return struct.pack(">iiii", 2051, len(images), 28, 28) + images.astype(np.uint8).tobytes()


def _idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">ii", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def _write_idx_set(folder: Path, split: str, images: np.ndarray, labels: np.ndarray, *, gz: bool) -> None:
    """Write ``images`` (N, 28, 28) and ``labels`` (N,) as the IDX files of ``split``."""
    folder.mkdir(parents=True, exist_ok=True)
    prefix = "train" if split == "train" else "t10k"
    for stem, payload in (
        (f"{prefix}-images-idx3-ubyte", _idx_images(images)),
        (f"{prefix}-labels-idx1-ubyte", _idx_labels(labels)),
    ):
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(payload))
        else:
            (folder / stem).write_bytes(payload)


def _random_set(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=n, dtype=np.uint8)


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
    # the sizes the loaders check a full copy against are the registry's
    assert data._IDX_FILES["train"][2] == fashion.train_size and data._IDX_FILES["test"][2] == fashion.test_size
    assert data._CIFAR_FULL["train"][0] * data._CIFAR_FULL["train"][1] == cifar.train_size
    assert data._CIFAR_FULL["test"][0] * data._CIFAR_FULL["test"][1] == cifar.test_size


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
# Fashion-MNIST: test-written IDX files, lookup, corruption, missing data
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "gz"), [(".", True), (".", False), ("fashion-mnist", True), ("FashionMNIST/raw", False)]
)
def test_small_idx_set_via_root(tmp_path: Path, layout: str, gz: bool) -> None:
    images, labels = _random_set(20, seed=0)
    _write_idx_set(tmp_path / layout, "test", images, labels, gz=gz)
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
    _write_idx_set(tmp_path / "fashion-mnist", "test", images, labels, gz=False)
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    x, y = load_dataset("fashion-mnist", "test", n=50, seed=2)
    idx = torch.randperm(10000, generator=torch.Generator().manual_seed(2))[:50].numpy()
    assert torch.equal(y, torch.from_numpy(labels[idx].astype(np.int64)))
    torch.testing.assert_close(x[:, 0], torch.from_numpy(images[idx].astype(np.float32) / 255), rtol=0, atol=0)


def test_env_lookup_rejects_small_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_idx_set(tmp_path, "train", *_random_set(20, seed=0), gz=True)
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    with pytest.raises(
        DatasetError,
        match=r"train-labels-idx1-ubyte.gz has 20 items; the Fashion-MNIST train "
        r"split has 60000.*pass root= to load a smaller set",
    ):
        load_dataset("fashion-mnist", "train")


def test_truncated_idx_file(tmp_path: Path) -> None:
    _write_idx_set(tmp_path, "test", *_random_set(20, seed=0), gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(
        DatasetError,
        match=r"t10k-images-idx3-ubyte is truncated: 15596 bytes for 20 items, "
        r"expected 15696",
    ):
        load_dataset("fashion-mnist", "test", root=tmp_path)


def test_truncated_gz_file(tmp_path: Path) -> None:
    _write_idx_set(tmp_path, "test", *_random_set(20, seed=0), gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(DatasetError, match=r"cannot read .*t10k-images-idx3-ubyte\.gz: EOFError.*truncated"):
        load_dataset("fashion-mnist", "test", root=tmp_path)


def test_wrong_magic_and_mismatched_counts(tmp_path: Path) -> None:
    images, labels = _random_set(20, seed=0)
    _write_idx_set(tmp_path, "test", images, labels, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_labels(labels[:19]))
    with pytest.raises(DatasetError, match=r"has 20 images but .*t10k-labels-idx1-ubyte has 19 labels"):
        load_dataset("fashion-mnist", "test", root=tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_images(images))  # images where labels belong
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte has IDX magic number 2051, expected 2049"):
        load_dataset("fashion-mnist", "test", root=tmp_path)


def test_missing_under_root(tmp_path: Path) -> None:
    with pytest.raises(
        DatasetError,
        match=r"(?s)not found under root=.*FashionMNIST/raw.*"
        r"apt-get install -y dataset-fashion-mnist",
    ):
        load_dataset("fashion-mnist", "train", root=tmp_path)


@pytest.mark.skipif(
    online("fashion-mnist.s3-website.eu-central-1.amazonaws.com"),
    reason="network reachable: the download would succeed",
)
def test_failing_download_lists_places_and_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv(data.ENV_VAR, str(home))
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


def test_tiny_cifar_pixels_and_layout(tmp_path: Path) -> None:
    b1, b2, test = cifar_batch(30, seed=0), cifar_batch(10, seed=1), cifar_batch(20, seed=2)
    write_cifar(tmp_path, {"data_batch_1": b1, "test_batch": test})
    write_cifar(tmp_path, {"data_batch_2": b2}, protocol=5)  # numpy's other pickle path (_frombuffer)
    x, y = load_dataset("cifar10", "train", root=tmp_path)
    assert x.shape == (40, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert y.tolist() == b1[b"labels"] + b2[b"labels"]
    # CIFAR stores the R plane, then G, then B, each 32x32 row-major: pixel (c, r, k) is at c*1024 + r*32 + k.
    raw = b1[b"data"]
    for i, c, r, k in [(0, 0, 0, 0), (3, 1, 5, 7), (29, 2, 31, 30)]:
        assert x[i, c, r, k].item() == np.float32(raw[i, c * 1024 + r * 32 + k]) / np.float32(255)
    assert x[30, 2, 31, 31].item() == np.float32(b2[b"data"][0, 3071]) / np.float32(255)
    xt, yt = load_dataset("cifar10", "test", root=tmp_path, n=5, seed=0)
    idx = torch.randperm(20, generator=torch.Generator().manual_seed(0))[:5]
    assert yt.tolist() == [test[b"labels"][i] for i in idx]
    assert torch.equal(xt, torch.from_numpy(test[b"data"][idx.numpy()].reshape(5, 3, 32, 32)).float() / 255)


def test_cifar_batch_gap_is_refused(tmp_path: Path) -> None:
    write_cifar(tmp_path, {"data_batch_1": cifar_batch(5, 0), "data_batch_3": cifar_batch(5, 1)})
    with pytest.raises(DatasetError, match=r"has data_batch_3 but not data_batch_2"):
        load_dataset("cifar10", "train", root=tmp_path)


def test_cifar_bad_batch_content(tmp_path: Path) -> None:
    batch = cifar_batch(5, 0)
    batch[b"labels"] = batch[b"labels"][:4]
    write_cifar(tmp_path, {"test_batch": batch})
    with pytest.raises(DatasetError, match=r"test_batch has 5 images and 4 labels"):
        load_dataset("cifar10", "test", root=tmp_path)
    batch = cifar_batch(5, 0)
    batch[b"data"] = batch[b"data"].astype(np.float32)
    write_cifar(tmp_path, {"test_batch": batch})
    with pytest.raises(DatasetError, match=r"b'data' must be a uint8 array of shape \(N, 3072\), got ndarray float32"):
        load_dataset("cifar10", "test", root=tmp_path)


def test_malicious_cifar_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    batch = cifar_batch(5, 0)
    batch[b"labels"] = CodeRunningPayload(marker)
    folder = write_cifar(tmp_path, {"data_batch_1": batch})
    with pytest.raises(DatasetError, match=r"refusing to unpickle .*data_batch_1: it references (posix|os|nt)\.system"):
        load_dataset("cifar10", "train", root=tmp_path)
    assert not marker.exists()
    # Control: an ordinary unpickler does run it, so the refusal above is what protected us.
    with (folder / "data_batch_1").open("rb") as fh:
        pickle.load(fh, encoding="bytes")
    assert marker.exists()


def test_cifar_missing_under_root(tmp_path: Path) -> None:
    with pytest.raises(
        DatasetError,
        match=r"data_batch_1 does not exist \(nothing is downloaded into an "
        r"explicit root\).*cifar-10-python\.tar\.gz",
    ):
        load_dataset("cifar10", "train", root=tmp_path)


def test_cifar_env_lookup_requires_full_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cifar(tmp_path, {"data_batch_1": cifar_batch(30, 0)})
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    with pytest.raises(
        DatasetError,
        match=r"is not the full CIFAR-10 train split: found 1 batch\(es\) of sizes "
        r"\[30\], expected 5 x 10000",
    ):
        load_dataset("cifar10", "train")


def test_root_env_var_is_an_explicit_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$ADVLOGITS_DATA_ROOT acts as root= for calls without one: a small set loads (the same set found through
    $ADVLOGITS_DATA is refused, above), it is still checked batch by batch, and root= wins over it."""
    small, other = tmp_path / "small", tmp_path / "other"
    train = cifar_batch(30, 0)
    write_cifar(small, {"data_batch_1": train, "test_batch": cifar_batch(10, 1)})
    write_cifar(other, {"test_batch": cifar_batch(7, 2)})
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "never-used"))
    monkeypatch.setenv(data.ROOT_ENV_VAR, str(small))
    x, y = load_dataset("cifar10", "train")
    assert x.shape == (30, 3, 32, 32) and y.tolist() == train[b"labels"]
    assert len(load_dataset("cifar10", "test", root=other).y) == 7
    assert not (tmp_path / "never-used").exists(), "nothing downloaded"
    bad = cifar_batch(5, 3)
    bad[b"labels"] = bad[b"labels"][:4]
    write_cifar(small, {"test_batch": bad})
    with pytest.raises(DatasetError, match=r"test_batch has 5 images and 4 labels"):
        load_dataset("cifar10", "test")
    monkeypatch.setenv(data.ROOT_ENV_VAR, str(tmp_path / "empty"))
    with pytest.raises(DatasetError, match=r"nothing is downloaded into an explicit root"):
        load_dataset("cifar10", "test")


@pytest.mark.skipif(online("www.cs.toronto.edu"), reason="network reachable: the download would succeed")
def test_cifar_failing_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    with pytest.raises(
        DatasetError,
        match=rf"looked in {tmp_path}/cifar-10-batches-py and the download into "
        rf"{tmp_path} failed.*Fix: download https://www\.cs\.toronto\.edu",
    ):
        load_dataset("cifar10", "test")


# ---------------------------------------------------------------------------------------------
# augmentation of training batches
# ---------------------------------------------------------------------------------------------


def _crop_of_padded(image: torch.Tensor, top: int, left: int, flip: bool) -> torch.Tensor:
    """Loop-free reference for one image (C, H, W): the crop at (top, left) of its zero-padded copy, maybe flipped."""
    c, h, w = image.shape
    p = data.CROP_PADDING
    padded = torch.zeros(c, h + 2 * p, w + 2 * p, dtype=image.dtype)
    padded[:, p : p + h, p : p + w] = image
    crop = padded[:, top : top + h, left : left + w]
    return crop.flip(-1) if flip else crop


def _all_crops(image: torch.Tensor) -> tuple[torch.Tensor, list[tuple[int, int, bool]]]:
    """Every crop-flip output of one image, built one by one: candidates (M, C, H, W) and their (top, left, flip)."""
    positions = [
        (top, left, flip)
        for top in range(2 * data.CROP_PADDING + 1)
        for left in range(2 * data.CROP_PADDING + 1)
        for flip in (False, True)
    ]
    return torch.stack([_crop_of_padded(image, *pos) for pos in positions]), positions


def _batch(n: int, shape: tuple[int, int, int] = (3, 32, 32), seed: int = 0) -> torch.Tensor:
    return torch.rand((n, *shape), generator=torch.Generator().manual_seed(seed))


def test_augmentations_are_one_registry() -> None:
    from advlogits import profiles, train

    assert data.AUGMENTATIONS == ("none", "crop-flip") and data.CROP_PADDING == 4
    assert train.AUGMENTATIONS is data.AUGMENTATIONS, "train and profiles check against data's tuple"
    assert profiles.AUGMENTATIONS is data.AUGMENTATIONS


def test_crop_flip_keeps_shape_dtype_range_and_is_seeded() -> None:
    x = _batch(16)
    before = x.clone()
    for dtype in (torch.float32, torch.float64):
        out = data.augment(x.to(dtype), "crop-flip", generator=torch.Generator().manual_seed(0))
        assert out.shape == x.shape and out.dtype == dtype and out.device == x.device and out.is_contiguous()
        assert float(out.min()) >= 0.0 and float(out.max()) <= float(x.max())
    assert torch.equal(x, before), "the input is never modified"
    first = data.augment(x, "crop-flip", generator=torch.Generator().manual_seed(1))
    again = data.augment(x, "crop-flip", generator=torch.Generator().manual_seed(1))
    other = data.augment(x, "crop-flip", generator=torch.Generator().manual_seed(2))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.data_ptr() != x.data_ptr()
    generator = torch.Generator().manual_seed(1)
    assert not torch.equal(
        data.augment(x, "crop-flip", generator=generator), data.augment(x, "crop-flip", generator=generator)
    ), "the generator moves on"
    assert data.augment(x[:0], "crop-flip", generator=generator).shape == (0, 3, 32, 32)


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28), (2, 10, 13)])
def test_crop_flip_equals_a_loop_over_images(shape: tuple[int, int, int]) -> None:
    """The vectorised batch equals the documented recipe written one image at a time, with the documented draws
    (offsets as one randint of shape (2, N): rows then columns; then flips as rand(N) < 0.5)."""
    x = _batch(6, shape, seed=3)
    out = data.augment(x, "crop-flip", generator=torch.Generator().manual_seed(7))
    generator = torch.Generator().manual_seed(7)
    offsets = torch.randint(0, 2 * data.CROP_PADDING + 1, (2, len(x)), generator=generator)
    flips = torch.rand(len(x), generator=generator) < 0.5
    for i in range(len(x)):
        expected = _crop_of_padded(x[i], int(offsets[0, i]), int(offsets[1, i]), bool(flips[i]))
        assert torch.equal(out[i], expected), i


def test_every_crop_flip_output_is_a_crop_of_the_padded_image_and_about_half_are_flipped() -> None:
    """Over 4000 copies of one image (distinct pixel values, so every crop and flip is distinguishable), each output
    is one of the 81 x 2 candidates built image by image; about half are flipped and every offset occurs."""
    h, w = 12, 16
    image = (torch.arange(h * w, dtype=torch.float32).reshape(1, h, w) + 1) / (h * w + 1)
    candidates, positions = _all_crops(image)
    x = image.expand(4000, 1, h, w)
    out = data.augment(x, "crop-flip", generator=torch.Generator().manual_seed(0))
    distance = torch.cdist(out.flatten(1).double(), candidates.flatten(1).double())
    best = distance.argmin(dim=1)  # the nearest candidate (cdist rounds); then compared exactly
    assert torch.equal(out, candidates[best]), "every output is a candidate exactly"
    drawn = [positions[i] for i in best.tolist()]
    flipped = sum(f for _, _, f in drawn) / len(drawn)
    assert 0.46 < flipped < 0.54, flipped  # 1/2 within 5 standard deviations (0.008)
    assert {(top, left) for top, left, _ in drawn} == {(top, left) for top, left, _ in positions}, (
        "all 81 offsets occur"
    )


def test_augment_none_returns_the_input_and_draws_nothing() -> None:
    x = _batch(4)
    generator = torch.Generator().manual_seed(5)
    state = generator.get_state()
    assert data.augment(x, "none", generator=generator) is x
    assert torch.equal(generator.get_state(), state)


def test_augment_refuses_bad_arguments() -> None:
    x, generator = _batch(2), torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match=r"^kind must be one of 'none', 'crop-flip' \(got 'flip'\)$"):
        data.augment(x, "flip", generator=generator)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^generator must be a CPU torch\.Generator \(got None\); pass "):
        data.augment(x, "crop-flip", generator=None)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError,
        match=r"^x must be a tensor of shape \(N, C, H, W\) \(got torch\.float32 tensor "
        r"of shape \(3, 32, 32\)\)$",
    ):
        data.augment(x[0], "crop-flip", generator=generator)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_crop_flip_on_a_gpu_equals_the_cpu() -> None:
    x = _batch(64)
    cpu = data.augment(x, "crop-flip", generator=torch.Generator().manual_seed(3))
    gpu = data.augment(x.cuda(), "crop-flip", generator=torch.Generator().manual_seed(3))
    assert gpu.device.type == "cuda" and torch.equal(gpu.cpu(), cpu)
