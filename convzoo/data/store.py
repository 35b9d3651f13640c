"""Where datasets live, how they are found, fetched and split."""
import os

import numpy as np

from convzoo import data as catalog
from convzoo.errors import DataError

DEFAULT_DIR = catalog.DEFAULT_DIR
data_dir = catalog.data_dir


def folder(name, root):
    return os.path.join(root, name)


def status(name, root):
    """One row of `convzoo data list`."""
    where = folder(name, root)
    row = {"name": name, "title": "", "classes": None, "path": where,
           "found": False, "train": None, "test": None, "error": None}
    try:
        info = catalog.get(name, root)
        row.update(title=info.title, classes=len(info.classes), imported=info.imported)
        counts = catalog.loader(name, root).counts(where)
    except DataError as e:
        row["error"] = str(e)
        return row
    if counts:
        row.update(found=True, **counts)
    return row


def load(name, root, split, fetch_missing=False, strict=False):
    """(x uint8 NHWC, y int) of a split, fetching the dataset first if asked and possible;
    strict: an unreadable image in an image folder is an error, not a skip."""
    mod = catalog.loader(name, root)
    where = folder(name, root)
    if mod.find(where) is None:
        if not fetch_missing:
            raise DataError(f"{name} not found: {mod.missing_message(where)}"
                            + (f" (or run `convzoo data fetch {name}` online)"
                               if catalog.get(name, root).fetch else ""))
        fetch(name, root)
    return mod.load(where, split, strict=strict)


def fetch(name, root):
    """Download through keras.datasets and write the official file layout into root/name."""
    from convzoo import backend

    info = catalog.get(name, root)
    mod = catalog.loader(name, root)
    where = folder(name, root)
    if not info.fetch:
        raise DataError(f"cannot download {name}: {mod.missing_message(where)}")
    keras = backend.load()
    try:
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    except Exception as e:  # keras raises plain Exception subclasses for network failures
        raise DataError(f"cannot download {name} ({type(e).__name__}); offline, "
                        f"{mod.missing_message(where)}") from None
    mod.write(where, "train", x_train, y_train)
    mod.write(where, "test", x_test, y_test)
    return where


def split_indices(y, fraction, seed=42):
    """Indices (train, validation): `fraction` of each class goes to validation (S6: random_state 42).
    numpy only: `convzoo eject` copies this function into the scripts it writes."""
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        val.append(idx[: int(round(fraction * len(idx)))])
    val = np.sort(np.concatenate(val))
    return np.setdiff1d(np.arange(len(y)), val), val


class Rows:
    """Rows `index` of a memory-mapped array of images, read when a batch asks for them: a split
    over the memory budget (folders.memory_budget) is never in memory whole."""

    def __init__(self, array, index=None):
        if isinstance(array, Rows):
            array, index = array.array, array.index if index is None else array.index[index]
        self.array = array
        self.index = np.arange(len(array)) if index is None else np.asarray(index)
        self.shape, self.dtype = (len(self.index),) + array.shape[1:], array.dtype

    def __len__(self):
        return len(self.index)

    def __getitem__(self, k):
        rows = self.index[k]
        if np.ndim(rows) == 0:
            return np.array(self.array[rows])
        order = np.argsort(rows, kind="stable")  # read the file in order
        out = np.empty((len(rows),) + self.shape[1:], self.dtype)
        out[order] = self.array[rows[order]]
        return out


def take(x, index):
    """x[index]; for a memory-mapped x, a Rows view read a batch at a time."""
    return Rows(x, index) if isinstance(x, (np.memmap, Rows)) else x[index]


def stratified_split(y, fraction, seed=42):
    """split_indices, refusing a fraction that leaves no training or no validation images."""
    if not 0 < fraction < 1:
        raise DataError(f"validation split must be between 0 and 1, got {fraction}")
    train, val = split_indices(y, fraction, seed)
    if len(val) == 0 or len(val) == len(y):
        raise DataError(f"a validation split of {fraction} leaves no training or no validation "
                        f"images out of {len(y)}")
    return train, val


def first_per_class(x, y, n):
    """About n images: the first n // k of each of the k classes present (at least one each)."""
    classes = np.unique(y)
    keep = np.sort(np.concatenate([np.flatnonzero(y == c)[: max(1, n // len(classes))] for c in classes]))
    return x[keep], y[keep]


def subset(x, y, n, info):
    """What --limit N takes from a split, in train, evaluate and export alike: the first N where the
    files come in mixed order (IDX), else the first N // k of each class (folders come sorted by class)."""
    if not n or n >= len(y):
        return x, y
    if info.limit_order == "first":
        return x[:n], y[:n]
    return first_per_class(x, y, n)
