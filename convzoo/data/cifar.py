"""CIFAR-10: the official pickled batches (cifar-10-batches-py/ or cifar-10-python.tar.gz), or an
image-folder tree train/<class>/*, test/<class>/*; and the importer that writes that tree."""
import errno
import io
import os
import pickle
import pickletools
import tarfile

import numpy as np
from PIL import Image

from convzoo import data as catalog
from convzoo.data import folders
from convzoo.errors import DataError

CLASSES = catalog.get("cifar10").classes
SIZE = (32, 32)
SPLITS = ("train", "test")
BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
BATCH_DIR = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"


# ---------------------------------------------------------------- the pickled batches
#
# A batch is read whole (MAX_BATCH_BYTES), its opcodes scanned (counted lengths within the file,
# memo indices in order, MAX_OPS), then unpickled with stand-ins for every callable it may name:
# nothing a pickle builds can be larger than the bytes it brought, and no numpy code sees its state.

MAX_BATCH_BYTES = 64 * 2**20  # an official batch is 31 MB
MAX_OPS = 1_000_000  # an official batch has about 40,000 opcodes
DTYPES = {"u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8", "b1"}
_MEMO_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}


class _Refused(Exception):
    """A pickle that would build more than its bytes, or call something with what a batch never passes."""


def _text(v):
    return v.decode("latin1") if isinstance(v, bytes) else v


class _Dtype:
    """numpy.dtype(code, align, copy) and its BUILD state, checked, without numpy."""

    def __init__(self, code, *flags):
        code = _text(code)
        if not isinstance(code, str) or code not in DTYPES:
            raise _Refused(f"numpy.dtype({code!r:.40}): only plain numeric dtypes are read")
        self.code, self.order = code, "|"

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) < 5 or any(s is not None for s in state[2:5]):
            raise _Refused("a dtype state with sub-arrays or fields")
        order = _text(state[1])
        if order not in ("|", "<", ">", "="):
            raise _Refused(f"dtype byte order {order!r:.20}")
        self.order = order

    def numpy(self):
        dt = np.dtype(self.code)
        return dt.newbyteorder(self.order) if self.order in "<>" else dt


class _NdarrayType:
    """numpy.ndarray as the pickle names it: only the first argument of _reconstruct."""

    def __call__(self, *args):
        raise _Refused("numpy.ndarray called directly")


class _Array:
    """numpy's _reconstruct(ndarray, shape, typecode) and the BUILD state that fills it; array()
    makes the real array from the state's bytes, which must hold exactly shape x itemsize."""

    def __init__(self, cls, shape, typecode):
        if not isinstance(cls, _NdarrayType):
            raise _Refused(f"_reconstruct of {type(cls).__name__}")
        self.state, self._array = None, None

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]  # (version, shape, dtype, fortran, data)
        if not isinstance(state, tuple) or len(state) != 4:
            raise _Refused("an array state that is not (shape, dtype, fortran, data)")
        shape, dtype, fortran, data = state
        if (not isinstance(shape, tuple) or len(shape) > 8
                or not all(type(n) is int and 0 <= n <= MAX_BATCH_BYTES for n in shape)):
            raise _Refused(f"array shape {shape!r:.60}")
        if not isinstance(dtype, _Dtype) or not isinstance(data, bytes):
            raise _Refused("an array without a plain dtype and its bytes")
        need = int(np.prod(shape, dtype=np.float64)) * np.dtype(dtype.code).itemsize
        if need != len(data):
            raise _Refused(f"array of shape {shape} needs {need:,} bytes, the pickle holds {len(data):,}")
        self.state = (shape, dtype, bool(fortran), data)

    def array(self):
        if self.state is None:
            raise _Refused("an array without its data")
        if self._array is None:
            shape, dtype, fortran, data = self.state
            self._array = np.frombuffer(data, dtype.numpy()).reshape(shape, order="F" if fortran else "C")
        return self._array


class _BatchUnpickler(pickle.Unpickler):
    """Only what a CIFAR batch holds: a dict of lists, bytes, str, int and plain uint8 arrays. Every
    callable is a stand-in that refuses what would build a large object from a small argument
    (bytes(4e8), list(...)) and counts the bytes it makes against `budget`."""

    NUMPY_MODULES = ("numpy", "numpy.core.multiarray", "numpy._core.multiarray")

    def __init__(self, f, budget, **kw):
        super().__init__(f, **kw)
        self.budget = budget

    def _spend(self, n):
        self.budget -= n
        if self.budget < 0:
            raise _Refused("builds more bytes than the file holds")

    def _encode(self, s, encoding="utf-8", errors="strict"):  # how protocol 2 spells bytes from Python 3
        if not isinstance(s, str) or encoding not in ("latin1", "latin-1"):
            raise _Refused("_codecs.encode of anything but a latin1 str")
        self._spend(len(s))
        return s.encode("latin1")

    def _bytes(self, *args):
        if args and not (len(args) == 1 and isinstance(args[0], bytes)):
            raise _Refused(f"builtins.bytes({type(args[0]).__name__}) (a CIFAR batch only calls bytes())")
        self._spend(len(args[0]) if args else 0)
        return bytes(*args)

    def find_class(self, module, name):
        if module in ("builtins", "__builtin__") and name in ("dict", "list", "str", "int", "bytes"):
            if name == "bytes":
                return self._bytes
            kind = {"dict": dict, "list": list, "str": str, "int": int}[name]

            def empty(*args):
                if args:
                    raise _Refused(f"builtins.{name}({type(args[0]).__name__}) (pickles spell "
                                   f"{name} values with their own opcodes)")
                return kind()
            return empty
        if (module, name) == ("_codecs", "encode"):
            return self._encode
        if module in self.NUMPY_MODULES and name in ("ndarray", "dtype", "_reconstruct"):
            return {"ndarray": _NdarrayType(), "dtype": _Dtype, "_reconstruct": _Array}[name]
        raise pickle.UnpicklingError(f"refused to load {module}.{name}")


def _scan(raw):
    """Refuse before unpickling: too many opcodes, lengths past the end (genops reads what is
    there), memo indices out of order (the C unpickler grows its memo to the index)."""
    ops = 0
    for op, arg, pos in pickletools.genops(io.BytesIO(raw)):
        ops += 1
        if ops > MAX_OPS:
            raise _Refused(f"over {MAX_OPS:,} pickle opcodes")
        if op.name in _MEMO_PUTS and (not isinstance(arg, int) or arg > ops):
            raise _Refused(f"memo index {arg} at byte {pos}")
        if op.name == "FRAME" and arg > len(raw) - pos:
            raise _Refused(f"a frame of {arg:,} bytes in a file of {len(raw):,}")


def _load(f, where):
    raw = f.read(MAX_BATCH_BYTES + 1)
    if len(raw) > MAX_BATCH_BYTES:
        raise DataError(f"{where}: not a CIFAR-10 batch: larger than {MAX_BATCH_BYTES // 2**20} MB "
                        "(an official batch is 31 MB)")
    try:
        _scan(raw)
        d = _BatchUnpickler(io.BytesIO(raw), 2 * len(raw) + 2**20, encoding="bytes").load()
        if isinstance(d, dict):
            d = {k: v.array() if isinstance(v, _Array) else v for k, v in d.items()}
        return d
    except _Refused as e:
        raise DataError(f"{where}: not a CIFAR-10 batch: refused: {e}") from None


def read_batch(f, where):
    """(x uint8 (n, 32, 32, 3), labels uint8 (n,)) of one pickled batch read from file object f."""
    try:
        d = _load(f, where)
    except pickle.UnpicklingError as e:
        raise DataError(f"{where}: not a CIFAR-10 batch: {e}") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, OSError,
            MemoryError, ImportError) as e:
        raise DataError(f"{where}: not a CIFAR-10 batch, or truncated ({type(e).__name__}: {e})") from None
    if not isinstance(d, dict):
        raise DataError(f"{where}: not a CIFAR-10 batch (holds a {type(d).__name__}, not a dict)")
    d = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}
    if "data" not in d or "labels" not in d:
        extra = " (CIFAR-100 has fine_labels; this is CIFAR-10)" if "fine_labels" in d else ""
        raise DataError(f"{where}: no 'data' and 'labels' in the batch{extra}")
    x, labels = d["data"], d["labels"]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        desc = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise DataError(f"{where}: data is {desc}, expected uint8 (n, 3072)")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: labels are not integers") from None
    if y.shape != (len(x),):
        raise DataError(f"{where}: {len(x)} images but labels of shape {y.shape}")
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise DataError(f"{where}: label {int(y.max() if y.max() > 9 else y.min())} out of range 0-9")
    return x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), y.astype(np.uint8)


def _batch_folder(folder):
    for d in (os.path.join(folder, BATCH_DIR), folder):
        if all(os.path.isfile(os.path.join(d, b)) for names in BATCHES.values() for b in names):
            return d
    return None


def _tree(folder):
    roots = {s: os.path.join(folder, s) for s in SPLITS}
    if all(os.path.isdir(r) and any(os.path.isdir(os.path.join(r, c)) for c in CLASSES)
           for r in roots.values()):
        return roots
    return None


# ---------------------------------------------------------------- the loader interface


def find(folder):
    """{"folders": {split: path}}, {"batches": path} or {"archive": path}; None when absent."""
    folder = os.fspath(folder)
    if (roots := _tree(folder)) is not None:
        return {"folders": roots}
    if (d := _batch_folder(folder)) is not None:
        return {"batches": d}
    if os.path.isfile(os.path.join(folder, ARCHIVE)):
        return {"archive": os.path.join(folder, ARCHIVE)}
    return None


def missing_message(folder):
    return (f"put the official {BATCH_DIR}/ folder or {ARCHIVE} in {folder}, or import train/<class>/ "
            f"and test/<class>/ image folders with `convzoo data import cifar10 SOURCE`")


def load(folder, split, strict=False):
    """(images uint8 (n, 32, 32, 3), labels uint8 (n,)) for split 'train' or 'test'."""
    folder = os.fspath(folder)
    found = folders.find_split("cifar10", folder, split, SPLITS, find, missing_message)
    if "folders" in found:
        return folders.load_tree(folder, split, CLASSES, SIZE, strict=strict)
    if "batches" in found:
        parts = []
        for b in BATCHES[split]:
            path = os.path.join(found["batches"], b)
            with open(path, "rb") as f:
                parts.append(read_batch(f, path))
    else:
        parts = _read_archive(found["archive"], BATCHES[split])
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _read_archive(path, names):
    """The named batches from the official .tar.gz, in order, reading only those members."""
    got = {}
    try:
        with tarfile.open(path, "r:*") as tf:
            for m in tf:
                base = m.name.replace("\\", "/").rsplit("/", 1)[-1]
                if base in names and base not in got and m.isreg():
                    with tf.extractfile(m) as f:
                        got[base] = read_batch(f, f"{path}:{m.name}")
                    if len(got) == len(names):
                        break
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read the CIFAR-10 archive ({e})") from None
    missing = [n for n in names if n not in got]
    if missing:
        raise DataError(f"{path}: {', '.join(missing)} not in the archive")
    return [got[n] for n in names]


def counts(folder):
    """{split: number of images}: files in the tree, or the official 50,000/10,000 for batches."""
    found = find(os.fspath(folder))
    if found is None:
        return None
    if "folders" in found:
        return {s: folders.count_tree(r, CLASSES) for s, r in found["folders"].items()}
    return {"train": 50000, "test": 10000}  # five batches of 10,000 and one


def write(folder, split, x, y):
    """Write one split as the image-folder tree: split/<class>/NNNNN.png (lossless)."""
    x = np.asarray(x, dtype=np.uint8)
    y = np.asarray(y).reshape(-1)
    if x.shape[1:] != (32, 32, 3) or len(x) != len(y):
        raise DataError(f"cannot write cifar10 {split}: images {x.shape}, labels {y.shape}")
    for c in CLASSES:
        os.makedirs(os.path.join(folder, split, c), exist_ok=True)
    for i, (img, label) in enumerate(zip(x, y)):
        Image.fromarray(img, "RGB").save(os.path.join(folder, split, CLASSES[int(label)], f"{i:05d}.png"),
                                         compress_level=1)


# ---------------------------------------------------------------- the importer


def import_source(source, folder, overwrite=False):
    """Write folder/{train,test}/<class>/* from the official batches (folder or .tar.gz) or an
    image-folder tree (folder, .zip or .tar[.gz]); returns what was written and skipped."""
    folder = folders.check_target(folder, source, overwrite)
    src = folders.Source(source)
    batch_names = _find_batches(src)
    if batch_names is None:
        nested = [n for n in src.names if n.rsplit("/", 1)[-1] == ARCHIVE]
        if src.kind == "folder" and len(nested) == 1 and not _find_tree(src)[0]:
            src = folders.Source(src.local_path(nested[0]))
            batch_names = _find_batches(src)
    report = {"folder": folder, "source": src.path, "written": {}, "skipped": list(src.links), "ignored": 0}
    if batch_names is not None:
        report["layout"] = "batches"
        with folders.building(folder, src, report.setdefault("notes", [])) as tmp:
            _import_batches(src, batch_names, tmp, report)
        return report
    tree, ignored = _find_tree(src)
    if not tree:
        raise DataError(f"{src.path}: no CIFAR-10 data found: expected {BATCH_DIR}/ (data_batch_1-5, "
                        f"test_batch), {ARCHIVE}, or train/<class>/ and test/<class>/ image folders "
                        f"with classes {', '.join(CLASSES)}")
    report["layout"] = "folders"
    report["ignored"] = ignored
    with folders.building(folder, src, report.setdefault("notes", [])) as tmp:
        wanted = {}
        for s in SPLITS:
            for c in CLASSES:
                os.makedirs(os.path.join(tmp, s, c))
        for name, (split, cls) in tree.items():
            wanted[name] = os.path.join(tmp, split, cls, name.rsplit("/", 1)[-1])
        failed = src.copy(wanted)
        written = dict.fromkeys(SPLITS, 0)
        for name, dest in wanted.items():
            why = failed.get(name) or folders.check_image(dest)
            if why:
                report["skipped"].append((name, why))
                if os.path.exists(dest):
                    os.remove(dest)
            else:
                written[tree[name][0]] += 1
        report["written"] = written
    return report


def _find_batches(src):
    """{batch name: entry name} when all six official batches sit in one folder of the source."""
    by_dir = {}
    wanted = {b for names in BATCHES.values() for b in names}
    for n in src.names:
        d, _, base = n.rpartition("/")
        if base in wanted:
            by_dir.setdefault(d, {})[base] = n
    for d in sorted(by_dir, key=lambda d: (d.count("/"), d)):
        if len(by_dir[d]) == len(wanted):
            return by_dir[d]
    return None


def _find_tree(src):
    """({entry name: (split, class)}, number of non-image files ignored) of .../train|test/<class>/file."""
    tree, ignored, prefixes = {}, 0, set()
    for n in src.names:
        parts = n.split("/")
        if len(parts) < 3 or parts[-3] not in SPLITS or "__MACOSX" in parts:
            continue
        prefix, split, cls = "/".join(parts[:-3]), parts[-3], parts[-2]
        if cls.startswith("."):
            continue
        if cls not in CLASSES:
            raise DataError(f"{src.path}: unknown class folder '{'/'.join(parts[:-1])}'; CIFAR-10 "
                            f"classes are {', '.join(CLASSES)}")
        if not folders.is_image_name(n):
            ignored += 1
            continue
        prefixes.add(prefix)
        tree[n] = (split, cls)
    if len(prefixes) > 1:
        raise DataError(f"{src.path}: several train/test trees ({', '.join(sorted(p or '.' for p in prefixes))}); "
                        f"import one at a time")
    return tree, ignored


def _import_batches(src, names, tmp, report):
    staging = os.path.join(tmp, ".incoming")
    os.makedirs(staging)
    failed = src.copy({n: os.path.join(staging, b) for b, n in names.items()})
    if failed:
        name, why = next(iter(failed.items()))
        raise DataError(f"{src.path}: {name}: {why}")
    for split in SPLITS:
        parts = []
        for b in BATCHES[split]:
            with open(os.path.join(staging, b), "rb") as f:
                parts.append(read_batch(f, f"{src.path}:{names[b]}"))
        x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        try:
            write(tmp, split, x, y)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DataError(f"import stopped: no space left on the target's disk ({e.strerror}); "
                                "nothing was imported") from None
            raise
        report["written"][split] = len(y)
    for b in os.listdir(staging):
        os.remove(os.path.join(staging, b))
    os.rmdir(staging)
