"""Tests for advlogits.datafiles: Fashion-MNIST's IDX files and CIFAR-10's pickles written by the tests, read back
exactly; truncated, mismatched and malicious files refused with a message saying what to do; the completeness check
and the cache."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from advlogits.datafiles import DatasetError, read_cifar10, read_fashion_mnist
from advlogits.synthetic import cifar_batch, write_cifar

from helpers import CodeRunningPayload, idx_images_bytes, idx_labels_bytes, random_idx_set, write_idx_set


def test_truncated_idx_file(tmp_path: Path) -> None:
    write_idx_set(tmp_path, "test", *random_idx_set(20, seed=0), gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(
        DatasetError,
        match=r"t10k-images-idx3-ubyte is truncated: 15596 bytes for 20 items, "
        r"expected 15696",
    ):
        read_fashion_mnist("test", [tmp_path])


def test_truncated_gz_file(tmp_path: Path) -> None:
    write_idx_set(tmp_path, "test", *random_idx_set(20, seed=0), gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(DatasetError, match=r"cannot read .*t10k-images-idx3-ubyte\.gz: EOFError.*truncated"):
        read_fashion_mnist("test", [tmp_path])


def test_wrong_magic_and_mismatched_counts(tmp_path: Path) -> None:
    images, labels = random_idx_set(20, seed=0)
    write_idx_set(tmp_path, "test", images, labels, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_labels_bytes(labels[:19]))
    with pytest.raises(DatasetError, match=r"has 20 images but .*t10k-labels-idx1-ubyte has 19 labels"):
        read_fashion_mnist("test", [tmp_path])
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_images_bytes(images))  # images where labels belong
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte has IDX magic number 2051, expected 2049"):
        read_fashion_mnist("test", [tmp_path])


def test_missing_under_root(tmp_path: Path) -> None:
    with pytest.raises(
        DatasetError,
        match=r"(?s)not found under root=.*FashionMNIST/raw.*"
        r"apt-get install -y dataset-fashion-mnist",
    ):
        read_fashion_mnist("train", [tmp_path])


def test_tiny_cifar_pixels_and_layout(tmp_path: Path) -> None:
    b1, b2, test = cifar_batch(30, seed=0), cifar_batch(10, seed=1), cifar_batch(20, seed=2)
    write_cifar(tmp_path, {"data_batch_1": b1, "test_batch": test})
    write_cifar(tmp_path, {"data_batch_2": b2}, protocol=5)  # numpy's other pickle path (_frombuffer)
    images, labels = read_cifar10("train", tmp_path)
    assert images.shape == (40, 3, 32, 32) and images.dtype == np.uint8 and labels.dtype == np.uint8
    assert labels.tolist() == b1[b"labels"] + b2[b"labels"]
    # CIFAR stores the R plane, then G, then B, each 32x32 row-major: pixel (c, r, k) is at c*1024 + r*32 + k.
    raw = b1[b"data"]
    for i, c, r, k in [(0, 0, 0, 0), (3, 1, 5, 7), (29, 2, 31, 30)]:
        assert images[i, c, r, k] == raw[i, c * 1024 + r * 32 + k]
    assert images[30, 2, 31, 31] == b2[b"data"][0, 3071]
    test_images, test_labels = read_cifar10("test", tmp_path)
    assert test_labels.tolist() == test[b"labels"]
    assert np.array_equal(test_images, test[b"data"].reshape(20, 3, 32, 32))
    with pytest.raises(ValueError, match="read-only"):
        images[0, 0, 0, 0] = 1  # the cached arrays cannot be changed by a caller


def test_a_rewritten_file_is_read_again(tmp_path: Path) -> None:
    """The cache is keyed by path, size and modification time: new files give new arrays."""
    write_idx_set(tmp_path, "test", *random_idx_set(20, seed=0), gz=False)
    first = read_fashion_mnist("test", [tmp_path])[1].copy()
    images, labels = random_idx_set(25, seed=1)
    write_idx_set(tmp_path, "test", images, labels, gz=False)
    again = read_fashion_mnist("test", [tmp_path])
    assert again[1].tolist() == labels.tolist() != first.tolist() and again[0].shape == (25, 1, 28, 28)


def test_a_copy_must_be_complete_when_the_split_size_is_given(tmp_path: Path) -> None:
    write_idx_set(tmp_path, "test", *random_idx_set(20, seed=0), gz=True)
    assert len(read_fashion_mnist("test", [tmp_path])[1]) == 20, "without full_size a smaller set is read"
    with pytest.raises(DatasetError, match=r"has 20 items; the Fashion-MNIST test split has 10000"):
        read_fashion_mnist("test", [tmp_path], full_size=10_000)
    write_cifar(tmp_path, {"test_batch": cifar_batch(30, 0)})
    assert len(read_cifar10("test", tmp_path)[1]) == 30
    with pytest.raises(DatasetError, match=r"not the full CIFAR-10 test split: found 1 batch\(es\) of sizes \[30\]"):
        read_cifar10("test", tmp_path, full_size=10_000)


def test_cifar_batch_gap_is_refused(tmp_path: Path) -> None:
    write_cifar(tmp_path, {"data_batch_1": cifar_batch(5, 0), "data_batch_3": cifar_batch(5, 1)})
    with pytest.raises(DatasetError, match=r"has data_batch_3 but not data_batch_2"):
        read_cifar10("train", tmp_path)


def test_cifar_bad_batch_content(tmp_path: Path) -> None:
    batch = cifar_batch(5, 0)
    batch[b"labels"] = batch[b"labels"][:4]
    write_cifar(tmp_path, {"test_batch": batch})
    with pytest.raises(DatasetError, match=r"test_batch has 5 images and 4 labels"):
        read_cifar10("test", tmp_path)
    batch = cifar_batch(5, 0)
    batch[b"data"] = batch[b"data"].astype(np.float32)
    write_cifar(tmp_path, {"test_batch": batch})
    with pytest.raises(DatasetError, match=r"b'data' must be a uint8 array of shape \(N, 3072\), got ndarray float32"):
        read_cifar10("test", tmp_path)


def test_malicious_cifar_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    batch = cifar_batch(5, 0)
    batch[b"labels"] = CodeRunningPayload(marker)
    folder = write_cifar(tmp_path, {"data_batch_1": batch})
    with pytest.raises(DatasetError, match=r"refusing to unpickle .*data_batch_1: it references (posix|os|nt)\.system"):
        read_cifar10("train", tmp_path)
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
        read_cifar10("train", tmp_path)
