"""Synthetic CIFAR-10 in the real on-disk format, for what must run without the data set: the GPU check
(``benchmarks.gpu``, on a machine with no data set and no network) and the tests of the CIFAR reader and of the
paper profile's code path.

The format is CIFAR-10's python version, as `advlogits.data` reads it: a folder ``cifar-10-batches-py/`` with
``data_batch_1`` to ``data_batch_5``, ``test_batch`` and ``batches.meta``, each a pickled dict with bytes keys; a
batch's ``data`` is a (N, 3072) uint8 array (per row the 1024 red, then green, then blue pixels of a 32 x 32 image)
and its ``labels`` a list of N ints in 0..9.

Examples::

    write_synthetic_cifar(root, n_train=100, n_test=20, seed=0)
    x, y = load_dataset("cifar10", "train", root=root)  # (100, 3, 32, 32) floats in [0, 1], (100,) labels
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .data import class_names

FOLDER = "cifar-10-batches-py"
PIXELS = 3 * 32 * 32  # values per image: channel-major, as CIFAR-10 stores them
CLASSES = 10
SIGNAL = 0.15  # `write_synthetic_cifar`'s weight of the class prototype in an image (the rest is uniform noise)
MAX_TRAIN_BATCHES = 5  # data_batch_1 .. data_batch_5, as in the real set


def class_prototypes(rng: np.random.Generator) -> np.ndarray:
    """(10, 3072) pixel values in 0..255: per class, random 4 x 4 blocks of 8 x 8 pixels in each channel, a coarse
    pattern that a network can learn to tell from the other classes'."""
    blocks = rng.integers(0, 256, size=(CLASSES, 3, 4, 4))
    return blocks.repeat(8, axis=2).repeat(8, axis=3).reshape(CLASSES, PIXELS)


def cifar_batch(
    n: int,
    seed: int | np.random.Generator,
    *,
    labels: Sequence[int] | np.ndarray | None = None,
    prototypes: np.ndarray | None = None,
    signal: float = 0.0,
    name: str = "synthetic batch",
    first: int = 0,
) -> dict[bytes, object]:
    """One batch of ``n`` images in CIFAR-10's format: uniform random pixels, or with ``prototypes`` (from
    `class_prototypes`) ``signal`` times its class's prototype plus ``1 - signal`` times the noise, rounded.

    ``seed``: an int, or a Generator to draw from (several batches from one stream). ``labels`` default to random
    classes; ``name`` is the batch's label and ``first`` the number in its first image's file name.
    """
    if not 0.0 <= signal <= 1.0 or (signal > 0 and prototypes is None):
        raise ValueError(f"signal={signal} must be in [0, 1], and above 0 only with prototypes")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, size=n) if labels is None else np.asarray(labels)
    if labels.shape != (n,) or labels.min(initial=0) < 0 or labels.max(initial=0) >= CLASSES:
        raise ValueError(f"labels must be {n} classes in 0..{CLASSES - 1}; got shape {labels.shape}")
    data = rng.integers(0, 256, size=(n, PIXELS), dtype=np.uint8)
    if signal > 0:
        data = np.rint(signal * prototypes[labels] + (1 - signal) * data.astype(np.float32)).astype(np.uint8)
    return {
        b"batch_label": name.encode(),
        b"labels": [int(v) for v in labels],
        b"data": data,
        b"filenames": [f"synthetic_{first + i:06d}.png".encode() for i in range(n)],
    }


def write_cifar(root: Path, batches: dict[str, dict[bytes, object]], *, protocol: int = 2) -> Path:
    """Pickle ``batches`` (file name -> batch, e.g. ``{"data_batch_1": ..., "test_batch": ...}``) and a
    ``batches.meta`` into ``root/cifar-10-batches-py/``, as in the official archive; returns that folder.

    The batches are pickled as they are, so a test may plant a malformed one. ``protocol`` 2 is the archive's; 5
    takes numpy's other unpickling path (the reader must accept both)."""
    folder = Path(root) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for file, batch in batches.items():
        (folder / file).write_bytes(pickle.dumps(batch, protocol=protocol))
    meta = {
        b"num_cases_per_batch": 10_000,  # the real archive's (the reader does not read this file)
        b"label_names": [c.encode() for c in class_names("cifar10")],
        b"num_vis": PIXELS,
    }
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def write_synthetic_cifar(root: Path, *, n_train: int, n_test: int, seed: int, signal: float = SIGNAL) -> Path:
    """A learnable CIFAR-10 of ``n_train`` training images (in up to five batch files, as in the real set) and
    ``n_test`` test images in ``root``: each image ``signal`` times its class's prototype plus noise, so that a
    network learns the task (the GPU check compares bf16 with fp32 training on it). Returns the folder."""
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train={n_train} and n_test={n_test} must both be at least 1")
    rng = np.random.default_rng(seed)
    prototypes = class_prototypes(rng)
    parts = np.array_split(np.arange(n_train), min(MAX_TRAIN_BATCHES, n_train))
    batches = {
        f"data_batch_{i}": cifar_batch(
            len(part),
            rng,
            prototypes=prototypes,
            signal=signal,
            name=f"synthetic training batch {i} of {len(parts)}",
            first=int(part[0]),
        )
        for i, part in enumerate(parts, start=1)
    }
    batches["test_batch"] = cifar_batch(
        n_test, rng, prototypes=prototypes, signal=signal, name="synthetic testing batch 1 of 1", first=n_train
    )
    return write_cifar(root, batches)
