import gzip

import numpy as np
import pytest

from convzoo.data import idx, mnist, store
from convzoo.errors import DataError


def test_idx_round_trip(tmp_path):
    x = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    idx.write_idx(tmp_path / "a.gz", x)
    assert np.array_equal(idx.read_idx(tmp_path / "a.gz"), x)
    assert idx.read_shape(tmp_path / "a.gz") == (3, 28, 28)
    idx.write_idx(tmp_path / "b", x)  # uncompressed too
    assert np.array_equal(idx.read_idx(tmp_path / "b"), x)


def test_idx_bad_magic_and_truncation(tmp_path):
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"\x01\x02\x08\x03" + b"\0" * 20))
    with pytest.raises(DataError, match="bad.gz: not an IDX file"):
        idx.read_idx(tmp_path / "bad.gz")
    x = np.zeros((5, 28, 28), np.uint8)
    idx.write_idx(tmp_path / "t.gz", x)
    raw = gzip.decompress((tmp_path / "t.gz").read_bytes())
    (tmp_path / "t.gz").write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DataError, match="t.gz: truncated"):
        idx.read_idx(tmp_path / "t.gz")


def _write_dataset(folder, n_train=30, n_test=10):
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        mnist.write(folder, split, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), np.arange(n) % 10)


def test_mnist_load_and_counts(tmp_path):
    _write_dataset(tmp_path / "mnist")
    x, y = mnist.load(tmp_path / "mnist", "train")
    assert x.shape == (30, 28, 28, 1) and x.dtype == np.uint8 and list(y[:3]) == [0, 1, 2]
    assert mnist.counts(tmp_path / "mnist") == {"train": 30, "test": 10}
    row = store.status("mnist", str(tmp_path))
    assert row["found"] and row["train"] == 30 and row["test"] == 10


def test_mnist_npz(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "mnist").mkdir()
    np.savez(tmp_path / "mnist" / "mnist.npz", x_train=rng.integers(0, 255, (4, 28, 28), dtype=np.uint8),
             y_train=np.arange(4), x_test=np.zeros((2, 28, 28), np.uint8), y_test=np.arange(2))
    x, y = mnist.load(tmp_path / "mnist", "test")
    assert x.shape == (2, 28, 28, 1)
    assert mnist.counts(tmp_path / "mnist") == {"train": 4, "test": 2}


def test_label_count_mismatch_names_file(tmp_path):
    _write_dataset(tmp_path / "mnist")
    idx.write_idx(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz", np.arange(29) % 10)
    with pytest.raises(DataError, match="30 images but 29 labels"):
        mnist.load(tmp_path / "mnist", "train")


def test_missing_files_say_what_to_put_where(tmp_path):
    with pytest.raises(DataError) as e:
        store.load("mnist", str(tmp_path), "train")
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and str(tmp_path / "mnist") in msg and "\n" not in msg


def test_stratified_split_is_per_class_and_fixed():
    y = np.repeat(np.arange(10), 50)
    tr, va = store.stratified_split(y, 0.2, seed=42)
    assert len(va) == 100 and np.all(np.bincount(y[va]) == 10)
    assert not set(tr) & set(va) and len(tr) + len(va) == len(y)
    assert np.array_equal(va, store.stratified_split(y, 0.2, seed=42)[1])


def test_data_dir_resolution(monkeypatch, tmp_path):
    assert store.data_dir(str(tmp_path)) == str(tmp_path)
    monkeypatch.setenv("CONVZOO_DATA", str(tmp_path / "env"))
    assert store.data_dir() == str(tmp_path / "env")
    monkeypatch.delenv("CONVZOO_DATA")
    assert store.data_dir().endswith("/.convzoo/data")


@pytest.mark.shared("mnist")
def test_shared_mnist_matches_published_size(shared_datasets):
    x, y = mnist.load(shared_datasets / "mnist", "test")
    assert x.shape == (10000, 28, 28, 1) and np.bincount(y).sum() == 10000
