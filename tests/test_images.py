"""images.read_sized: the one resize training data and prediction share, on real images."""
import io
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import cifar10_jpg
from convzoo import images, predict
from convzoo.data import catsdogs, cifar, folders

SIZES = [(150, 150), (32, 32), (64, 48), (200, 200)]


def meta(size, mode):
    return {"preprocess": {}, "input_shape": [size[0], size[1], 3 if mode == "RGB" else 1]}


def before(path, size, mode):
    """The resize both paths did before they shared one: Pillow bilinear when the size differs."""
    arr = images.read(path, mode)
    if arr.shape[:2] != size:
        arr = np.asarray(Image.fromarray(arr).resize((size[1], size[0]), Image.BILINEAR), dtype=np.uint8)
    return arr.reshape(*size, -1)


def same_input(path, size, mode):
    train = folders.decode(str(path), size, mode)
    served = predict.to_input(str(path), meta(size, mode))
    assert train.dtype == served.dtype == np.uint8 and train.shape == served.shape == (*size, 1 if mode == "L" else 3)
    np.testing.assert_array_equal(train, served)
    np.testing.assert_array_equal(train, before(path, size, mode))


@pytest.mark.shared("cats_vs_dogs")
def test_training_and_prediction_resize_real_jpegs_alike(shared_datasets, tmp_path):
    src = shared_datasets / "cats_vs_dogs" / "train"
    files = [src / f"{kind}.{i}.jpg" for kind in ("cat", "dog") for i in range(6)]
    for f in files:
        for size in SIZES:
            for mode in ("RGB", "L"):
                same_input(f, size, mode)
    # and through the training loader (decoded once, cached) at the size cats_vs_dogs trains on
    for f in files:
        dest = tmp_path / "d" / "train" / ("cats" if f.name.startswith("cat") else "dogs")
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, dest / f.name)
    for _ in range(2):  # decoded, then from the cache
        x, _, kept, _ = folders.load_tree_listed(tmp_path / "d", "train", catsdogs.CLASSES, catsdogs.SIZE)
        for row, rel in zip(x, kept):
            np.testing.assert_array_equal(
                row, predict.to_input(str(tmp_path / "d" / "train" / rel), meta(catsdogs.SIZE, "RGB")))


@pytest.mark.shared("cifar10-jpg.tar.gz")
def test_training_and_prediction_resize_real_cifar_pngs_alike(tmp_path):
    files = cifar10_jpg(test=2)
    x = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in files.values()])
    y = np.array([cifar.CLASSES.index(name.split("/")[1]) for name in files])
    cifar.write(tmp_path, "test", x, y)  # the lossless PNGs convzoo writes from the official batches
    pngs = sorted((tmp_path / "test").rglob("*.png"))
    assert len(pngs) == 20
    for f in pngs:
        for size in SIZES:
            for mode in ("RGB", "L"):
                same_input(f, size, mode)
    x2, _ = folders.load_tree(tmp_path, "test", cifar.CLASSES, cifar.SIZE)
    assert {a.tobytes() for a in x2} == {a.tobytes() for a in x}  # 32x32: no resize, the pixels as written


def test_a_gray_file_read_as_colour_and_gray(tmp_path):
    arr = (np.arange(40 * 30, dtype=np.uint32) % 251).astype(np.uint8).reshape(30, 40)
    Image.fromarray(arr, "L").save(tmp_path / "g.png")
    for size in [(30, 40), (28, 28), (61, 17)]:
        for mode in ("RGB", "L"):
            same_input(tmp_path / "g.png", size, mode)
