"""Images and LiteRT models that would cost far more than they look: each guard refuses its file
with one line (or, for wide pixel types, decodes it in bounded bands), before the costly work."""
import struct

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, invoke
from convzoo import images
from convzoo.errors import CheckpointError, ImageError


def _rle8_bmp(path, w=4, h=4):
    """A BMP with RLE8 compression (Pillow decodes it in pure Python, slowly)."""
    rows = b"".join(bytes([w, 1, 0, 0]) for _ in range(h)) + b"\x00\x01"  # w pixels of colour 1, end of line
    palette = b"".join(bytes([i, i, i, 0]) for i in range(256))
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 1, len(rows), 2835, 2835, 256, 0)
    path.write_bytes(b"BM" + struct.pack("<IHHI", offset + len(rows), 0, 0, offset) + info + palette + rows)
    return path


def test_rle_bmp_is_refused_before_decoding(tmp_path):
    path = _rle8_bmp(tmp_path / "rle.bmp")
    with Image.open(path) as img:  # Pillow itself would decode it
        assert any(t[0] == "bmp_rle" for t in img.tile)
    with pytest.raises(ImageError, match="run-length-encoded"):
        images.read(path)


def test_progressive_jpeg_scans_are_counted(tmp_path, monkeypatch):
    path = tmp_path / "p.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(path, progressive=True)
    assert images.read(path).shape == (64, 64, 3)  # an encoder's 10 or so scans are fine
    monkeypatch.setattr(images, "MAX_SCANS", 2)
    with pytest.raises(ImageError, match="progressive JPEG of over 2 scans"):
        images.read(path)
    baseline = tmp_path / "b.jpg"
    Image.open(path).save(baseline)  # not progressive: not counted
    assert images.read(baseline).shape == (64, 64, 3)


@pytest.mark.parametrize("band", [1 << 20, 3])  # one band, and one row per band
def test_wide_pixel_types_are_scaled_in_bands(tmp_path, monkeypatch, band):
    monkeypatch.setattr(images, "BAND_PIXELS", band)
    grey16 = tmp_path / "g16.png"
    Image.fromarray(np.array([[0, 32768, 65535]] * 3, np.uint16)).save(grey16)
    assert images.read(grey16, "L").tolist() == [[0, 128, 255]] * 3
    flt = tmp_path / "f.tif"
    Image.fromarray(np.array([[0.0, 0.5, 1.0], [np.nan, np.inf, 0.25]], np.float32), "F").save(flt)
    assert images.read(flt, "L").tolist() == [[0, 128, 255], [0, 255, 64]]


def test_a_decode_over_its_time_budget_is_an_error(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (1500, 1500, 3), np.uint8)).save(path)
    monkeypatch.setattr(images, "DECODE_SECONDS", 1e-6)
    with pytest.raises(ImageError, match="decoding took over"):
        images.read(path)
    monkeypatch.undo()
    assert images.read(path).shape == (1500, 1500, 3)  # and the alarm is gone afterwards


def test_tflite_checked_before_the_interpreter(tmp_path, monkeypatch):
    pytest.importorskip("ai_edge_litert")
    from convzoo import safeload

    good = (ROOT / "models" / "mnist.tflite").read_bytes()
    plan = safeload.check_tflite(good, "mnist.tflite")
    assert 0 < plan.ops < 100 and plan.weights > 0 and plan.image_bytes > 0
    with pytest.raises(CheckpointError, match="cannot read LiteRT model"):
        safeload.check_tflite(b"\x10\x00\x00\x00TFL3" + b"\xff" * 64, "junk.tflite")
    monkeypatch.setattr(safeload, "TFLITE_OPS", safeload.TFLITE_OPS - {"CONV_2D"})
    with pytest.raises(CheckpointError, match="op CONV_2D"):
        safeload.check_tflite(good, "mnist.tflite")


def test_predict_with_a_damaged_tflite_is_one_line(runner, tmp_path):
    pytest.importorskip("ai_edge_litert")
    bad = tmp_path / "bad.tflite"
    good = (ROOT / "models" / "mnist.tflite").read_bytes()
    bad.write_bytes(good[:len(good) // 3])  # cut short
    png = tmp_path / "x.png"
    Image.new("L", (28, 28)).save(png)
    res = invoke(runner, "predict", png, "--model", bad)
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert res.output.strip().count("\n") == 0 and "bad.tflite" in res.output, res.output
