"""MNIST and Fashion-MNIST: the four official IDX files (gzipped or not), or Keras' mnist.npz."""
import os

import numpy as np

from convzoo.data import MNIST_FILES
from convzoo.data.idx import read_idx, read_shape, write_idx
from convzoo.errors import DataError


def _locate(folder, name):
    for candidate in (name, name[:-3]):  # the .gz file, or the same file uncompressed
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def find(folder):
    """{split: (images, labels)} paths, or {"npz": path}; None when the files are not there."""
    found = {}
    for split, names in MNIST_FILES.items():
        paths = tuple(_locate(folder, n) for n in names)
        if all(paths):
            found[split] = paths
    if len(found) == 2:
        return found
    npz = os.path.join(folder, "mnist.npz")
    if os.path.isfile(npz):
        return {"npz": npz}
    return None


def missing_message(folder):
    names = [n for pair in MNIST_FILES.values() for n in pair]
    return f"put {', '.join(names)} in {folder}"


def load(folder, split, strict=False):
    """(images uint8 (n, 28, 28, 1), labels uint8 (n,)) for split 'train' or 'test'; IDX files are
    checked whole, so `strict` changes nothing here."""
    files = find(folder)
    if files is None:
        raise DataError(f"dataset files not found: {missing_message(folder)}")
    if "npz" in files:
        x, y = _load_npz(files["npz"], split)
        where = files["npz"]
    else:
        img_path, lbl_path = files[split]
        x, y = read_idx(img_path), read_idx(lbl_path)
        where = img_path
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise DataError(f"{img_path}: images have shape {x.shape[1:]}, expected (28, 28)")
        if y.ndim != 1:
            raise DataError(f"{lbl_path}: labels have shape {y.shape}, expected one dimension")
    if len(x) != len(y):
        raise DataError(f"{where}: {len(x)} images but {len(y)} labels")
    if len(y) and y.max() > 9:
        raise DataError(f"{where}: label {int(y.max())} out of range 0-9")
    return x[..., None], y


def _load_npz(path, split):
    key = "train" if split == "train" else "test"
    try:
        with np.load(path, allow_pickle=False) as f:
            x, y = f[f"x_{key}"], f[f"y_{key}"]
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"{path}: not a Keras mnist.npz ({e})") from None
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
        raise DataError(f"{path}: x_{key} is {x.dtype} {x.shape}, expected uint8 (n, 28, 28)")
    return x, y.astype(np.uint8)


def counts(folder):
    """{split: number of images}, read from the headers only."""
    files = find(folder)
    if files is None:
        return None
    if "npz" in files:
        with np.load(files["npz"], allow_pickle=False) as f:
            return {"train": len(f["y_train"]), "test": len(f["y_test"])}
    return {split: read_shape(paths[0])[0] for split, paths in files.items()}


def write(folder, split, x, y):
    """Write one split as the official gzipped IDX pair."""
    img_name, lbl_name = MNIST_FILES[split]
    write_idx(os.path.join(folder, img_name), np.asarray(x).reshape(-1, 28, 28))
    write_idx(os.path.join(folder, lbl_name), np.asarray(y))
