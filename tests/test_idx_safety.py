"""Corrupt IDX files (issue 6): bad headers, truncated or corrupt gzip, headers declaring huge arrays."""
import gzip
import math
import re
import struct

import numpy as np
import pytest

from conftest import one_line
from convzoo.data import MNIST_FILES, idx, mnist
from convzoo.errors import DataError


# ------------------------------------------------------------------ IDX files
def _mnist_folder(folder, n_train=20, n_test=10):
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        mnist.write(folder, split, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), np.arange(n) % 10)
    return folder


def _rewrite_gz(path, change):
    path.write_bytes(gzip.compress(change(gzip.decompress(path.read_bytes()))))


def test_idx_wrong_magic_type_and_trailing_bytes(tmp_path):
    folder = _mnist_folder(tmp_path / "mnist")
    images_gz = folder / MNIST_FILES["train"][0]
    for change, message in ((lambda b: b"\x01\x02" + b[2:], "not an IDX file (bad magic number 0102"),
                            (lambda b: b[:2] + b"\x0d" + b[3:], "data type 0x0d is not unsigned byte"),
                            (lambda b: b[:3] + b"\x09" + b[4:], "header says 9 dimensions"),
                            (lambda b: b + b"\0" * 10, "bytes after the data")):
        mnist.write(folder, "train", np.zeros((20, 28, 28), np.uint8), np.arange(20) % 10)
        _rewrite_gz(images_gz, change)
        for read in (lambda: idx.read_idx(images_gz), lambda: mnist.load(folder, "train")):
            with pytest.raises(DataError) as e:
                read()
            assert str(images_gz) in one_line(e.value) and message in str(e.value), str(e.value)


def test_idx_truncated_and_corrupt_gzip(tmp_path):
    folder = _mnist_folder(tmp_path / "mnist")
    labels_gz = folder / MNIST_FILES["train"][1]
    raw = labels_gz.read_bytes()
    labels_gz.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="truncated or corrupt") as e:
        mnist.load(folder, "train")
    assert str(labels_gz) in one_line(e.value)
    bad_crc = bytearray(raw)
    bad_crc[-6] ^= 0xFF
    labels_gz.write_bytes(bytes(bad_crc))
    with pytest.raises(DataError, match="CRC check failed"):
        idx.read_idx(labels_gz)
    labels_gz.write_bytes(b"plain text, not gzip")
    with pytest.raises(DataError, match="Not a gzipped file"):
        idx.read_idx(labels_gz)
    # data cut short inside a valid gzip stream
    labels_gz.write_bytes(gzip.compress(gzip.decompress(raw)[:-5]))
    with pytest.raises(DataError, match="truncated: header says"):
        idx.read_idx(labels_gz)


def test_idx_count_mismatch_and_wrong_shape(tmp_path):
    folder = _mnist_folder(tmp_path / "mnist")
    images_gz, labels_gz = (folder / n for n in MNIST_FILES["train"])
    idx.write_idx(labels_gz, np.arange(19) % 10)
    with pytest.raises(DataError, match="20 images but 19 labels") as e:
        mnist.load(folder, "train")
    assert str(images_gz) in one_line(e.value)
    idx.write_idx(labels_gz, np.arange(20) % 10)
    idx.write_idx(images_gz, np.zeros((20, 27, 28), np.uint8))
    with pytest.raises(DataError, match=r"images have shape \(27, 28\), expected \(28, 28\)") as e:
        mnist.load(folder, "train")
    assert str(images_gz) in str(e.value)
    idx.write_idx(images_gz, np.zeros((20, 28, 28), np.uint8))
    idx.write_idx(labels_gz, np.zeros((20, 2), np.uint8))
    with pytest.raises(DataError, match="labels have shape") as e:
        mnist.load(folder, "train")
    assert str(labels_gz) in str(e.value)
    idx.write_idx(labels_gz, np.full(20, 11, np.uint8))
    with pytest.raises(DataError, match="label 11 out of range"):
        mnist.load(folder, "train")


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("dims", [(2**32 - 1,) * 4, (2**32 - 1, 28, 28)], ids=["overflow", "terabytes"])
def test_idx_header_declaring_a_huge_array(tmp_path, gz, dims):
    path = tmp_path / ("huge.gz" if gz else "huge")
    data = bytes([0, 0, 8, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + b"\0" * 100
    path.write_bytes(gzip.compress(data) if gz else data)
    # read in chunks: the 100 bytes there, not the header's size (a MemoryError or worse otherwise)
    want = re.escape(f"truncated: header says {dims}, file holds 100 of {math.prod(dims)} bytes")
    with pytest.raises(DataError, match=want) as e:
        idx.read_idx(path)
    assert str(path) in one_line(e.value)
