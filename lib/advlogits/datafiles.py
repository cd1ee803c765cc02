"""The files of Fashion-MNIST (IDX) and CIFAR-10 (python pickles), read and checked; a missing copy downloaded.

The files are read here, not by torchvision, for two reasons: Debian's ``dataset-fashion-mnist`` ships
recompressed ``.gz`` files that torchvision's md5 check rejects, and CIFAR-10's batches are pickles, which
we open with an unpickler that can only rebuild numpy arrays (a pickle can otherwise run any code).
torchvision is used only to *download* a missing data set.

Which folders are read, and whether a copy must be complete, is `advlogits.data`'s decision; the readers take it as
arguments. A Fashion-MNIST folder may hold the four IDX files directly, in ``fashion-mnist/`` or in torchvision's
``FashionMNIST/raw/`` (`FASHION_LAYOUTS`), each raw or ``.gz``. A CIFAR-10 folder holds ``cifar-10-batches-py/``,
whose train split is ``data_batch_1``, ``data_batch_2``, ... up to the first missing number.

Every file is checked for internal consistency (magic number, image size, counts that match the file length,
labels in 0..9); given the split's ``full_size``, a copy must also be complete (and its classes balanced). Decoded
arrays are cached in-process (keyed by path, size and mtime) and read-only: `advlogits.data` copies what it returns.
"""

from __future__ import annotations

import codecs
import functools
import gzip
import pickle
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .downloads import socket_timeout
from .paths import DATA, DATA_ONLY

SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist
APT_HINT = "apt-get install -y dataset-fashion-mnist"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
FASHION_LAYOUTS = (".", "fashion-mnist", "FashionMNIST/raw")  # where in a folder the IDX files may lie
CIFAR_DIR = "cifar-10-batches-py"

# Fashion-MNIST: split -> (images stem, labels stem)
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_IMAGES_MAGIC, _IDX_LABELS_MAGIC = 2051, 2049
_CIFAR_BATCHES = {"train": 5, "test": 1}  # batch files of the complete splits, of equal size

Arrays = tuple[np.ndarray, np.ndarray]  # images (N, C, H, W) and labels (N,), both uint8
FileKey = tuple[str, int, int]  # a file's resolved path, size and mtime


class DatasetError(RuntimeError):
    """The data set is missing or its files are corrupt; the message says how to get a good copy."""


def _file_key(path: Path) -> FileKey:
    """Cache key of a file: its path with size and mtime, so a rewritten file is read again."""
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


# ----------------------------------------------------------------------------------------------
# Fashion-MNIST (IDX files)
# ----------------------------------------------------------------------------------------------


def read_fashion_mnist(
    split: str, bases: Sequence[Path], *, download_into: Path | None = None, full_size: int | None = None
) -> Arrays:
    """Images (N, 1, 28, 28) and labels (N,), uint8 and read-only, of a Fashion-MNIST split: from the first folder
    under ``bases`` (in the layouts of `FASHION_LAYOUTS`) holding both of its IDX files. When none does, the data
    set is downloaded into ``download_into`` (None: nothing is downloaded, ``bases`` is an explicit root).
    ``full_size``: the split's published size, which the copy must have with balanced classes (None: any size).

    Examples::

        images, labels = read_fashion_mnist("test", [Path("/usr/share/datasets/fashion-mnist")], full_size=10_000)
    """
    found = _locate_fashion(bases, split)
    if found is None and download_into is None:
        raise DatasetError(_not_under_root(split, bases))
    if found is None:
        found = _download_and_locate(split, bases, download_into)
    return _read_idx_pair(_file_key(found[0]), _file_key(found[1]), split, full_size)


def _find_idx(folder: Path, stem: str) -> Path | None:
    """The raw IDX file ``stem`` in ``folder``, else its ``.gz``, else None."""
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _fashion_folders(base: Path) -> list[Path]:
    return [base / layout if layout != "." else base for layout in FASHION_LAYOUTS]


def _locate_fashion(bases: Sequence[Path], split: str) -> tuple[Path, Path] | None:
    """(images, labels) paths of the first folder under ``bases`` holding both files of ``split``."""
    img_stem, lbl_stem = _IDX_FILES[split]
    for base in bases:
        for folder in _fashion_folders(base):
            img, lbl = _find_idx(folder, img_stem), _find_idx(folder, lbl_stem)
            if img is not None and lbl is not None:
                return img, lbl
    return None


def _wanted(split: str) -> str:
    img_stem, lbl_stem = _IDX_FILES[split]
    return f"{img_stem}[.gz] and {lbl_stem}[.gz]"


def _all_files() -> str:
    return ", ".join(f for stems in _IDX_FILES.values() for f in stems)


def _fashion_fix() -> str:
    return (
        f"Fix: `{APT_HINT}` (installs {SYSTEM_FASHION_MNIST}), or set {DATA} to a folder holding "
        f"the four IDX files ({_all_files()}, raw or .gz)."
    )


def _not_under_root(split: str, bases: Sequence[Path]) -> str:
    looked = "\n".join(f"  - {f}" for b in bases for f in _fashion_folders(b))
    root = ", ".join(str(b) for b in bases)
    return (
        f"Fashion-MNIST {split} split not found under root={root!r}: looked for {_wanted(split)} in\n"
        f"{looked}\nFix: put the four IDX files ({_all_files()}, raw or .gz) there, or call without root= "
        f"(and without ${DATA_ONLY}) to use ${DATA} or the Debian package (`{APT_HINT}`)."
    )


def _download_and_locate(split: str, bases: Sequence[Path], home: Path) -> tuple[Path, Path]:
    """Download Fashion-MNIST into ``home`` and find the split there; one actionable DatasetError otherwise."""
    try:
        _download_fashion_mnist(home)
    except Exception as exc:  # any download failure becomes one actionable message
        looked = "\n".join(f"  - {f}" for b in bases for f in _fashion_folders(b))
        raise DatasetError(
            f"Fashion-MNIST {split} split not found: looked for {_wanted(split)} in\n{looked}\n"
            f"and the download into {home} failed ({type(exc).__name__}: {exc}).\n" + _fashion_fix()
        ) from exc
    found = _locate_fashion([home], split)
    if found is None:
        raise DatasetError(
            f"torchvision reported a successful Fashion-MNIST download into {home}, but "
            f"{_wanted(split)} are not there. " + _fashion_fix()
        )
    return found


def _download_fashion_mnist(home: Path) -> None:
    """Download Fashion-MNIST with torchvision into ``home/FashionMNIST/raw`` (md5-checked by torchvision)."""
    import torchvision  # imported here: it costs ~1.5 s and is needed only to download

    home.mkdir(parents=True, exist_ok=True)
    with socket_timeout():
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


@functools.lru_cache(maxsize=4)
def _read_idx_pair(images_key: FileKey, labels_key: FileKey, split: str, full_size: int | None) -> Arrays:
    """Images (N, 1, 28, 28) and labels (N,), uint8, of two IDX files, checked (and complete, given
    ``full_size``)."""
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
    if full_size is not None:
        _check_complete_idx(labels, labels_path, split, full_size)
    images = images.reshape(len(images), 1, 28, 28)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _check_complete_idx(labels: np.ndarray, labels_path: Path, split: str, full: int) -> None:
    """Refuse labels that are not the whole split: ``full`` of them, ``full / 10`` per class."""
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


# ----------------------------------------------------------------------------------------------
# CIFAR-10 (python pickles, read with a restricted unpickler)
# ----------------------------------------------------------------------------------------------


def read_cifar10(split: str, base: Path, *, download: bool = False, full_size: int | None = None) -> Arrays:
    """Images (N, 3, 32, 32) and labels (N,), uint8 and read-only, of a CIFAR-10 split in ``base/cifar-10-batches-py``.
    When its first batch is missing, the data set is downloaded into ``base`` if ``download`` (else ``base`` is an
    explicit root: nothing is downloaded). ``full_size``: the split's published size, which the copy must have in
    equal batches with balanced classes (None: any size).

    Examples::

        images, labels = read_cifar10("test", Path("~/data").expanduser(), full_size=10_000)
    """
    folder = base / CIFAR_DIR
    how = (
        f"download {CIFAR10_URL} and extract it into a folder, so that it holds {CIFAR_DIR}/ "
        f"(data_batch_1..5, test_batch), then set {DATA} to that folder or pass root="
    )
    first = folder / ("test_batch" if split == "test" else "data_batch_1")
    if not first.is_file():
        if not download:
            raise DatasetError(
                f"CIFAR-10 {split} split not found: {first} does not exist "
                f"(nothing is downloaded into an explicit root). Fix: {how}."
            )
        try:
            _download_cifar10(base)
        except Exception as exc:  # any download failure becomes one actionable message
            raise DatasetError(
                f"CIFAR-10 {split} split not found: looked in {folder} and the download into "
                f"{base} failed ({type(exc).__name__}: {exc}). Fix: {how}."
            ) from exc
        if not first.is_file():
            raise DatasetError(f"the CIFAR-10 download into {base} did not produce {first}. Fix: {how}.")
    files = _cifar_batch_files(folder, split)
    return _read_cifar_files(tuple(_file_key(f) for f in files), split, full_size)


def _numpy_globals() -> dict[tuple[str, str], object]:
    """The only globals a CIFAR batch pickle may name: numpy's array rebuilders, and bytes decoding."""
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


def _read_cifar_batch(path: Path) -> Arrays:
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


@functools.lru_cache(maxsize=2)
def _read_cifar_files(keys: tuple[FileKey, ...], split: str, full_size: int | None) -> Arrays:
    """The batches' images and labels, concatenated in order, checked (and complete, given ``full_size``)."""
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
    if full_size is not None:
        _check_complete_cifar([len(lbl) for _, lbl in parts], folder, split, full_size)
    images = np.concatenate([img for img, _ in parts])
    labels = np.concatenate([lbl for _, lbl in parts])
    if full_size is not None:
        counts = np.bincount(labels, minlength=10)
        if not (counts == len(labels) // 10).all():
            raise DatasetError(
                f"{folder} has per-class counts {counts.tolist()} in the {split} split, expected "
                f"{len(labels) // 10} each; delete it and download {CIFAR10_URL} again."
            )
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _check_complete_cifar(sizes: list[int], folder: Path, split: str, full: int) -> None:
    """Refuse batches that are not the whole split: `_CIFAR_BATCHES` of them, ``full`` images in all."""
    n_batches = _CIFAR_BATCHES[split]
    per_batch = full // n_batches
    if len(sizes) != n_batches or any(s != per_batch for s in sizes):
        raise DatasetError(
            f"{folder} is not the full CIFAR-10 {split} split: found {len(sizes)} batch(es) of sizes "
            f"{sizes}, expected {n_batches} x {per_batch}. Delete {folder} and download {CIFAR10_URL} "
            f"again, or pass root= to load a smaller set of the same format."
        )


def _download_cifar10(home: Path) -> None:
    """Download and extract CIFAR-10's python version into ``home`` (tarball md5-checked by torchvision).

    Only torchvision's downloader is used, not ``torchvision.datasets.CIFAR10``, which would then unpickle
    the batches without restriction.
    """
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import download_and_extract_archive

    home.mkdir(parents=True, exist_ok=True)
    with socket_timeout():
        download_and_extract_archive(
            CIFAR10.url, download_root=str(home), filename=CIFAR10.filename, md5=CIFAR10.tgz_md5
        )
