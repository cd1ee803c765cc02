"""advlogits.synthetic: CIFAR-10 files that the library's reader takes as the real set, one writer for the tests
and the GPU check; the learnable set holds its classes apart, the same seed gives the same bytes, bad input is
refused in one line."""

from __future__ import annotations

import numpy as np
import pytest

from advlogits.data import load_dataset
from advlogits.synthetic import FOLDER, cifar_batch, class_prototypes, write_synthetic_cifar


def test_the_learnable_set_reads_back_as_cifar10_in_five_training_batches(tmp_path):
    folder = write_synthetic_cifar(tmp_path, n_train=203, n_test=17, seed=3)
    assert folder == tmp_path / FOLDER
    assert {p.name for p in folder.iterdir()} == {
        *(f"data_batch_{i}" for i in range(1, 6)),
        "batches.meta",
        "test_batch",
    }
    x, y = load_dataset("cifar10", "train", root=tmp_path)
    x_test, y_test = load_dataset("cifar10", "test", root=tmp_path)
    assert x.shape == (203, 3, 32, 32) and x_test.shape == (17, 3, 32, 32)
    assert 0 <= int(y.min()) and int(y.max()) <= 9 and len(y_test) == 17
    again = tmp_path / "again"
    write_synthetic_cifar(again, n_train=203, n_test=17, seed=3)
    assert all((folder / f).read_bytes() == (again / FOLDER / f).read_bytes() for f in ("data_batch_5", "test_batch"))


def test_each_class_mean_is_nearest_its_own_prototype():
    rng = np.random.default_rng(0)
    prototypes = class_prototypes(rng)
    batch = cifar_batch(2000, rng, prototypes=prototypes, signal=0.15)
    data, labels = batch[b"data"].astype(float), np.asarray(batch[b"labels"])
    means = np.stack([data[labels == c].mean(0) for c in range(10)])
    centred = prototypes - prototypes.mean(1, keepdims=True)
    nearest = np.argmax((means - means.mean(1, keepdims=True)) @ centred.T, axis=1)
    assert nearest.tolist() == list(range(10)), "the task can be learnt: each class looks like its prototype"


def test_plain_batches_are_uniform_noise_with_the_labels_asked_for():
    batch = cifar_batch(500, seed=1, labels=[k % 10 for k in range(500)])
    assert batch[b"labels"][:12] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    data = batch[b"data"]
    assert data.dtype == np.uint8 and data.shape == (500, 3072)
    assert 120 < data.mean() < 135 and data.min() == 0 and data.max() == 255


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"signal": 0.2}, r"signal=0.2 must be in \[0, 1\], and above 0 only with prototypes"),
        ({"labels": [1, 2]}, r"labels must be 3 classes in 0..9; got shape \(2,\)"),
        ({"labels": [1, 2, 10]}, r"labels must be 3 classes in 0..9"),
    ],
)
def test_a_bad_batch_is_refused_in_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cifar_batch(3, seed=0, **kwargs)


def test_an_empty_split_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"n_train=0 and n_test=5 must both be at least 1"):
        write_synthetic_cifar(tmp_path, n_train=0, n_test=5, seed=0)
