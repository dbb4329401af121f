"""Real image data sets for training: scikit-learn's 8x8 digits, or Fashion-MNIST from its IDX files.

Neither downloads anything: the digits ship inside scikit-learn, Fashion-MNIST is read from a directory the
user gives. Images stay as integers with their maximum value; ``ImageSet.batch`` scales a batch to [0, 1].
"""
from __future__ import annotations

import dataclasses
import gzip
import math
import os
import zlib

import numpy as np
import torch

# IDX type codes (the third byte of the magic number): numpy big-endian dtype of the data.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
# The four files of MNIST-style data sets, each read as is or with a .gz suffix.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
TRAIN_EXTRA = "pip install 'fastinception[train]'"


class DataError(ValueError):
    """A data file or directory that exists but does not hold what it should."""


@dataclasses.dataclass(frozen=True)
class ImageSet:
    """Images (N, 1, H, W) as uint8 tensors with their maximum value, and int64 labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    max_value: float
    num_classes: int

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index: torch.Tensor, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images scaled to [0, 1] as float32, and labels, for the examples at ``index``, on ``device``."""
        x = self.images[index].to(device=device, dtype=torch.float32) / self.max_value
        return x, self.labels[index].to(device)

    def head(self, limit: int | None) -> ImageSet:
        """The first ``limit`` examples (all when ``limit`` is None)."""
        if limit is None:
            return self
        return dataclasses.replace(self, images=self.images[:limit], labels=self.labels[:limit])


def read_idx(path) -> np.ndarray:
    """Read one IDX file (optionally gzipped): magic 0x00 0x00 TYPE NDIMS, NDIMS big-endian uint32 sizes, data.

    Raises ``FileNotFoundError`` for a missing file and ``DataError`` (naming the file) for a damaged gzip
    stream, a bad magic number, an unknown type code, or a length that differs from what the header announces.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"IDX file not found: {path}")
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        # A truncated gzip stream raises EOFError, a bad header or CRC gzip.BadGzipFile (an OSError), and
        # damaged deflate data zlib.error, which is neither.
        raise DataError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (magic number {raw[:4].hex() or 'missing'}, expected 0000TTNN)")
    code, ndims = raw[2], raw[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02x}" for c in IDX_DTYPES)
        raise DataError(f"{path}: unknown IDX type code 0x{code:02x} (known: {known})")
    header = 4 + 4 * ndims
    if len(raw) < header:
        raise DataError(f"{path}: truncated header ({len(raw)} bytes, the header alone needs {header})")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndims, offset=4))
    dtype = IDX_DTYPES[code]
    expected = header + math.prod(dims) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise DataError(
            f"{path}: {what}: {len(raw)} bytes, the header announces {dims} {dtype.name} = {expected} bytes"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _find_idx(directory: str, stem: str) -> str:
    for name in (stem, stem + ".gz"):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"{directory}: missing {stem} (or {stem}.gz); expected the four files {', '.join(IDX_FILES.values())}"
    )


def _image_set(images: np.ndarray, labels: np.ndarray, images_path: str, labels_path: str) -> ImageSet:
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{images_path}: expected 3-D unsigned bytes (N, H, W), got {images.ndim}-D {images.dtype}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(f"{labels_path}: expected 1-D unsigned bytes (N,), got {labels.ndim}-D {labels.dtype}")
    if len(images) != len(labels):
        raise DataError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    if len(labels) and labels.max() > 9:
        raise DataError(f"{labels_path}: label {labels.max()} outside 0..9")
    return ImageSet(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)), 255.0, 10)


def load_fashion_mnist(directory) -> tuple[ImageSet, ImageSet]:
    """Train and test sets of Fashion-MNIST (or MNIST: same files) from ``directory``."""
    directory = os.fspath(directory)
    if not os.path.exists(directory):
        raise FileNotFoundError(f"data directory not found: {directory}")
    if not os.path.isdir(directory):
        raise NotADirectoryError(f"data path is not a directory: {directory} (give the directory that holds the "
                                 f"four IDX files)")
    paths = {key: _find_idx(directory, stem) for key, stem in IDX_FILES.items()}
    arrays = {key: read_idx(path) for key, path in paths.items()}
    train = _image_set(arrays["train_images"], arrays["train_labels"], paths["train_images"], paths["train_labels"])
    test = _image_set(arrays["test_images"], arrays["test_labels"], paths["test_images"], paths["test_labels"])
    return train, test


def load_digits(test_fraction: float = 0.2) -> tuple[ImageSet, ImageSet]:
    """scikit-learn's 1797 handwritten digits (8x8, values 0..16): the last ``test_fraction`` is the test set.

    The split is fixed (no shuffle): the file groups digits by writer, so the test set holds writers the
    training set has not seen.
    """
    try:  # an optional dependency (the [train] extra), imported only when the digits are asked for
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise ImportError(
            f"the digits data set comes with scikit-learn, which is not installed: {TRAIN_EXTRA}"
        ) from None
    digits = sklearn_digits()
    images = torch.from_numpy(digits.images.astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    n_train = len(labels) - math.ceil(len(labels) * test_fraction)
    return (
        ImageSet(images[:n_train], labels[:n_train], 16.0, 10),
        ImageSet(images[n_train:], labels[n_train:], 16.0, 10),
    )
