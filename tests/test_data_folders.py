"""Image-folder datasets (cifar10, cats_vs_dogs): readers, importers, caches and refusals, on tiny
folders and archives the tests write, plus a few hundred real images when ../shared is there."""
import io
import os
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import cifar10_jpg, write_files
from convzoo import data as catalog
from convzoo.data import catsdogs, cifar, folders
from convzoo.errors import DataError

# ---------------------------------------------------------------- writing test images


def jpeg_bytes(seed=0, size=(24, 20)):
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def corrupt_jpeg():
    return jpeg_bytes(99, (64, 64))[:300]  # a JPEG header and a few rows: "image file is truncated"


def alpha_png():
    buf = io.BytesIO()
    Image.new("RGBA", (20, 20), (255, 0, 0, 0)).save(buf, "PNG")  # fully transparent red
    return buf.getvalue()


def zip_of(path, files):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def tar_of(path, files):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def listing(folder):
    """{'split/class': sorted file names} of an imported folder."""
    out = {}
    for d in sorted(Path(folder).glob("*/*")):
        if d.is_dir():
            out[f"{d.parent.name}/{d.name}"] = sorted(p.name for p in d.iterdir())
    return out


def kaggle_files():
    """cat.0-11.jpg, dog.0-11 (dog.5 a PNG with alpha); cat.2 truncated, dog.1 empty; a readme."""
    files = {f"cat.{i}.jpg": jpeg_bytes(i) for i in range(12)}
    files.update({f"dog.{i}.jpg": jpeg_bytes(100 + i) for i in range(12) if i != 5})
    files["dog.5.png"] = alpha_png()
    files["cat.2.jpg"] = corrupt_jpeg()
    files["dog.1.jpg"] = b""
    files["readme.txt"] = b"not an image"
    return files


SIZES = {"train": 3, "validation": 2, "test": 2}
KAGGLE_SPLIT = {  # numbers in number order (cat.10 after cat.9), the broken ones left out
    "test/cats": ["cat.6.jpg", "cat.7.jpg"], "test/dogs": ["dog.6.jpg", "dog.7.jpg"],
    "train/cats": ["cat.0.jpg", "cat.1.jpg", "cat.3.jpg"], "train/dogs": ["dog.0.jpg", "dog.2.jpg", "dog.3.jpg"],
    "validation/cats": ["cat.4.jpg", "cat.5.jpg"], "validation/dogs": ["dog.4.jpg", "dog.5.png"],
}


# ---------------------------------------------------------------- the catalog


def test_catalog_entries():
    c = catalog.get("cifar10")
    assert c.classes[0] == "airplane" and c.classes[-1] == "truck" and len(c.classes) == 10
    assert c.input_shape == (32, 32, 3) and c.preprocess == {"color": "RGB", "size": [32, 32]}
    d = catalog.get("cats_vs_dogs")
    assert d.classes == ("cats", "dogs") and d.input_shape == (150, 150, 3)
    assert catalog.loader("cifar10") is cifar and catalog.loader("cats_vs_dogs") is catsdogs


# ---------------------------------------------------------------- cats vs dogs import


def test_kaggle_folder_gives_the_numbered_split(tmp_path):
    src = write_files(tmp_path / "kaggle", kaggle_files())
    report = catsdogs.import_source(src, tmp_path / "data" / "cats_vs_dogs", **SIZES)
    assert listing(tmp_path / "data" / "cats_vs_dogs") == KAGGLE_SPLIT
    assert report["layout"] == "kaggle" and report["written"] == {"train": 6, "validation": 4, "test": 4}
    skipped = dict(report["skipped"])
    assert sorted(skipped) == ["cat.2.jpg", "dog.1.jpg"] and skipped["dog.1.jpg"] == "empty file (0 bytes)"
    assert "truncated" in skipped["cat.2.jpg"].lower()
    assert report["ignored"] == 1 and report["short"] == []
    assert catsdogs.counts(tmp_path / "data" / "cats_vs_dogs") == {"train": 6, "validation": 4, "test": 4}
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["cats_vs_dogs"]  # no temp folder left


def test_kaggle_zip_gives_the_same_split(tmp_path):
    files = {f"train/{k}": v for k, v in kaggle_files().items()}
    zip_of(tmp_path / "train.zip", files)
    report = catsdogs.import_source(tmp_path / "train.zip", tmp_path / "out", **SIZES)
    assert listing(tmp_path / "out") == KAGGLE_SPLIT and len(report["skipped"]) == 2


def test_petimages_tar_gz_skips_broken_files_and_thumbs(tmp_path):
    files = {f"PetImages/Cat/{i}.jpg": jpeg_bytes(i) for i in range(8)}
    files.update({f"PetImages/Dog/{i}.jpg": jpeg_bytes(50 + i) for i in range(8)})
    files["PetImages/Cat/3.jpg"] = b""
    files["PetImages/Dog/0.jpg"] = corrupt_jpeg()
    files["PetImages/Cat/Thumbs.db"] = b"\0" * 10
    files["readme[1].txt"] = b"licence"
    tar_of(tmp_path / "pets.tar.gz", files)
    report = catsdogs.import_source(tmp_path / "pets.tar.gz", tmp_path / "out", train=4, validation=2, test=1)
    got = listing(tmp_path / "out")
    assert report["layout"] == "class-folders" and report["ignored"] == 2
    assert got["train/cats"] == ["0.jpg", "1.jpg", "2.jpg", "4.jpg"] and got["test/cats"] == ["7.jpg"]
    assert got["train/dogs"] == ["1.jpg", "2.jpg", "3.jpg", "4.jpg"] and got["test/dogs"] == ["7.jpg"]
    assert sorted(n for n, _ in report["skipped"]) == ["PetImages/Cat/3.jpg", "PetImages/Dog/0.jpg"]


def test_split_tree_keeps_its_splits(tmp_path):
    files = {}
    for split, first in (("train", 0), ("validation", 10), ("test", 20)):
        for cls in ("cats", "dogs"):
            for i in range(first, first + 4):
                files[f"mine/{split}/{cls}/{cls[:-1]}.{i}.jpg"] = jpeg_bytes(i)
    zip_of(tmp_path / "split.zip", files)
    report = catsdogs.import_source(tmp_path / "split.zip", tmp_path / "out", train=3, validation=4, test=5)
    got = listing(tmp_path / "out")
    assert report["layout"] == "split"
    assert got["train/cats"] == ["cat.0.jpg", "cat.1.jpg", "cat.2.jpg"]
    assert got["validation/dogs"] == [f"dog.{i}.jpg" for i in range(10, 14)]
    assert len(got["test/dogs"]) == 4 and "test/dogs: 4 of 5" in report["short"]


def test_names_without_numbers_use_a_seeded_shuffle(tmp_path):
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    files = {f"{c}/{w}.jpg": jpeg_bytes(j) for c in ("Cat", "Dog") for j, w in enumerate(words)}
    src = write_files(tmp_path / "src", files)
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        catsdogs.import_source(src, tmp_path / name, train=3, validation=2, test=2, seed=seed)
        runs[name] = listing(tmp_path / name)
    assert runs["a"] == runs["b"] and runs["a"] != runs["c"]
    assert runs["a"]["train/cats"] != ["alpha.jpg", "bravo.jpg", "charlie.jpg"]


def test_bad_sizes_and_sources_are_refused(tmp_path):
    src = write_files(tmp_path / "src", {"notes.txt": b"x"})
    with pytest.raises(DataError, match="--validation must be"):
        catsdogs.import_source(src, tmp_path / "out", validation=-1)
    with pytest.raises(DataError, match="no cat or dog images found"):
        catsdogs.import_source(src, tmp_path / "out")
    with pytest.raises(DataError, match="not a folder, .zip or .tar"):
        catsdogs.import_source(src / "notes.txt", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- refusals: traversal, overwrite


@pytest.mark.parametrize("importer", [catsdogs.import_source, cifar.import_source])
@pytest.mark.parametrize("bad", ["../evil.jpg", "/tmp/evil.jpg", "train/cats/../../../evil.jpg"])
def test_traversal_zip_is_refused_with_nothing_written(tmp_path, importer, bad):
    zip_of(tmp_path / "evil.zip", {"train/cat.0.jpg": jpeg_bytes(), bad: jpeg_bytes(1)})
    (tmp_path / "data").mkdir()
    with pytest.raises(DataError, match="outside the target folder"):
        importer(tmp_path / "evil.zip", tmp_path / "data" / "target")
    assert list((tmp_path / "data").iterdir()) == []
    assert not (tmp_path / "evil.jpg").exists() and not (tmp_path.parent / "evil.jpg").exists()


def test_tar_with_a_symlink_is_refused(tmp_path):
    with tarfile.open(tmp_path / "links.tar", "w") as tf:
        data = jpeg_bytes()
        info = tarfile.TarInfo("train/cat.0.jpg")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("train/cat.1.jpg")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    with pytest.raises(DataError, match="symbolic link"):
        catsdogs.import_source(tmp_path / "links.tar", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_zip_with_a_symlink_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "links.zip", "w") as zf:
        zf.writestr("train/cat.0.jpg", jpeg_bytes())
        info = zipfile.ZipInfo("train/cat.1.jpg")
        info.create_system = 3
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(DataError, match="symbolic link"):
        catsdogs.import_source(tmp_path / "links.zip", tmp_path / "out")


def test_existing_target_needs_overwrite(tmp_path):
    src = write_files(tmp_path / "kaggle", kaggle_files())
    target = write_files(tmp_path / "cats_vs_dogs", {"mine.txt": b"keep me"})
    with pytest.raises(DataError, match="already exists; pass --overwrite"):
        catsdogs.import_source(src, target, **SIZES)
    assert (target / "mine.txt").read_bytes() == b"keep me"
    catsdogs.import_source(src, target, overwrite=True, **SIZES)
    assert listing(target) == KAGGLE_SPLIT and not (target / "mine.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cats_vs_dogs", "kaggle"]
    with pytest.raises(DataError, match="inside the target"):
        catsdogs.import_source(target / "train", target, overwrite=True)


# ---------------------------------------------------------------- loading, the cache, corrupt files


def test_catsdogs_load_resizes_and_caches(tmp_path, monkeypatch):
    src = write_files(tmp_path / "kaggle", kaggle_files())
    data = tmp_path / "cats_vs_dogs"
    catsdogs.import_source(src, data, **SIZES)
    x, y = catsdogs.load(data, "validation")
    assert x.shape == (4, 150, 150, 3) and x.dtype == np.uint8 and list(y) == [0, 0, 1, 1]
    assert np.all(x[3] == 255)  # dog.5.png: transparent, composited on white
    assert (data / "cache-validation.npz").is_file()

    calls = []
    real = folders.decode
    monkeypatch.setattr(folders, "decode", lambda p, s, *mode: calls.append(p) or real(p, s, *mode))
    x2, y2 = catsdogs.load(data, "validation")
    assert calls == [] and np.array_equal(x, x2) and np.array_equal(y, y2)
    write_files(data, {"validation/cats/cat.99.jpg": jpeg_bytes(7)})  # a changed folder
    x3, _ = catsdogs.load(data, "validation")
    assert len(calls) == 5 and len(x3) == 5
    with pytest.raises(DataError, match="no 'val' split"):
        catsdogs.load(data, "val")



def test_a_split_over_the_memory_budget_is_decoded_to_disk_and_mapped(tmp_path, monkeypatch):
    """Above folders.memory_budget() the decoded split goes straight to a .npy that is mapped
    read-only: the same images and labels as in memory, the cache reused, never read whole."""
    src = write_files(tmp_path / "kaggle", kaggle_files())
    data = tmp_path / "cats_vs_dogs"
    catsdogs.import_source(src, data, **SIZES)
    x_mem, y_mem = catsdogs.load(data, "validation")  # 4 images, in memory (an .npz with x)
    monkeypatch.setattr(folders, "memory_budget", lambda: 10_000)
    x, y = catsdogs.load(data, "validation")  # the .npz cache is over budget now: rebuilt on disk
    assert isinstance(x, np.memmap) and not x.flags.writeable
    assert np.array_equal(x, x_mem) and np.array_equal(y, y_mem)
    assert (data / "cache-validation-images.npy").is_file()
    with np.load(data / "cache-validation.npz") as f:
        assert "x" not in f.files
    monkeypatch.setattr(folders, "decode", lambda *a: pytest.fail("decoded again"))
    x2, _ = catsdogs.load(data, "validation")
    assert isinstance(x2, np.memmap) and np.array_equal(x2, x_mem)


def test_a_damaged_or_swapped_image_file_is_rebuilt(tmp_path, monkeypatch):
    src = write_files(tmp_path / "kaggle", kaggle_files())
    data = tmp_path / "cats_vs_dogs"
    catsdogs.import_source(src, data, **SIZES)
    monkeypatch.setattr(folders, "memory_budget", lambda: 0)
    x, _ = catsdogs.load(data, "validation")
    good = np.array(x)
    np.save(data / "cache-validation-images.npy", np.zeros((4, 8, 8, 3), np.uint8))  # another shape
    x2, _ = catsdogs.load(data, "validation")
    assert np.array_equal(x2, good)
    (data / "cache-validation-images.npy").write_bytes(b"\x93NUMPY garbage")
    x3, _ = catsdogs.load(data, "validation")
    assert np.array_equal(x3, good)


def test_rows_reads_the_asked_rows_in_the_asked_order(tmp_path):
    from convzoo.data import store

    a = np.arange(10 * 2 * 2 * 1, dtype=np.uint8).reshape(10, 2, 2, 1)
    np.save(tmp_path / "a.npy", a)
    m = np.load(tmp_path / "a.npy", mmap_mode="r")
    r = store.take(m, np.array([7, 2, 9, 0]))
    assert isinstance(r, store.Rows) and r.shape == (4, 2, 2, 1) and len(r) == 4
    assert np.array_equal(r[np.array([3, 0, 1])], a[[0, 7, 2]]) and np.array_equal(r[1:3], a[[2, 9]])
    assert np.array_equal(r[2], a[9]) and np.array_equal(store.take(r, [1, 1])[:], a[[2, 2]])
    assert not isinstance(store.take(a, [1]), store.Rows)  # in memory: plain indexing


MEMORY_CHILD = """
import sys
import numpy as np
from convzoo.data import folders, store

def anon():  # resident memory that is not a file's pages (a mapped file's pages can be dropped)
    return int(open("/proc/self/status").read().split("RssAnon:")[1].split()[0])

folders.memory_budget = lambda: int(sys.argv[2])
x, y = folders.load_tree(sys.argv[1], "train", ("a", "b"), (256, 256))
x = store.take(x, np.arange(len(y)))
peak = anon()
for i in range(0, len(y), 32):
    batch = x[np.arange(i, min(i + 32, len(y)))]
    peak = max(peak, anon())
print(len(y), peak)
"""


def test_training_reads_a_split_larger_than_memory_allows_a_batch_at_a_time(tmp_path):
    """400 tiny PNGs decoded at 256x256 are 79 MB: over a 4 MB budget, after the decode and at each
    batch of a pass, the process holds far less than that (beside the mapped file's pages, which
    the kernel can drop); in memory (the control) it holds all of it."""
    import subprocess
    import sys

    for k in range(400):
        d = tmp_path / "d" / "train" / "ab"[k % 2]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), k % 251, np.uint8)).save(d / f"{k}.png")

    def peak(budget, folder):
        out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(folder), str(budget)],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-800:]
        return [int(v) for v in out.stdout.split()]

    n, on_disk = peak(4 * 2**20, tmp_path / "d")
    import shutil
    shutil.copytree(tmp_path / "d" / "train", tmp_path / "e" / "train")
    _, in_memory = peak(2**40, tmp_path / "e")
    assert n == 400 and in_memory - on_disk > 60_000, (on_disk, in_memory)  # KB


def test_corrupt_image_in_a_dataset_warns_or_fails_when_strict(tmp_path):
    data = write_files(tmp_path / "cats_vs_dogs", {
        "train/cats/cat.0.jpg": jpeg_bytes(0), "train/cats/cat.1.jpg": corrupt_jpeg(),
        "train/dogs/dog.0.jpg": jpeg_bytes(1), "train/dogs/dog.1.jpg": b""})
    for _ in range(2):  # decoded, then from the cache: the same answer
        with pytest.warns(folders.SkippedImages, match="2 of 4 images cannot be decoded"):
            x, y = catsdogs.load(data, "train")
        assert x.shape == (2, 150, 150, 3) and list(y) == [0, 1]
        with pytest.raises(DataError, match=r"cats/cat.1.jpg.*--strict"):
            catsdogs.load(data, "train", strict=True)
    _, _, kept, bad = folders.load_tree_listed(data, "train", catsdogs.CLASSES, catsdogs.SIZE)
    assert kept == ["cats/cat.0.jpg", "dogs/dog.0.jpg"]
    assert [b.split(":")[0] for b in bad] == ["cats/cat.1.jpg", "dogs/dog.1.jpg"]


def test_missing_dataset_says_what_to_put_where(tmp_path):
    for mod in (cifar, catsdogs):
        assert mod.find(tmp_path) is None and mod.counts(tmp_path) is None
        with pytest.raises(DataError) as e:
            mod.load(tmp_path, "train")
        assert str(tmp_path) in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------- CIFAR-10: pickled batches


def batch(n, seed, protocol=2, py2_names=False):
    rng = np.random.default_rng(seed)
    d = {b"batch_label": b"testing batch", b"labels": [int(v) for v in rng.integers(0, 10, n)],
         b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}
    raw = pickle.dumps(d, protocol=protocol)
    if py2_names:  # what the official files, pickled by Python 2 and numpy 1, name
        raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    return raw, d


def batch_files(prefix="cifar-10-batches-py/", n=3):
    files, raw = {}, {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        files[prefix + name], raw[name] = batch(n, i, py2_names=(i % 2 == 0))
    return files, raw


def test_batches_load_as_nhwc(tmp_path):
    files, raw = batch_files()
    data = write_files(tmp_path / "cifar10", files)
    assert cifar.find(data) == {"batches": str(data / "cifar-10-batches-py")}
    assert cifar.counts(data) == {"train": 50000, "test": 10000}
    x, y = cifar.load(data, "train")
    assert x.shape == (15, 32, 32, 3) and x.dtype == np.uint8
    d = raw["data_batch_2"]
    assert list(y[3:6]) == d[b"labels"]
    flat = d[b"data"][0]
    assert x[3, 1, 2, 0] == flat[34] and x[3, 1, 2, 1] == flat[1024 + 34] and x[3, 1, 2, 2] == flat[2048 + 34]
    xt, yt = cifar.load(data, "test")
    assert xt.shape == (3, 32, 32, 3)


def test_official_archive_loads_and_imports_losslessly(tmp_path):
    files, _ = batch_files()
    (tmp_path / "cifar10").mkdir()
    tar_of(tmp_path / "cifar10" / "cifar-10-python.tar.gz", files)
    x, y = cifar.load(tmp_path / "cifar10", "train")
    report = cifar.import_source(tmp_path / "cifar10" / "cifar-10-python.tar.gz", tmp_path / "out")
    assert report["layout"] == "batches" and report["written"] == {"train": 15, "test": 3}
    assert cifar.find(tmp_path / "out") == {"folders": {s: str(tmp_path / "out" / s) for s in ("train", "test")}}
    x2, y2 = cifar.load(tmp_path / "out", "train")
    order = np.lexsort((np.arange(len(y)), y))  # the tree is read class by class, by file number
    assert np.array_equal(x2, x[order]) and np.array_equal(y2, y[order])
    # the same from the batches folder, and from a folder that holds the archive
    report = cifar.import_source(tmp_path / "cifar10", tmp_path / "out2")
    assert report["written"] == {"train": 15, "test": 3}


class Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_other_classes(tmp_path):
    Evil.marker = tmp_path / "pwned"
    data = tmp_path / "cifar10" / "cifar-10-batches-py"
    files, _ = batch_files(prefix="")
    write_files(data, files)
    (data / "data_batch_3").write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}))
    with pytest.raises(DataError, match=r"data_batch_3: not a CIFAR-10 batch: refused to load (posix|os)\.system"):
        cifar.load(tmp_path / "cifar10", "train")
    assert not Evil.marker.exists()
    from collections import OrderedDict

    (data / "test_batch").write_bytes(pickle.dumps(OrderedDict(data=1)))
    with pytest.raises(DataError, match="refused to load collections.OrderedDict"):
        cifar.load(tmp_path / "cifar10", "test")
    (data / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}))
    with pytest.raises(DataError, match="data is float32"):
        cifar.load(tmp_path / "cifar10", "test")
    (data / "test_batch").write_bytes(batch(4, 0)[0][:-200])
    with pytest.raises(DataError, match="test_batch: not a CIFAR-10 batch"):
        cifar.load(tmp_path / "cifar10", "test")


# ---------------------------------------------------------------- CIFAR-10: image-folder trees


def cifar_tree(prefix=""):
    files = {}
    for split, n in (("train", 2), ("test", 1)):
        for c, cls in enumerate(cifar.CLASSES):
            for i in range(n):
                files[f"{prefix}{split}/{cls}/{i:04d}.jpg"] = jpeg_bytes(c * 10 + i, (32, 32))
    files[f"{prefix}train/cat/0099.jpg"] = corrupt_jpeg()
    files[f"{prefix}train/dog/0099.png"] = alpha_png()  # 20x20: resized to 32x32
    files[f"{prefix}test/ship/0099.jpg"] = b""
    files[f"{prefix}train/cat/notes.txt"] = b"x"
    return files


@pytest.mark.parametrize("kind", ["folder", "zip", "tar.gz"])
def test_cifar_tree_imports_from_each_source(tmp_path, kind):
    files = cifar_tree("cifar10-jpg/")
    if kind == "folder":
        src = write_files(tmp_path / "src", files)
    elif kind == "zip":
        src = zip_of(tmp_path / "src.zip", files)
    else:
        src = tar_of(tmp_path / "src.tar.gz", files)
    report = cifar.import_source(src, tmp_path / "cifar10")
    assert report["layout"] == "folders" and report["written"] == {"train": 21, "test": 10}
    assert sorted(n.split("/", 1)[1] for n, _ in report["skipped"]) == ["test/ship/0099.jpg", "train/cat/0099.jpg"]
    assert report["ignored"] == 1
    assert cifar.counts(tmp_path / "cifar10") == {"train": 21, "test": 10}
    x, y = cifar.load(tmp_path / "cifar10", "train")
    assert x.shape == (21, 32, 32, 3) and np.bincount(y).tolist() == [2, 2, 2, 2, 2, 3, 2, 2, 2, 2]
    assert np.all(x[np.flatnonzero(y == 5)[-1]] == 255)  # dog/0099.png, transparent on white


def test_cifar_unknown_class_folder_is_named(tmp_path):
    src = write_files(tmp_path / "src", {"train/apple/0.jpg": jpeg_bytes(), "test/cat/0.jpg": jpeg_bytes()})
    with pytest.raises(DataError, match="unknown class folder 'train/apple'"):
        cifar.import_source(src, tmp_path / "out")
    data = write_files(tmp_path / "cifar10", {"train/cat/0.jpg": jpeg_bytes(), "train/apple/0.jpg": jpeg_bytes(),
                                              "test/cat/0.jpg": jpeg_bytes()})
    with pytest.raises(DataError, match="unknown class folder 'apple'"):
        cifar.load(data, "train")


# ---------------------------------------------------------------- real data


@pytest.mark.shared("cats_vs_dogs")
def test_real_cats_vs_dogs_textbook_split(shared_datasets, tmp_path):
    report = catsdogs.import_source(shared_datasets / "cats_vs_dogs" / "train", tmp_path / "cats_vs_dogs",
                                    train=60, validation=20, test=20)
    got = listing(tmp_path / "cats_vs_dogs")
    assert report["skipped"] == [] and report["written"] == {"train": 120, "validation": 40, "test": 40}
    assert sorted(int(n.split(".")[1]) for n in got["train/dogs"]) == list(range(60))
    assert sorted(int(n.split(".")[1]) for n in got["test/cats"]) == list(range(80, 100))
    x, y = catsdogs.load(tmp_path / "cats_vs_dogs", "validation")
    assert x.shape == (40, 150, 150, 3) and np.bincount(y).tolist() == [20, 20]
    assert 40 < x.mean() < 220


@pytest.mark.shared("cifar10-jpg.tar.gz")
def test_real_cifar10_jpg_subset(tmp_path):
    tar_of(tmp_path / "subset.tar.gz", cifar10_jpg(train=20, test=10))
    report = cifar.import_source(tmp_path / "subset.tar.gz", tmp_path / "cifar10")
    assert report["written"] == {"train": 200, "test": 100} and report["skipped"] == []
    x, y = cifar.load(tmp_path / "cifar10", "test")
    assert x.shape == (100, 32, 32, 3) and np.bincount(y).tolist() == [10] * 10
