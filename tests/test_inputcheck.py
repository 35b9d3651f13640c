"""predict --save-input and the out-of-distribution warnings."""
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, SHARED, invoke
from convzoo import inputcheck
from convzoo.checkpoint import read_meta
from convzoo.predict import to_input

SAMPLES = ROOT / "data" / "samples"


def _meta(dataset):
    return read_meta(ROOT / "models" / f"{dataset}.h5")


def _colour_photo(path):
    """A photo-like colourful image: smooth red, green and blue regions with noise."""
    rng = np.random.default_rng(0)
    h, w = 240, 320
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([200 * (xx < w / 2), 160 * (yy > h / 2), 220 * ((xx + yy) % 160 < 80)], -1)
    img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path, quality=90)
    return path


def _warnings(path, dataset):
    meta = _meta(dataset)
    return inputcheck.check(str(path), to_input(str(path), meta), meta)


@pytest.mark.parametrize("photo", sorted(p.name for p in SAMPLES.glob("*_photo.jpg")))
def test_digit_and_clothing_photos_do_not_warn(photo):
    dataset = "fashion_mnist" if photo.startswith("fashion") else "mnist"
    assert _warnings(SAMPLES / photo, dataset) == []


def test_colour_photo_to_the_mnist_model_warns(tmp_path):
    found = _warnings(_colour_photo(tmp_path / "colour.jpg"), "mnist")
    assert any("colour image" in w and "grayscale mnist" in w for w in found)


def test_real_cat_photo_to_the_mnist_model_warns():
    cats = sorted((SHARED / "cats_vs_dogs").glob("**/cat*.jpg"))[:1] or \
        sorted((ROOT.parent / "data" / "cats_vs_dogs" / "test" / "cats").glob("*.jpg"))[:1]
    if not cats:
        pytest.skip("no cats_vs_dogs photo found in ../shared/datasets or ../data")
    assert any("colour image" in w for w in _warnings(cats[0], "mnist"))


def test_almost_blank_input_warns(tmp_path):
    Image.new("RGB", (120, 90), (245, 245, 240)).save(tmp_path / "paper.png")
    for dataset in ("mnist", "cifar10"):
        assert any("almost blank" in w for w in _warnings(tmp_path / "paper.png", dataset))


def test_save_input_writes_what_the_model_saw(runner, tmp_path):
    photo = SAMPLES / "mnist_9997_4_photo.jpg"
    colour = _colour_photo(tmp_path / "colour.jpg")
    res = invoke(runner, "predict", photo, colour, "--model", "mnist", "--save-input", "seen", "--json")
    assert res.exit_code == 0
    out = json.loads(res.stdout)  # warnings go to stderr only
    assert "warnings" not in out[0] and out[1]["warnings"]
    assert "warning: " in res.stderr and "colour.jpg" in res.stderr
    saved = np.asarray(Image.open(tmp_path / "seen" / "mnist_9997_4_photo.png"))
    np.testing.assert_array_equal(saved, to_input(str(photo), _meta("mnist"))[..., 0])
    assert out[0]["input"].endswith("mnist_9997_4_photo.png")
    # an existing file is never replaced, and nothing is predicted
    before = (tmp_path / "seen" / "colour.png").read_bytes()
    res = invoke(runner, "predict", photo, colour, "--model", "mnist", "--save-input", "seen")
    assert res.exit_code == 1 and "already exists" in res.output
    assert (tmp_path / "seen" / "colour.png").read_bytes() == before


def test_check_does_not_import_tensorflow():
    code = ("import sys, convzoo.inputcheck, convzoo.predict; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
