"""CIFAR-10 and cats vs dogs end to end on a few hundred real images (skipped without ../shared)."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import cifar10_jpg, invoke, write_files


@pytest.fixture
def cifar_dir(tmp_path):
    """A CIFAR-10 image-folder source with 30 train and 10 test images per class, imported."""
    return write_files(tmp_path / "cifar-src", cifar10_jpg(train=30, test=10))


@pytest.fixture
def catsdogs_dir(shared_datasets, tmp_path):
    src = tmp_path / "kaggle"
    src.mkdir()
    for animal in ("cat", "dog"):
        for i in range(120):
            shutil.copy(shared_datasets / "cats_vs_dogs" / "train" / f"{animal}.{i}.jpg", src)
    return src


@pytest.mark.shared("cifar10-jpg.tar.gz")
def test_cifar10_import_train_evaluate_predict(runner, cifar_dir, tmp_path):
    res = invoke(runner, "data", "import", "cifar10", cifar_dir, "--data-dir", "d")
    assert res.exit_code == 0 and "train 300, test 100" in res.output
    for model in ("cifar10-cnn", "cifar10-vgg"):
        res = invoke(runner, "train", "cifar10", "--model", model, "--epochs", "1", "--data-dir", "d",
                     "--output", f"{model}.h5")
        assert res.exit_code == 0, res.output
        out = json.loads(invoke(runner, "evaluate", f"{model}.h5", "--data-dir", "d", "--json").stdout)
        assert out["n"] == 100 and len(out["confusion_matrix"]) == 10
    photo = tmp_path / "photo.png"
    Image.open(next((cifar_dir / "test" / "cat").iterdir())).resize((97, 61)).convert("RGBA").save(photo)
    out = json.loads(invoke(runner, "predict", photo, "--model", "cifar10-cnn.h5", "--json").stdout)
    assert out[0]["error"] is None and len(out[0]["predictions"]) == 3
    # a colour model used on a 28x28 dataset: both named, no shape traceback
    res = invoke(runner, "evaluate", "cifar10-cnn.h5", "--dataset", "mnist", "--data-dir", "d")
    assert res.exit_code == 1 and "cifar10 model" in res.output and "mnist" in res.output


@pytest.mark.shared("cats_vs_dogs")
def test_catsdogs_import_split_and_binary_head(runner, catsdogs_dir, tmp_path):
    res = invoke(runner, "data", "import", "cats_vs_dogs", catsdogs_dir, "--data-dir", "d",
                 "--train", "80", "--validation", "20", "--test", "20")
    assert res.exit_code == 0, res.output
    assert "train 160, validation 40, test 40" in res.output
    assert sorted(p.name for p in (tmp_path / "d" / "cats_vs_dogs" / "test" / "cats").iterdir())[0] == "cat.100.jpg"
    for model in ("catsdogs-cnn", "catsdogs-cnn-aug"):
        res = invoke(runner, "train", "cats_vs_dogs", "--model", model, "--epochs", "1", "--data-dir", "d",
                     "--output", f"{model}.h5")
        assert res.exit_code == 0, res.output
        assert "160 training / 40 validation images" in res.output
    out = json.loads(invoke(runner, "evaluate", "catsdogs-cnn.h5", "--data-dir", "d", "--json").stdout)
    assert out["n"] == 40 and np.array(out["confusion_matrix"]).shape == (2, 2)
    assert [r["class"] for r in out["per_class"]] == ["cats", "dogs"]
    out = json.loads(invoke(runner, "predict", catsdogs_dir / "dog.119.jpg", "--model", "catsdogs-cnn-aug.h5",
                            "--json").stdout)
    preds = out[0]["predictions"]
    assert {p["label"] for p in preds} == {"cats", "dogs"} and abs(sum(p["probability"] for p in preds) - 1) < 1e-5


@pytest.mark.shared("cats_vs_dogs")
def test_vgg16_from_scratch_and_offline_imagenet(runner, catsdogs_dir, tmp_path, monkeypatch):
    """--weights none: VGG16 from random weights, with no download; models without VGG16's
    --weights meanings are refused with their reason."""
    from keras.src.utils import file_utils

    def no_download(*args, **kwargs):
        raise AssertionError(f"--weights none downloaded {args or kwargs}")

    monkeypatch.setattr(file_utils, "get_file", no_download)
    invoke(runner, "data", "import", "cats_vs_dogs", catsdogs_dir, "--data-dir", "d",
           "--train", "10", "--validation", "5", "--test", "5")
    res = invoke(runner, "train", "cats_vs_dogs", "--model", "vgg16-finetune", "--weights", "none",
                 "--epochs", "1", "--batch-size", "10", "--data-dir", "d", "--output", "v.h5")
    assert res.exit_code == 0, res.output
    from convzoo import checkpoint

    model, meta = checkpoint.load(tmp_path / "v.h5")
    assert meta["weights_init"] == "none"
    base = next(layer for layer in model.layers if layer.name == "vgg16")
    trainable = {layer.name for layer in base.layers if layer.trainable and layer.weights}
    assert trainable and all(n.startswith("block5") for n in trainable)
    res = invoke(runner, "train", "cats_vs_dogs", "--model", "mnist-cnn", "--weights", "none",
                 "--data-dir", "d", "--output", "x.h5")
    assert res.exit_code == 1 and "model 'mnist-cnn' is built for mnist, not cats_vs_dogs" in res.output
    # a model of this dataset: --weights names the checkpoint it starts from, and "none" is no file
    res = invoke(runner, "train", "cats_vs_dogs", "--model", "catsdogs-cnn", "--weights", "none",
                 "--data-dir", "d", "--output", "x.h5")
    assert res.exit_code == 1 and "none: no such checkpoint file" in res.output
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.shared("cats_vs_dogs")
def test_vgg16_imagenet_offline_says_how_to_supply_weights(runner, catsdogs_dir, monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: no network")

    monkeypatch.setattr(file_utils, "get_file", offline)
    invoke(runner, "data", "import", "cats_vs_dogs", catsdogs_dir, "--data-dir", "d",
           "--train", "10", "--validation", "5", "--test", "5")
    res = invoke(runner, "train", "cats_vs_dogs", "--model", "vgg16-features", "--epochs", "1",
                 "--data-dir", "d", "--output", "v.h5")
    assert res.exit_code == 1 and "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in res.output
    assert "--weights PATH" in res.output


def test_corrupt_image_is_skipped_with_a_warning_or_fails_with_strict(runner, tmp_path):
    """No ../shared needed: a tiny generated cats/dogs tree with one corrupt JPEG."""
    rng = np.random.default_rng(0)
    for split in ("train", "validation", "test"):
        for cls in ("cats", "dogs"):
            folder = tmp_path / "d" / "cats_vs_dogs" / split / cls
            folder.mkdir(parents=True)
            for i in range(4):
                Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    good = (tmp_path / "d" / "cats_vs_dogs" / "train" / "cats" / "0.jpg").read_bytes()
    (tmp_path / "d" / "cats_vs_dogs" / "train" / "dogs" / "bad.jpg").write_bytes(good[:200])
    res = invoke(runner, "train", "cats_vs_dogs", "--model", "catsdogs-cnn", "--epochs", "1", "--strict",
                 "--data-dir", "d", "--output", "s.h5")
    assert res.exit_code == 1 and "1 of 9 images cannot be decoded" in res.output and "--strict" in res.output
    res = invoke(runner, "train", "cats_vs_dogs", "--model", "catsdogs-cnn", "--epochs", "1",
                 "--data-dir", "d", "--output", "m.h5")
    assert res.exit_code == 0, res.output
    assert "warning:" in res.output and "bad.jpg" in res.output and "8 training / 8 validation" in res.output
