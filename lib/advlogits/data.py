"""Fashion-MNIST and CIFAR-10 as tensors: pixels in [0, 1], labels as int64.

The files are read here, not by torchvision, for two reasons: Debian's ``dataset-fashion-mnist`` ships
recompressed ``.gz`` files that torchvision's md5 check rejects, and CIFAR-10's batches are pickles, which
we open with an unpickler that can only rebuild numpy arrays (a pickle can otherwise run any code).
torchvision is used only to *download* a missing data set.

Where the files are looked for (first hit wins; a corrupt copy raises instead of falling through):

* ``root=`` given: only there. Nothing is downloaded into an explicit ``root``.
* otherwise ``$ADVLOGITS_DATA_ROOT`` (if set) is that explicit ``root`` for every call, with the same rules:
  it lets a process that cannot pass ``root=`` (a chapter run by papermill, in tests) read a small set. Store
  keys do not record which copy of the data a model saw, so give such a run its own ``$ADVLOGITS_HOME``.
* otherwise ``$ADVLOGITS_DATA`` (if set), then, for Fashion-MNIST, the Debian folder
  ``/usr/share/datasets/fashion-mnist``, then a download into the data home (``$ADVLOGITS_DATA`` or
  ``~/.cache/advlogits/data``).

A Fashion-MNIST folder may hold the four IDX files directly, in ``fashion-mnist/`` or in torchvision's
``FashionMNIST/raw/``, each raw or ``.gz``. A CIFAR-10 folder holds ``cifar-10-batches-py/``.

Size rule: every file is checked for internal consistency (magic number, image size, counts that match
the file length, labels in 0..9). A copy found by the automatic lookup must also be the full data set
(Fashion-MNIST 60000/10000 images, CIFAR-10 5 x 10000 + 10000, balanced classes); an explicit ``root``
(or ``$ADVLOGITS_DATA_ROOT``) may hold a smaller set in the same format (tests, excerpts). CIFAR-10's train
split is ``data_batch_1``, ``data_batch_2``, ... up to the first missing number (at least ``data_batch_1``).

Decoded uint8 arrays are cached in-process (keyed by path, size and mtime); every call returns new
float tensors, so callers may modify what they get.

`augment` transforms a training batch (``AUGMENTATIONS``: "none", or "crop-flip", CIFAR-10's random padded crop
and horizontal flip); `advlogits.train` applies it to every batch when a config asks for it.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import os
import pickle
import socket
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, NamedTuple, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .accel import to_device
from .checks import check_choice, check_int, check_seed, describe, fail

DatasetName = Literal["fashion-mnist", "cifar10"]
SplitName = Literal["train", "test"]
DATASETS: tuple[str, ...] = get_args(DatasetName)
SPLITS: tuple[str, ...] = get_args(SplitName)
AugmentName = Literal["none", "crop-flip"]
AUGMENTATIONS: tuple[str, ...] = get_args(AugmentName)  # the kinds of `augment` (and of TrainConfig.augment)
CROP_PADDING = 4  # "crop-flip": zero pixels added on each side before the random crop of the original size

ENV_VAR = "ADVLOGITS_DATA"
ROOT_ENV_VAR = "ADVLOGITS_DATA_ROOT"  # the explicit root= of every call that passes none (small sets allowed)
SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist
DOWNLOAD_TIMEOUT_S = 30.0  # per socket operation, so an unreachable mirror fails instead of hanging

APT_HINT = "apt-get install -y dataset-fashion-mnist"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


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

# Fashion-MNIST: split -> (images stem, labels stem, full-size count)
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000),
}
_IDX_IMAGES_MAGIC, _IDX_LABELS_MAGIC = 2051, 2049
_FASHION_LAYOUTS = (".", "fashion-mnist", "FashionMNIST/raw")

_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_FULL = {"train": (5, 10000), "test": (1, 10000)}  # (batches, images per batch)


class Split(NamedTuple):
    """One split of a data set: ``x`` (N, C, H, W) float32 in [0, 1], ``y`` (N,) int64 class indices."""

    x: Tensor
    y: Tensor


class DatasetError(RuntimeError):
    """The data set is missing or its files are corrupt; the message says how to get a good copy."""


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
    """Folder for downloads: ``$ADVLOGITS_DATA`` if set, else ``~/.cache/advlogits/data``."""
    env = os.environ.get(ENV_VAR, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "advlogits" / "data"


def load_dataset(
    dataset: DatasetName, split: SplitName, *, n: int | None = None, seed: int = 0, root: str | Path | None = None
) -> Split:
    """Load a split as tensors (see the module docstring for where files are looked for).

    ``n`` draws a random subset of ``n`` images without replacement: the first ``n`` entries of
    ``torch.randperm(size, generator=torch.Generator().manual_seed(seed))``, in that permuted order
    (deterministic for a seed). ``n=None`` returns the whole split in file order.
    Returns ``Split(x, y)``: x (N, C, H, W) float32 = uint8 pixels / 255, y (N,) int64.
    """
    check_choice("dataset", dataset, DATASETS)
    check_choice("split", split, SPLITS)
    if n is not None:
        check_int("n", n, at_least=1, hint="n is the subset size; None loads the whole split")
    check_seed("seed", seed)

    if root is None and os.environ.get(ROOT_ENV_VAR, "").strip():
        root = os.environ[ROOT_ENV_VAR].strip()
    root_path = None if root is None else Path(root).expanduser()
    if dataset == "fashion-mnist":
        images, labels = _load_fashion_mnist(split, root_path)
    else:
        images, labels = _load_cifar10(split, root_path)

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


def augment(x: Tensor, kind: AugmentName, *, generator: torch.Generator) -> Tensor:
    """A training batch ``x`` (N, C, H, W) augmented by ``kind``, one random draw per image.

    ``"none"`` returns ``x`` itself (nothing drawn from ``generator``). ``"crop-flip"`` is the standard CIFAR-10
    recipe: every image is zero-padded by `CROP_PADDING` pixels on each side, a window of its original size
    (H, W) is cropped at a uniformly random offset (each of the ``(2 * CROP_PADDING + 1) ** 2`` positions equally
    likely), and the crop is flipped left-right with probability 1/2. Vectorised over the batch: the offsets
    (rows then columns, one ``randint`` of shape (2, N)) and then the flips (``rand(N) < 0.5``) are drawn on the
    CPU from ``generator`` and moved to x's device, so the result depends only on the generator's state and N,
    not on the device. Returns a new tensor with x's shape, dtype and device (``x`` is never modified); pixel
    values stay in x's range, plus the zeros of the padding.
    """
    check_choice("kind", kind, AUGMENTATIONS)
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        fail(
            "generator",
            "a CPU torch.Generator",
            generator,
            hint="pass torch.Generator().manual_seed(seed); the draws are moved to x's device",
        )
    if not isinstance(x, Tensor) or x.ndim != 4:
        fail("x", "a tensor of shape (N, C, H, W)", x, shown=describe(x) if isinstance(x, Tensor) else type(x).__name__)
    if kind == "none":
        return x
    n, _, h, w = x.shape
    p = CROP_PADDING
    offsets = torch.randint(0, 2 * p + 1, (2, n), generator=generator)
    flipped = torch.rand(n, generator=generator) < 0.5
    device = x.device
    top, left, flip = to_device(torch.cat([offsets, flipped[None].long()]), device)  # one copy, no host wait
    rows = top[:, None] + torch.arange(h, device=device)  # (N, H): the padded image's rows each crop takes
    cols = left[:, None] + torch.arange(w, device=device)  # (N, W): its columns, right to left where flipped
    cols = torch.where(flip[:, None].bool(), cols.flip(1), cols)
    padded = F.pad(x, (p, p, p, p))
    batch = torch.arange(n, device=device)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C): the batch index dims come first
    return out.permute(0, 3, 1, 2).contiguous()


@contextlib.contextmanager
def socket_timeout(seconds: float) -> Iterator[None]:
    """Set the process-wide default socket timeout for a download, restoring the old one after."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _file_key(path: Path) -> tuple[str, int, int]:
    """Cache key of a file: its path with size and mtime, so a rewritten file is read again."""
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


# ----------------------------------------------------------------------------------------------
# Fashion-MNIST (IDX files)
# ----------------------------------------------------------------------------------------------


def _find_idx(folder: Path, stem: str) -> Path | None:
    """The raw IDX file ``stem`` in ``folder``, else its ``.gz``, else None."""
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _fashion_folders(base: Path) -> list[Path]:
    return [base / layout if layout != "." else base for layout in _FASHION_LAYOUTS]


def _locate_fashion(bases: list[Path], split: str) -> tuple[Path, Path] | None:
    """(images, labels) paths of the first folder under ``bases`` holding both files of ``split``."""
    img_stem, lbl_stem, _ = _IDX_FILES[split]
    for base in bases:
        for folder in _fashion_folders(base):
            img, lbl = _find_idx(folder, img_stem), _find_idx(folder, lbl_stem)
            if img is not None and lbl is not None:
                return img, lbl
    return None


def _fashion_fix(files: str) -> str:
    return (
        f"Fix: `{APT_HINT}` (installs {SYSTEM_FASHION_MNIST}), or set {ENV_VAR} to a folder holding "
        f"the four IDX files ({files}, raw or .gz)."
    )


def _load_fashion_mnist(split: str, root: Path | None) -> tuple[np.ndarray, np.ndarray]:
    img_stem, lbl_stem, _ = _IDX_FILES[split]
    files = ", ".join(f for s in SPLITS for f in _IDX_FILES[s][:2])
    wanted = f"{img_stem}[.gz] and {lbl_stem}[.gz]"
    if root is not None:
        found = _locate_fashion([root], split)
        if found is None:
            looked = "\n".join(f"  - {f}" for f in _fashion_folders(root))
            raise DatasetError(
                f"Fashion-MNIST {split} split not found under root={str(root)!r}: looked for {wanted} in\n"
                f"{looked}\nFix: put the four IDX files ({files}, raw or .gz) there, or call without root= "
                f"to use ${ENV_VAR} or the Debian package (`{APT_HINT}`)."
            )
        return _read_idx_pair(*found, split=split, strict=False)

    home = data_home()
    bases = list(
        dict.fromkeys(
            ([Path(os.environ[ENV_VAR]).expanduser()] if os.environ.get(ENV_VAR, "").strip() else [])
            + [SYSTEM_FASHION_MNIST, home]
        )
    )
    found = _locate_fashion(bases, split)
    if found is None:
        try:
            _download_fashion_mnist(home)
        except Exception as exc:  # any download failure becomes one actionable message
            looked = "\n".join(f"  - {f}" for b in bases for f in _fashion_folders(b))
            raise DatasetError(
                f"Fashion-MNIST {split} split not found: looked for {wanted} in\n{looked}\n"
                f"and the download into {home} failed ({type(exc).__name__}: {exc}).\n" + _fashion_fix(files)
            ) from exc
        found = _locate_fashion([home], split)
        if found is None:
            raise DatasetError(
                f"torchvision reported a successful Fashion-MNIST download into {home}, but "
                f"{wanted} are not there. " + _fashion_fix(files)
            )
    return _read_idx_pair(*found, split=split, strict=True)


def _download_fashion_mnist(home: Path) -> None:
    """Download Fashion-MNIST with torchvision into ``home/FashionMNIST/raw`` (md5-checked by torchvision)."""
    import torchvision  # imported here: it costs ~1.5 s and is needed only to download

    home.mkdir(parents=True, exist_ok=True)
    with socket_timeout(DOWNLOAD_TIMEOUT_S):
        torchvision.datasets.FashionMNIST(root=str(home), train=True, download=True)


def _read_bytes(path: Path) -> bytes:
    """Whole content of an IDX file, gunzipped if it ends in ``.gz``."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(
            f"cannot read {path}: {type(exc).__name__}: {exc}. The file is truncated or "
            f"corrupt: delete it and get a fresh copy (`{APT_HINT}`)."
        ) from exc


def _parse_idx(path: Path, *, magic: int, dims: tuple[int, ...]) -> np.ndarray:
    """Parse an IDX file of unsigned bytes: big-endian int32 magic, count, ``dims``, then the payload."""
    data = _read_bytes(path)
    header_len = 4 * (2 + len(dims))
    fix = f"delete it and get a fresh copy (`{APT_HINT}`)"
    if len(data) < header_len:
        raise DatasetError(
            f"{path} is truncated: {len(data)} bytes, shorter than its {header_len}-byte IDX header; {fix}."
        )
    header = np.frombuffer(data, dtype=">i4", count=2 + len(dims))
    if int(header[0]) != magic:
        raise DatasetError(
            f"{path} has IDX magic number {int(header[0])}, expected {magic}; it is not "
            f"this IDX file, or it is corrupt: {fix}."
        )
    count, file_dims = int(header[1]), tuple(int(d) for d in header[2:])
    if file_dims != dims:
        raise DatasetError(f"{path} holds items of shape {file_dims}, expected {dims}; {fix}.")
    expected = header_len + count * int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise DatasetError(f"{path} is {state}: {len(data)} bytes for {count} items, expected {expected}; {fix}.")
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(count, *dims)


def _read_idx_pair(images_path: Path, labels_path: Path, *, split: str, strict: bool) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 1, 28, 28) uint8 and labels (N,) uint8, checked (``strict``: full-size data set too)."""
    return _read_idx_pair_cached(_file_key(images_path), _file_key(labels_path), split, strict)


@functools.lru_cache(maxsize=4)
def _read_idx_pair_cached(
    images_key: tuple[str, int, int], labels_key: tuple[str, int, int], split: str, strict: bool
) -> tuple[np.ndarray, np.ndarray]:
    images_path, labels_path = Path(images_key[0]), Path(labels_key[0])
    images = _parse_idx(images_path, magic=_IDX_IMAGES_MAGIC, dims=(28, 28))
    labels = _parse_idx(labels_path, magic=_IDX_LABELS_MAGIC, dims=())
    if len(images) != len(labels):
        raise DatasetError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} "
            f"labels; the two files come from different copies: replace both."
        )
    if len(labels) == 0:
        raise DatasetError(f"{labels_path} holds no labels; an IDX set needs at least one image.")
    if labels.max() > 9:
        raise DatasetError(
            f"{labels_path} holds label {int(labels.max())}; Fashion-MNIST labels are 0..9. "
            f"Delete it and get a fresh copy (`{APT_HINT}`)."
        )
    if strict:
        full = _IDX_FILES[split][2]
        if len(labels) != full:
            raise DatasetError(
                f"{labels_path} has {len(labels)} items; the Fashion-MNIST {split} split has {full}. "
                f"Replace the files with the full set (`{APT_HINT}`), or pass root= to load a smaller set."
            )
        counts = np.bincount(labels, minlength=10)
        if not (counts == full // 10).all():
            raise DatasetError(
                f"{labels_path} has per-class counts {counts.tolist()}, expected {full // 10} "
                f"each; the file is corrupt: get a fresh copy (`{APT_HINT}`)."
            )
    images = images.reshape(len(images), 1, 28, 28)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


# ----------------------------------------------------------------------------------------------
# CIFAR-10 (python pickles, read with a restricted unpickler)
# ----------------------------------------------------------------------------------------------


def _numpy_globals() -> dict[tuple[str, str], object]:
    """The only globals a CIFAR batch pickle may name: numpy's array rebuilders, and bytes decoding."""
    import codecs

    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # how protocol-2 pickles written by Python 3 store bytes
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays and plain containers only; any other global is refused."""

    def __init__(self, file, path: Path) -> None:  # noqa: ANN001
        super().__init__(file, encoding="bytes")
        self._path = path
        self._allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise DatasetError(
                f"refusing to unpickle {self._path}: it references {module}.{name}, which a CIFAR-10 batch "
                f"never contains (only numpy arrays, lists and bytes). The file may be malicious: delete "
                f"it and get the data set from {CIFAR10_URL}."
            ) from None


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 (R, G, B planes, each row-major) and labels (N,) uint8 of one batch."""
    fix = f"delete {path.parent} and get a fresh copy from {CIFAR10_URL}"
    try:
        with path.open("rb") as fh:
            batch = _BatchUnpickler(fh, path).load()
    except DatasetError:
        raise
    except Exception as exc:  # truncated/garbled pickles raise many types (EOFError, UnpicklingError, ...)
        raise DatasetError(f"cannot unpickle {path}: {type(exc).__name__}: {exc}; {fix}.") from exc
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DatasetError(f"{path} is not a CIFAR-10 batch (a dict with keys b'data' and b'labels'); {fix}.")
    data, labels = batch[b"data"], batch[b"labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{type(data).__name__} {getattr(data, 'dtype', '')} {getattr(data, 'shape', '')}"
        raise DatasetError(f"{path}: b'data' must be a uint8 array of shape (N, 3072), got {desc}; {fix}.")
    if not isinstance(labels, list) or not all(type(v) is int for v in labels):
        raise DatasetError(f"{path}: b'labels' must be a list of ints; {fix}.")
    if len(labels) != len(data) or len(labels) == 0:
        raise DatasetError(f"{path} has {len(data)} images and {len(labels)} labels (need equal, >= 1); {fix}.")
    label_arr = np.asarray(labels, dtype=np.int64)
    if label_arr.min() < 0 or label_arr.max() > 9:
        raise DatasetError(f"{path} holds labels outside 0..9 ({label_arr.min()}..{label_arr.max()}); {fix}.")
    return data.reshape(len(data), 3, 32, 32), label_arr.astype(np.uint8)


def _cifar_batch_files(folder: Path, split: str) -> list[Path]:
    """Batch files of a split: ``test_batch``, or ``data_batch_1..k`` up to the first missing number."""
    if split == "test":
        return [folder / "test_batch"]
    files: list[Path] = []
    while (folder / f"data_batch_{len(files) + 1}").is_file():
        files.append(folder / f"data_batch_{len(files) + 1}")
    return files


def _load_cifar10(split: str, root: Path | None) -> tuple[np.ndarray, np.ndarray]:
    base = root if root is not None else data_home()
    folder = base / _CIFAR_DIR
    how = (
        f"download {CIFAR10_URL} and extract it into a folder, so that it holds {_CIFAR_DIR}/ "
        f"(data_batch_1..5, test_batch), then set {ENV_VAR} to that folder or pass root="
    )
    first = "test_batch" if split == "test" else "data_batch_1"
    if not (folder / first).is_file():
        if root is not None:
            raise DatasetError(
                f"CIFAR-10 {split} split not found: {folder / first} does not exist "
                f"(nothing is downloaded into an explicit root). Fix: {how}."
            )
        try:
            _download_cifar10(base)
        except Exception as exc:  # any download failure becomes one actionable message
            raise DatasetError(
                f"CIFAR-10 {split} split not found: looked in {folder} and the download into "
                f"{base} failed ({type(exc).__name__}: {exc}). Fix: {how}."
            ) from exc
        if not (folder / first).is_file():
            raise DatasetError(f"the CIFAR-10 download into {base} did not produce {folder / first}. Fix: {how}.")
    files = _cifar_batch_files(folder, split)
    return _read_cifar_files(tuple(_file_key(f) for f in files), split, root is None)


@functools.lru_cache(maxsize=2)
def _read_cifar_files(
    keys: tuple[tuple[str, int, int], ...], split: str, strict: bool
) -> tuple[np.ndarray, np.ndarray]:
    paths = [Path(k[0]) for k in keys]
    folder = paths[0].parent
    if split == "train":
        names = {p.name for p in paths}
        stray = sorted(p.name for p in folder.glob("data_batch_*") if p.name not in names)
        if stray:
            raise DatasetError(
                f"{folder} has {', '.join(stray)} but not data_batch_{len(paths) + 1}: train "
                f"batches must be numbered 1, 2, ... without gaps. Restore the missing batch."
            )
    parts = [_read_cifar_batch(p) for p in paths]
    if strict:
        n_batches, per_batch = _CIFAR_FULL[split]
        sizes = [len(lbl) for _, lbl in parts]
        if len(parts) != n_batches or any(s != per_batch for s in sizes):
            raise DatasetError(
                f"{folder} is not the full CIFAR-10 {split} split: found {len(parts)} batch(es) of sizes "
                f"{sizes}, expected {n_batches} x {per_batch}. Delete {folder} and download {CIFAR10_URL} "
                f"again, or pass root= to load a smaller set of the same format."
            )
    images = np.concatenate([img for img, _ in parts])
    labels = np.concatenate([lbl for _, lbl in parts])
    if strict:
        counts = np.bincount(labels, minlength=10)
        if not (counts == len(labels) // 10).all():
            raise DatasetError(
                f"{folder} has per-class counts {counts.tolist()} in the {split} split, expected "
                f"{len(labels) // 10} each; delete it and download {CIFAR10_URL} again."
            )
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _download_cifar10(home: Path) -> None:
    """Download and extract CIFAR-10's python version into ``home`` (tarball md5-checked by torchvision).

    Only torchvision's downloader is used, not ``torchvision.datasets.CIFAR10``, which would then unpickle
    the batches without restriction.
    """
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import download_and_extract_archive

    home.mkdir(parents=True, exist_ok=True)
    with socket_timeout(DOWNLOAD_TIMEOUT_S):
        download_and_extract_archive(
            CIFAR10.url, download_root=str(home), filename=CIFAR10.filename, md5=CIFAR10.tgz_md5
        )
