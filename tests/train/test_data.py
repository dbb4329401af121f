"""IDX parsing and the data sets of the train command, on files written here."""
import gzip

import numpy as np
import pytest
import torch

from fastinception.train.data import DataError, load_digits, load_fashion_mnist, read_idx

from helpers import idx_bytes, write, write_fashion_mnist


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize(
    "array, code",
    [
        (np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4), 0x08),
        (np.array([-3, 0, 7], dtype=np.int8), 0x09),
        (np.array([[-300, 2], [5, 30000]], dtype=np.int16), 0x0B),
        (np.array([1 << 20, -5], dtype=np.int32), 0x0C),
        (np.array([[1.5, -2.25]], dtype=np.float32), 0x0D),
        (np.array([np.pi], dtype=np.float64), 0x0E),
    ],
    ids=["u8", "i8", "i16", "i32", "f32", "f64"],
)
def test_read_idx_round_trips(tmp_path, array, code, gz):
    path = write(tmp_path / "a-idx", idx_bytes(array, code), gz)
    got = read_idx(path)
    assert got.shape == array.shape
    assert got.dtype.kind == array.dtype.kind and got.dtype.itemsize == array.dtype.itemsize
    np.testing.assert_array_equal(got, array)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="IDX file not found: .*nowhere-idx"):
        read_idx(tmp_path / "nowhere-idx")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x08\x03\x00\x00", r"not an IDX file \(magic number 08030000"),
        (b"", r"not an IDX file \(magic number missing"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", r"unknown IDX type code 0x07"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", r"truncated header \(8 bytes, the header alone needs 16\)"),
    ],
    ids=["magic", "empty", "type-code", "header"],
)
def test_malformed_header_is_refused(tmp_path, data, message):
    path = write(tmp_path / "bad-idx", data)
    with pytest.raises(DataError, match=rf"bad-idx: {message}"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_truncated_file_is_refused_with_its_name(tmp_path, gz):
    data = idx_bytes(np.zeros((3, 4, 4), dtype=np.uint8), 0x08)
    path = write(tmp_path / "images-idx3-ubyte", data[:-5], gz)
    message = r"images-idx3-ubyte(\.gz)?: truncated: 59 bytes, the header announces \(3, 4, 4\)"
    with pytest.raises(DataError, match=message):
        read_idx(path)


def test_trailing_bytes_are_refused(tmp_path):
    path = write(tmp_path / "long-idx", idx_bytes(np.zeros(3, dtype=np.uint8), 0x08) + b"\x00")
    with pytest.raises(DataError, match="long-idx: has trailing bytes"):
        read_idx(path)


def test_broken_gzip_stream_is_refused(tmp_path):
    path = write(tmp_path / "x-idx", idx_bytes(np.zeros(100, dtype=np.uint8), 0x08), gz=True)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match=r"x-idx\.gz: cannot be read"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_fashion_mnist_directory_loads(tmp_path, gz):
    arrays = write_fashion_mnist(tmp_path, gz=gz)
    train, test = load_fashion_mnist(tmp_path)
    assert train.images.shape == (6, 1, 28, 28) and test.images.shape == (4, 1, 28, 28)
    assert torch.equal(train.labels, torch.from_numpy(arrays["train-labels-idx1-ubyte"][0].astype(np.int64)))
    x, y = test.batch(torch.tensor([1, 3]))
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 and y.tolist() == test.labels[[1, 3]].tolist()
    np.testing.assert_allclose(x[0, 0].numpy(), arrays["t10k-images-idx3-ubyte"][0][1] / 255, rtol=1e-6)


def test_fashion_mnist_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="data directory not found"):
        load_fashion_mnist(tmp_path / "absent")
    write_fashion_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing t10k-labels-idx1-ubyte \(or t10k-labels-idx1-ubyte.gz\)"):
        load_fashion_mnist(tmp_path)
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(np.zeros(3, dtype=np.uint8), 0x08))
    with pytest.raises(DataError, match="has 4 images but .*t10k-labels-idx1-ubyte has 3 labels"):
        load_fashion_mnist(tmp_path)
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(np.zeros(4, dtype=np.int32), 0x0C))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: expected 1-D unsigned bytes"):
        load_fashion_mnist(tmp_path)


def test_digits_split_is_fixed_and_scaled():
    train, test = load_digits()
    assert (len(train), len(test)) == (1437, 360)
    assert train.images.shape == (1437, 1, 8, 8) and train.max_value == 16
    x, _ = train.batch(torch.arange(10))
    assert 0 <= x.min() and x.max() <= 1 and x.max() > 0.9
    assert sorted(set(test.labels.tolist())) == list(range(10))
    assert len(train.head(64)) == 64


def test_missing_scikit_learn_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # makes the import fail as if not installed
    with pytest.raises(ImportError, match=r"pip install 'fastinception\[train\]'"):
        load_digits()


@pytest.mark.parametrize("where", ["deflate", "crc"])
def test_corrupt_gzip_stream_is_refused(tmp_path, where):
    # Damaged deflate data raises zlib.error (not an OSError) and a damaged CRC gzip.BadGzipFile: both must
    # come out as the parser's DataError naming the file. The deflate data starts after the 10-byte gzip
    # header, and a first byte 0xFF announces the reserved block type 3; the CRC opens the 8-byte trailer.
    data = np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8)
    raw = bytearray(gzip.compress(idx_bytes(data, 0x08), mtime=0))  # no file name: a 10-byte header
    if where == "deflate":
        raw[10] = 0xFF
    else:
        raw[-8] ^= 0xFF
    path = write(tmp_path / "x-idx.gz", bytes(raw))
    reason = "error: .*invalid" if where == "deflate" else "BadGzipFile: CRC check failed"
    with pytest.raises(DataError, match=rf"x-idx\.gz: cannot be read \({reason}"):
        read_idx(path)


def test_data_path_that_is_a_file_is_not_a_directory(tmp_path):
    path = write(tmp_path / "train-images-idx3-ubyte", idx_bytes(np.zeros((1, 2, 2), dtype=np.uint8), 0x08))
    with pytest.raises(NotADirectoryError, match="data path is not a directory: .*train-images-idx3-ubyte"):
        load_fashion_mnist(path)
