"""Hostile inputs (issue 6): checkpoints that carry code or read host files, broken checkpoint files,
every kind of image a user may hand to predict, fuzzed image bytes and corrupt IDX files.

Each input is built here, in tmp_path. TensorFlow is imported inside the tests that need it."""
import contextlib
import gzip
import io
import json
import math
import os
import re
import signal
import shutil
import struct
import subprocess
import sys
import threading
import time
import warnings
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, invoke, tiny_meta
from convzoo import checkpoint, images
from convzoo.data import MNIST_FILES, idx, mnist
from convzoo.errors import CheckpointError, DataError, ImageError


def _one_line(err):
    text = str(err)
    assert "\n" not in text and text
    return text


@contextlib.contextmanager
def hang_guard(seconds, what):
    """TimeoutError if the block is still running after `seconds`: a hang guard, not a timing."""
    def hung(signum, frame):
        raise TimeoutError(what)

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _cli_one_line_error(res, *needles):
    """A CLI run that failed the way a user should see it: exit 1, one line, no traceback."""
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    assert res.output.count("\n") == 1, res.output
    for needle in needles:
        assert needle in res.output, res.output


def _good_model():
    from convzoo import zoo

    return zoo.build_model("mlp", "mnist", (28, 28, 1), 10)


@pytest.fixture
def good_h5(tmp_path):
    return checkpoint.save(_good_model(), str(tmp_path / "good.h5"), tiny_meta())


@pytest.fixture
def good_keras(tmp_path):
    return checkpoint.save(_good_model(), str(tmp_path / "good.keras"), tiny_meta())


@pytest.fixture
def png28(tmp_path):
    Image.new("L", (28, 28), 255).save(tmp_path / "img.png")
    return tmp_path / "img.png"


# ------------------------------------------------------------------ checkpoints that carry code
def _lambda_model(marker):
    """A model whose Lambda layer creates `marker` whenever it runs."""
    import keras

    payload = eval(f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]")  # stored as bytecode
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Lambda(payload),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    marker.unlink(missing_ok=True)  # building the model ran it once
    return model


def _evil_h5(tmp_path):
    import h5py

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.h5"
    _lambda_model(marker).save(path)
    with h5py.File(path, "a") as f:
        f.attrs["convzoo"] = json.dumps(tiny_meta())
    return path, marker


def _evil_keras(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.keras"
    _lambda_model(marker).save(path)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("convzoo.json", json.dumps(tiny_meta()))
    return path, marker


@pytest.mark.parametrize("make", [_evil_h5, _evil_keras], ids=["h5", "keras"])
def test_lambda_checkpoint_is_refused_and_runs_nothing(tmp_path, make):
    path, marker = make(tmp_path)
    with pytest.raises(CheckpointError, match="refused: it contains a Lambda layer") as e:
        checkpoint.load(path)
    assert str(path) in _one_line(e.value)
    assert not marker.exists()


def test_lambda_payload_is_live_without_convzoo(tmp_path):
    """Control: the same file loaded by Keras with safe mode off does run the payload."""
    import keras

    path, marker = _evil_h5(tmp_path)
    model = keras.saving.load_model(path, compile=False, safe_mode=False)
    model(np.zeros((1, 28, 28, 1), np.float32))
    assert marker.exists()


def test_cli_predict_with_lambda_model_is_one_line(runner, tmp_path, png28):
    path, marker = _evil_h5(tmp_path)
    res = invoke(runner, "predict", png28, "--model", path)
    _cli_one_line_error(res, "refused", "Lambda layer")
    assert not marker.exists()
    path, marker = _evil_keras(tmp_path)
    _cli_one_line_error(invoke(runner, "predict", png28, "--model", path), "refused", "Lambda layer")
    assert not marker.exists()


def _keras_zip(path, config, meta=True, extra=()):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        if meta:
            z.writestr("convzoo.json", json.dumps(tiny_meta()))
        for name, data in extra:
            z.writestr(name, data)
    return path


def _sequential(*layers, **top):
    return {"module": "keras", "class_name": "Sequential", "registered_name": None,
            "config": {"name": "s", "layers": list(layers)}, **top}


def _dense(**config):
    return {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
            "config": {"units": 1, **config}}


@pytest.mark.parametrize("layer, found", [
    ({"module": "keras.layers", "class_name": "Lambda", "config": {"function": {"class_name": "__lambda__"}}},
     "Lambda layer"),
    ({"module": "os", "class_name": "system", "config": {"command": "touch pwned"}}, "class 'system'"),
    ({**_dense(), "registered_name": "evil>Payload"}, "custom object 'evil>Payload'"),
    ({**_dense(), "registered_name": "keras_hub>Backbone"}, "custom object 'keras_hub>Backbone'"),
    ({**_dense(), "module": "builtins"}, "module 'builtins'"),
    (_dense(activation="os.system"), "activation 'os.system'"),
    (_dense(activation=["relu"]), "activation"),
    (_dense(kernel_initializer="evil>init"), "'kernel_initializer' names 'evil>init'"),
    ({"module": "keras.layers", "class_name": "TFSMLayer", "config": {"filepath": "/etc"}}, "TFSMLayer"),
    # CVE-2025-9906: a function in the config that switches safe mode off
    ({"module": "keras.config", "class_name": "function", "config": "enable_unsafe_deserialization",
      "registered_name": "function"}, "class 'function'"),
    # CVE-2025-8747: keras.utils.get_file as a gadget
    ({"module": "keras.utils", "class_name": "get_file", "config": {"origin": "http://x/y"}}, "get_file"),
    ({"module": "keras.layers", "class_name": ["Dense"], "config": {}}, "class '['Dense']'"),
    ({"module": "keras.layers", "class_name": "Dense", "config": {"units": 1, "module_name": "os"}},
     "'module_name'"),
])
def test_keras_zip_with_foreign_classes_is_refused(tmp_path, layer, found):
    _keras_zip(tmp_path / "evil.keras", _sequential(layer))
    with pytest.raises(CheckpointError, match="refused") as e:
        checkpoint.load(tmp_path / "evil.keras")
    assert found in _one_line(e.value)


def test_hostile_compile_config_is_refused_though_not_compiled(tmp_path):
    config = _sequential(_dense(), compile_config={"loss": {"module": "os", "class_name": "system"}})
    _keras_zip(tmp_path / "evil.keras", config)
    with pytest.raises(CheckpointError, match="class 'system'"):
        checkpoint.load(tmp_path / "evil.keras")


# ------------------------------------------------------------------ HDF5 that reads host files
def test_hdf5_external_link_is_refused(good_h5, tmp_path):
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["secret"] = np.arange(3)
    with h5py.File(good_h5, "a") as f:
        f["model_weights/ext"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/secret")
    for read in (checkpoint.read_meta, checkpoint.load):
        with pytest.raises(CheckpointError, match="refused: an HDF5 external link at 'model_weights/ext'"):
            read(good_h5)


def _host_file(tmp_path, size=64):
    host = tmp_path / "host_file"
    host.write_bytes(b"secret!!" * (size // 8))
    return host


def test_hdf5_external_storage_is_refused(good_h5, tmp_path):
    """CVE-2026-1669: a dataset whose bytes live in a host file."""
    import h5py

    host = _host_file(tmp_path)
    with h5py.File(good_h5, "a") as f:
        f.create_dataset("model_weights/leak", shape=(64,), dtype="u1", external=[(str(host), 0, 64)])
    with h5py.File(good_h5, "r") as f:  # control: h5py would read the host file through it
        assert bytes(f["model_weights/leak"][:8]) == b"secret!!"
    with pytest.raises(CheckpointError, match="refused: external storage at 'model_weights/leak'"):
        checkpoint.load(good_h5)


def test_external_storage_inside_a_keras_zip_is_refused(good_keras, tmp_path):
    import h5py

    host = _host_file(tmp_path)
    with zipfile.ZipFile(good_keras) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    weights = tmp_path / "w.h5"
    weights.write_bytes(parts["model.weights.h5"])
    with h5py.File(weights, "a") as f:
        f.create_dataset("leak", shape=(64,), dtype="u1", external=[(str(host), 0, 64)])
    parts["model.weights.h5"] = weights.read_bytes()
    with zipfile.ZipFile(good_keras, "w") as z:
        for name, data in parts.items():
            z.writestr(name, data)
    with pytest.raises(CheckpointError, match="external storage at 'leak'"):
        checkpoint.load(good_keras)


def test_hdf5_virtual_dataset_is_refused(good_h5, tmp_path):
    import h5py

    with h5py.File(tmp_path / "src.h5", "w") as f:
        f["data"] = np.arange(4)
    layout = h5py.VirtualLayout(shape=(4,), dtype="i8")
    layout[:] = h5py.VirtualSource(str(tmp_path / "src.h5"), "data", shape=(4,))
    with h5py.File(good_h5, "a") as f:
        f.create_virtual_dataset("model_weights/virtual", layout)
    with pytest.raises(CheckpointError, match="refused: a virtual dataset at 'model_weights/virtual'"):
        checkpoint.load(good_h5)


def test_weights_file_with_external_link_is_refused(good_h5, tmp_path):
    import h5py

    with h5py.File(good_h5, "a") as f:
        f["x"] = h5py.ExternalLink("/etc/passwd", "/")
    with pytest.raises(CheckpointError, match="external link"):
        checkpoint.check_weights_file(good_h5)


# ------------------------------------------------------------------ files that are two things at once
def _zip_bytes(config):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.writestr("convzoo.json", json.dumps(tiny_meta()))
    return buf.getvalue()


def test_hdf5_zip_polyglot_is_refused(good_h5, tmp_path):
    """Keras reads a *.keras file as a zip when it is one: a clean HDF5 in front must not hide it."""
    import h5py
    import keras

    other = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10),
                              keras.layers.Softmax()])  # Softmax: a class convzoo never builds
    other.save(tmp_path / "other.keras")
    with zipfile.ZipFile(tmp_path / "other.keras", "a") as z:
        z.writestr("convzoo.json", json.dumps(tiny_meta()))
    poly = tmp_path / "poly.keras"
    poly.write_bytes(open(good_h5, "rb").read() + (tmp_path / "other.keras").read_bytes())
    assert h5py.is_hdf5(poly) and zipfile.is_zipfile(poly)
    with pytest.raises(CheckpointError, match="both HDF5 and zip"):
        checkpoint.load(poly)


@pytest.mark.parametrize("name, message", [
    ("model.keras", r"must be named \*.h5"), ("model.bin", r"must be named \*.h5")])
def test_checkpoint_named_for_another_reader_is_refused(good_h5, tmp_path, name, message):
    shutil.copy(good_h5, tmp_path / name)
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load(tmp_path / name)


# ------------------------------------------------------------------ zip structure
def _raw_zip_patch(path, offset_local, offset_central, value):
    raw = bytearray(path.read_bytes())
    raw[offset_local] = value(raw[offset_local])
    central = raw.find(b"PK\x01\x02")
    raw[central + offset_central] = value(raw[central + offset_central])
    path.write_bytes(bytes(raw))


def test_zip_structure_attacks(tmp_path):
    good = _sequential(_dense())
    cases = {}
    cases["traversal"] = _keras_zip(tmp_path / "a.keras", good, extra=[("../../evil.py", "x")])
    cases["assets"] = _keras_zip(tmp_path / "b.keras", good, extra=[("assets/x", "x")])
    with pytest.warns(UserWarning, match="Duplicate name"):
        cases["duplicate"] = _keras_zip(tmp_path / "c.keras", good,
                                        extra=[("config.json", json.dumps(_sequential({"class_name": "X"})))])
    with zipfile.ZipFile(tmp_path / "d.keras", "w", zipfile.ZIP_DEFLATED) as z:  # 17 MB -> 17 KB
        z.writestr("config.json", b" " * (17 * 2**20))
    cases["bomb"] = tmp_path / "d.keras"
    cases["encrypted"] = _keras_zip(tmp_path / "e.keras", good)
    _raw_zip_patch(cases["encrypted"], 6, 8, lambda b: b | 1)
    cases["method"] = _keras_zip(tmp_path / "f.keras", good)
    _raw_zip_patch(cases["method"], 8, 10, lambda b: 99)
    (tmp_path / "g.keras").write_bytes(_zip_bytes(["not", "an", "object"]))
    cases["list"] = tmp_path / "g.keras"
    with zipfile.ZipFile(tmp_path / "h.keras", "w") as z:
        z.writestr("config.json", "[" * 100_000 + "]" * 100_000)
    cases["deep"] = tmp_path / "h.keras"
    expected = {"traversal": "unexpected zip entry '../../evil.py'", "assets": "unexpected zip entry 'assets/x'",
                "duplicate": "same entry twice", "bomb": "'config.json' is over 16 MB",
                "encrypted": "encrypted", "method": "compression method",
                "list": "config.json is not a JSON object", "deep": "nested too deeply"}
    answers = {}
    for case, path in cases.items():
        with pytest.raises(CheckpointError) as e:
            checkpoint.load(path)
        answers[case] = _one_line(e.value)
        assert expected[case] in answers[case], answers[case]


# ------------------------------------------------------------------ metadata that would crash predict
def _with_meta(path, meta):
    import h5py

    with h5py.File(path, "a") as f:
        f.attrs["convzoo"] = meta if isinstance(meta, np.ndarray) else json.dumps(meta)
    return path


@pytest.mark.parametrize("meta, message", [
    ([1, 2], "metadata is not a JSON object"),
    (np.arange(3), "cannot read checkpoint"),
    ({**tiny_meta(), "input_shape": [100_000, 100_000, 3]}, "'input_shape' is not"),
    ({**tiny_meta(), "input_shape": [28, 28, True]}, "'input_shape' is not"),
    ({**tiny_meta(), "classes": "0123456789"}, "'classes' is not a list"),
    ({**tiny_meta(), "head": "eval"}, "'head' is not one of"),
    ({**tiny_meta(), "preprocess": "rm -rf"}, "'preprocess' is not"),
])
def test_hostile_metadata_is_refused_before_keras(good_h5, meta, message):
    _with_meta(good_h5, meta)
    for read in (checkpoint.read_meta, checkpoint.load):
        with pytest.raises(CheckpointError, match=message) as e:
            read(good_h5)
        _one_line(e.value)


@pytest.mark.parametrize("change, message", [
    ({"input_shape": [32, 32, 3]}, r"metadata says input \(32, 32, 3\) but the model takes \(28, 28, 1\)"),
    ({"classes": ["a", "b", "c"]}, "the model has 10 outputs but the metadata names 3 classes"),
])
def test_metadata_that_does_not_fit_the_model(runner, good_h5, png28, change, message):
    _with_meta(good_h5, {**tiny_meta(), **change})
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load(good_h5)
    _cli_one_line_error(invoke(runner, "predict", png28, "--model", good_h5), "metadata")


# ------------------------------------------------------------------ broken files
BROKEN = [
    ("empty.h5", b"", "empty file"),
    ("sig.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 50, "cannot read checkpoint"),
    ("text.h5", b"just some text, not a model", "not a Keras checkpoint"),
    ("random.h5", bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
     "not a Keras checkpoint"),
    ("random.keras", bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)),
     "not a Keras checkpoint"),
]


@pytest.mark.parametrize("name, content, message", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_checkpoint_files(runner, tmp_path, png28, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as e:
        checkpoint.load(tmp_path / name)
    _one_line(e.value)
    _cli_one_line_error(invoke(runner, "evaluate", name), message)
    _cli_one_line_error(invoke(runner, "predict", png28, "--model", name), message)


def test_truncated_h5_and_zip_without_config(runner, good_h5, good_keras, tmp_path, png28):
    raw = open(good_h5, "rb").read()
    (tmp_path / "half.h5").write_bytes(raw[: len(raw) // 2])
    raw = open(good_keras, "rb").read()
    (tmp_path / "half.keras").write_bytes(raw[: len(raw) // 2])
    with zipfile.ZipFile(tmp_path / "nocfg.keras", "w") as z:
        z.writestr("readme.txt", "hi")
    for name, message in (("half.h5", "half.h5: cannot read checkpoint"),
                          ("half.keras", "half.keras: not a Keras checkpoint"),
                          ("nocfg.keras", "without config.json")):
        with pytest.raises(CheckpointError, match=message) as e:
            checkpoint.load(tmp_path / name)
        _one_line(e.value)
        _cli_one_line_error(invoke(runner, "predict", png28, "--model", name), message)


def test_checkpoint_keras_cannot_load_is_one_line(runner, good_h5, good_keras, tmp_path, png28):
    """Files that pass every check yet do not load (weights that do not fit the config, no weights)."""
    import h5py

    with h5py.File(good_h5, "a") as f:
        f.attrs["model_config"] = f.attrs["model_config"].replace('"units": 100', '"units": 101')
    with zipfile.ZipFile(good_keras) as z:
        parts = {n: z.read(n) for n in z.namelist() if n != "model.weights.h5"}
    with zipfile.ZipFile(good_keras, "w") as z:
        for name, data in parts.items():
            z.writestr(name, data)
    for path in (good_h5, good_keras):
        with pytest.raises(CheckpointError, match="cannot load model") as e:
            checkpoint.load(path)
        _one_line(e.value)
        _cli_one_line_error(invoke(runner, "predict", png28, "--model", path), "cannot load model")


def test_checkpoint_that_is_a_fifo_or_folder(tmp_path):
    os.mkfifo(tmp_path / "fifo.h5")
    (tmp_path / "dir.h5").mkdir()
    for name in ("fifo.h5", "dir.h5"):
        with pytest.raises(CheckpointError, match="not a regular file"):
            checkpoint.load(tmp_path / name)


def test_model_without_convzoo_metadata(tmp_path):
    import keras

    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(tmp_path / "plain.h5")
    with pytest.raises(CheckpointError, match="without convzoo metadata"):
        checkpoint.load(tmp_path / "plain.h5")


# ------------------------------------------------------------------ images
def _photo(size=(64, 48)):
    """A smooth colour gradient with noise: JPEG and PNG encode it like a photo."""
    rng = np.random.default_rng(1)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h) + 64], axis=-1)
    return Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))


def _save(img, path, **kw):
    img.save(path, **kw)
    return path


def _jpeg_bytes(size=(200, 150)):
    buf = io.BytesIO()
    _photo(size).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_bomb(path, width, height):
    """A valid 1-bit black PNG of width x height pixels: a few KB on disk."""
    row = b"\0" * (1 + (width + 7) // 8)
    body = zlib.compressobj(9)
    idat = b"".join(body.compress(row) for _ in range(height)) + body.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
                     + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))
    return path


def test_image_zoo(tmp_path):
    photo = _photo()
    jpg = _save(photo, tmp_path / "p.jpg", quality=95)
    assert images.read(jpg).shape == (48, 64, 3)
    # CMYK JPEG: converted to RGB with the colours kept
    arr = images.read(_save(photo.convert("CMYK"), tmp_path / "cmyk.jpg", quality=95))
    assert arr.shape == (48, 64, 3)
    assert np.abs(arr.astype(int) - np.asarray(photo, int)).mean() < 12
    # 16-bit gray PNG: scaled, not clipped to two levels
    ramp = np.arange(256 * 16, dtype=np.uint16).reshape(16, 256) * 16
    arr = images.read(_save(Image.fromarray(ramp), tmp_path / "g16.png"), "L")
    assert len(np.unique(arr)) > 100 and arr.min() < 10 and arr.max() > 245
    assert np.all(np.diff(arr[0].astype(int)) >= 0)
    # gray + alpha: the transparent area becomes white
    la = Image.new("LA", (10, 10), (0, 0))
    la.putpixel((5, 5), (0, 255))
    arr = images.read(_save(la, tmp_path / "la.png"), "L")
    assert arr[0, 0] == 255 and arr[5, 5] == 0
    # palette with a transparent index
    p = Image.new("P", (10, 10), 0)
    p.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
    p.putpixel((2, 2), 1)
    arr = images.read(_save(p, tmp_path / "pal.png", transparency=0), "RGB")
    assert tuple(arr[0, 0]) == (255, 255, 255) and tuple(arr[2, 2]) == (200, 0, 0)
    # RGBA: transparent on white
    rgba = Image.new("RGBA", (6, 6), (0, 0, 0, 0))
    rgba.putpixel((1, 1), (0, 0, 255, 255))
    arr = images.read(_save(rgba, tmp_path / "rgba.webp", lossless=True))
    assert tuple(arr[0, 0]) == (255, 255, 255) and tuple(arr[1, 1]) == (0, 0, 255)
    # animated GIF, APNG and WebP: the first frame
    frames = [Image.new("RGB", (8, 8), (v, v, v)) for v in (10, 250)]
    for name, kw in (("anim.gif", {}), ("anim.png", {}), ("anim.webp", {"lossless": True})):
        frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:], **kw)
        assert images.read(tmp_path / name, "L").mean() < 50, name
    # EXIF orientation 6: rotated on read
    exif = Image.Exif()
    exif[0x0112] = 6
    arr = images.read(_save(photo, tmp_path / "rot.jpg", exif=exif.tobytes()))
    assert arr.shape == (64, 48, 3)


def test_corrupt_exif_is_read_quietly(runner, tmp_path):
    """A tag pointing past the end of the file: Pillow warns, convzoo reads the pixels and says nothing."""
    tiff = b"MM\x00\x2a" + struct.pack(">IHHHII", 8, 1, 0x010E, 2, 400, 5000) + struct.pack(">I", 0)
    path = _save(_photo(), tmp_path / "exif.jpg", exif=b"Exif\x00\x00" + tiff)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match="Tag data larger than file"):  # control: Pillow warns
            with Image.open(path) as img:
                img.getexif()
        assert images.read(path).shape == (48, 64, 3)
    checkpoint.save(_good_model(), str(tmp_path / "m.h5"), tiny_meta())
    res = invoke(runner, "predict", path, "--model", "m.h5")
    # other lines (the twin cache, the colour warning) may be there; Pillow's warning must not
    assert res.exit_code == 0 and "Tag data" not in res.stderr and "UserWarning" not in res.stderr, res.output


@pytest.mark.parametrize("error", [struct.error("unpack requires a buffer of 4 bytes"),
                                   AssertionError("bad tile"), OverflowError("size too large")])
def test_any_decoder_exception_is_an_image_error(tmp_path, monkeypatch, error):
    """Pillow's decoders have raised all of these on damaged files; each is that file's error."""
    from PIL import ImageFile

    def broken(self):
        raise error

    monkeypatch.setattr(ImageFile.ImageFile, "load", broken)
    with pytest.raises(ImageError, match="cannot decode image") as e:
        images.read(_save(_photo(), tmp_path / "p.png"))
    _one_line(e.value)


def test_wide_gray_tiffs_are_scaled(tmp_path):
    """32-bit integer and float TIFFs (NaN, inf included): scaled to 8 bits, no clipping, no warning."""
    ramp = np.arange(16 * 256).reshape(16, 256)
    floats = (ramp / ramp.max()).astype(np.float32)
    floats[0, :3] = [np.nan, np.inf, -5]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name, arr in (("i32.tif", (ramp * 1000).astype(np.int32)), ("f32.tif", floats)):
            out = images.read(_save(Image.fromarray(arr), tmp_path / name), "L")
            assert len(np.unique(out)) > 200, name


# (file name, how to make it, what convzoo answers)
BAD_IMAGES = [
    ("empty.png", lambda p: p.write_bytes(b""), "empty file"),
    ("text.jpg", lambda p: p.write_text("hello, not an image"), "not an image in a supported format"),
    ("trunc.jpg", lambda p: p.write_bytes(_jpeg_bytes()[:300]), "cannot decode"),
    ("image.psd", lambda p: p.write_bytes(b"8BPS\x00\x01" + b"\0" * 40), "PSD files are not read"),
    ("psd.png", lambda p: p.write_bytes(b"8BPS\x00\x01" + b"\0" * 40), "PSD files are not read"),
    ("doc.eps", lambda p: p.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"),
     "EPS files are not read"),
    ("doc.pdf", lambda p: Image.new("RGB", (16, 16)).save(p, "PDF"), "PDF files are not read"),
    ("photo.heic", lambda p: p.write_bytes(b"\0\0\0\x18ftypheic" + b"\0" * 40), "HEIC/AVIF files are not read"),
    ("icon.ico", lambda p: Image.new("RGB", (16, 16)).save(p, "ICO"), "ICO files are not read"),
    ("image.tga", lambda p: Image.new("RGB", (16, 16)).save(p, "TGA"), "not an image in a supported format"),
    ("missing.png", lambda p: None, "no such file"),
    ("folder.png", lambda p: p.mkdir(), "is a folder"),
]


@pytest.mark.parametrize("name, make, message", BAD_IMAGES, ids=[b[0] for b in BAD_IMAGES])
def test_bad_images_are_image_errors(tmp_path, name, make, message):
    make(tmp_path / name)
    with pytest.raises(ImageError, match=message) as e:
        images.read(tmp_path / name)
    assert str(tmp_path / name) in _one_line(e.value)


def test_jpeg2000_is_refused(tmp_path):
    try:
        Image.new("RGB", (16, 16)).save(tmp_path / "x.jp2", "JPEG2000")
    except (OSError, KeyError):
        pytest.skip("this Pillow cannot write JPEG 2000")
    with pytest.raises(ImageError, match="JPEG 2000 files are not read"):
        images.read(tmp_path / "x.jp2")


def _fifo(path, unblock_after=10.0):
    """A named pipe; a reader that opens it is set free after `unblock_after` s (the test then fails)."""
    os.mkfifo(path)

    def unblock():
        time.sleep(unblock_after)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # nobody is reading: the protection worked
            pass

    threading.Thread(target=unblock, daemon=True).start()
    return path


def test_fifo_is_refused_without_blocking(tmp_path):
    # a reader that blocked would be set free after 5 s and fail on another message
    path = _fifo(tmp_path / "pipe.png", unblock_after=5)
    with pytest.raises(ImageError, match="not a regular file"):
        images.read(path)


BOMB_CHILD = """
import sys
from convzoo import images
from convzoo.errors import ImageError
try:
    images.read(sys.argv[1])
    print("read", end=" ")
except ImageError as e:
    print("refused" if "decompression bomb" in str(e) else "other", end=" ")
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0]  # peak, this program
print(int(hwm.split()[1]) // 1024)
"""


@pytest.mark.parametrize("width, height", [(8_000, 7_500), (20_000, 20_000)], ids=["60MP", "400MP"])
def test_decompression_bomb_is_refused_before_allocation(tmp_path, width, height):
    """60 MP is over convzoo's limit and under Pillow's own; 400 MP is over both. Run in a fresh
    process to see its peak memory: the decoded image would take width*height bytes or more."""
    bomb = _png_bomb(tmp_path / "bomb.png", width, height)
    assert bomb.stat().st_size < 100_000
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", BOMB_CHILD, str(bomb)], capture_output=True, text=True,
                         env=env, timeout=60).stdout.split()  # the timeout: a hang guard, not a timing
    verdict, peak_mb = out[0], int(out[1])
    assert verdict == "refused" and peak_mb < 150, (verdict, peak_mb)
    with pytest.raises(ImageError, match=rf"refused: ({width}x{height}|{width * height:,}) pixels, over the"):
        images.read(bomb)


def test_predict_folder_reports_bad_files_and_goes_on(runner, tmp_path):
    checkpoint.save(_good_model(), str(tmp_path / "m.h5"), tiny_meta())
    folder = tmp_path / "imgs"
    folder.mkdir()
    good = {"a_good.jpg": lambda p: _save(_photo(), p),
            "b_cmyk.jpg": lambda p: _save(_photo().convert("CMYK"), p),
            "c_anim.gif": lambda p: Image.new("L", (8, 8), 9).save(p, save_all=True,
                                                                  append_images=[Image.new("L", (8, 8), 200)]),
            "d_16bit.png": lambda p: Image.fromarray(np.arange(1024, dtype=np.uint16).reshape(32, 32) * 64).save(p),
            "e_la.png": lambda p: Image.new("LA", (8, 8), (0, 0)).save(p)}
    bad = {"f_empty.png": lambda p: p.write_bytes(b""),
           "g_trunc.jpg": lambda p: p.write_bytes(_jpeg_bytes()[:300]),
           "h_bomb.png": lambda p: _png_bomb(p, 8_000, 7_500),
           "i_text.png": lambda p: p.write_text("not an image"),
           "j_psd.jpg": lambda p: p.write_bytes(b"8BPS\x00\x01" + b"\0" * 40),
           "k_fifo.png": _fifo}
    for name, make in {**good, **bad}.items():
        make(folder / name)
    with hang_guard(300, "predict hung on the folder (the FIFO?)"):
        res = invoke(runner, "predict", folder, "--model", "m.h5", "--json")
    assert res.exit_code == 1 and "Traceback" not in res.output
    out = {os.path.basename(r["file"]): r for r in json.loads(res.stdout)}
    assert set(out) == set(good) | set(bad)
    for name in good:
        assert out[name]["predictions"] and not out[name]["error"], out[name]
    for name in bad:
        assert out[name]["error"] and not out[name]["predictions"], out[name]
        assert out[name]["error"].startswith(str(folder / name) + ": ")
    # the same run as a person reads it: a line per good file, an error line per bad one
    res = invoke(runner, "predict", folder, "--model", "m.h5")
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert len(res.stdout.splitlines()) == len(good)
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]  # not warnings
    assert sorted(": ".join(line.split(": ")[:2]) for line in errors) == \
        sorted(f"error: {folder / name}" for name in bad)


def _mutate(data, rng, kind):
    data = bytearray(data)
    if kind == 0:  # flip random bytes
        for i in rng.integers(0, len(data), size=int(rng.integers(1, 20))):
            data[i] = int(rng.integers(0, 256))
    elif kind == 1:  # truncate
        data = data[: int(rng.integers(1, len(data)))]
    elif kind == 2:  # duplicate a stretch of bytes
        a = int(rng.integers(0, len(data) - 10))
        b = a + int(rng.integers(1, min(500, len(data) - a)))
        data = data[:b] + data[a:b] + data[b:]
    elif kind == 3:  # insert garbage
        at = int(rng.integers(0, len(data)))
        data = data[:at] + bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8)) + data[at:]
    else:  # overwrite a header field (sizes, bit depth, colour type live in the first bytes)
        at = int(rng.integers(0, min(64, len(data) - 4)))
        data[at:at + 4] = struct.pack(">I", int(rng.choice([0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF,
                                                             int(rng.integers(0, 2**32))])))
    return bytes(data)


def _png_chunks(data):
    chunks, at = [], 8
    while at < len(data):
        n = struct.unpack(">I", data[at:at + 4])[0]
        chunks.append(data[at:at + 12 + n])
        at += 12 + n
    return chunks


def test_fuzzed_images_never_raise_anything_else(tmp_path):
    """300 seeded mutations of real JPEG and PNG bytes: a uint8 array or an ImageError, nothing else,
    and no case slow enough to look like a hang."""
    rng = np.random.default_rng(1234)
    png = io.BytesIO()
    _photo((120, 90)).save(png, "PNG")
    seeds = [_jpeg_bytes(), png.getvalue()]
    chunks = _png_chunks(seeds[1])
    path = tmp_path / "fuzz"
    outcomes = {"ok": 0, "error": 0}
    for case in range(300):
        kind = case % 6
        if kind == 5:  # PNG chunks repeated or dropped, CRCs still right
            pick = list(chunks)
            i = int(rng.integers(1, len(pick) - 1))
            pick.insert(i, pick[int(rng.integers(0, len(pick)))]) if rng.random() < 0.5 else pick.pop(i)
            data = seeds[1][:8] + b"".join(pick)
        else:
            data = _mutate(seeds[case % 2], rng, kind)
        path.write_bytes(data)
        try:
            with hang_guard(60, f"fuzz case {case} hung"):
                arr = images.read(path)
            assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3
            outcomes["ok"] += 1
        except ImageError as e:
            _one_line(e)
            outcomes["error"] += 1
    assert outcomes["ok"] > 30 and outcomes["error"] > 30, outcomes


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
            assert str(images_gz) in _one_line(e.value) and message in str(e.value), str(e.value)


def test_idx_truncated_and_corrupt_gzip(tmp_path):
    folder = _mnist_folder(tmp_path / "mnist")
    labels_gz = folder / MNIST_FILES["train"][1]
    raw = labels_gz.read_bytes()
    labels_gz.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="truncated or corrupt") as e:
        mnist.load(folder, "train")
    assert str(labels_gz) in _one_line(e.value)
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
    assert str(images_gz) in _one_line(e.value)
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
    assert str(path) in _one_line(e.value)


def test_metadata_without_the_fields_predict_needs(runner, tmp_path):
    from convzoo import zoo as _zoo

    model = _zoo.build_model("mlp", "mnist", (28, 28, 1), 10)
    checkpoint.save(model, str(tmp_path / "bare.h5"), {"dataset": "mnist"})
    Image.new("L", (28, 28)).save(tmp_path / "x.png")
    for args in (["predict", "x.png", "--model", "bare.h5"], ["evaluate", "bare.h5"]):
        res = invoke(runner, *args)
        assert res.exit_code == 1 and "lacks classes, input_shape, preprocess, head" in res.output
        assert "Traceback" not in res.output
