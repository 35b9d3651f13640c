"""Hostile inputs: checkpoints that carry code or read host files, broken files, and every kind of
image a user may hand to predict. Each input is built here."""
import io
import json
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from conftest import invoke, tiny_meta
from convzoo import checkpoint, images
from convzoo.errors import CheckpointError, ImageError


@pytest.fixture
def good_h5(tmp_path):
    from convzoo import zoo

    model = zoo.build_model("mlp", "mnist", (28, 28, 1), 10)
    return checkpoint.save(model, str(tmp_path / "good.h5"), tiny_meta())


def _one_line(err):
    assert "\n" not in str(err)
    return str(err)


# ------------------------------------------------------------------ checkpoints that carry code
def test_lambda_h5_is_refused_and_runs_nothing(tmp_path):
    import keras

    marker = tmp_path / "pwned"
    payload = eval(f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]")
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Lambda(payload),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    marker.unlink(missing_ok=True)  # building the model ran it once
    model.save(tmp_path / "evil.h5")
    import h5py

    with h5py.File(tmp_path / "evil.h5", "a") as f:
        f.attrs["convzoo"] = json.dumps(tiny_meta())
    with pytest.raises(CheckpointError, match="Lambda layer") as e:
        checkpoint.load(tmp_path / "evil.h5")
    _one_line(e.value)
    assert not marker.exists()


def _keras_zip(path, config, meta=True):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        if meta:
            z.writestr("convzoo.json", json.dumps(tiny_meta()))


@pytest.mark.parametrize("layer, found", [
    ({"module": "keras.layers", "class_name": "Lambda", "config": {"function": {"class_name": "__lambda__"}}},
     "Lambda layer"),
    ({"module": "os", "class_name": "system", "config": {"command": "touch pwned"}}, "class 'system'"),
    ({"module": "keras.layers", "class_name": "Dense", "registered_name": "evil>Payload",
      "config": {"units": 1}}, "custom object 'evil>Payload'"),
    ({"module": "builtins", "class_name": "Dense", "config": {"units": 1}}, "module 'builtins'"),
    ({"module": "keras.layers", "class_name": "Dense", "config": {"units": 1, "activation": "os.system"}},
     "activation 'os.system'"),
    ({"module": "keras.layers", "class_name": "TFSMLayer", "config": {"filepath": "/etc"}}, "TFSMLayer"),
])
def test_keras_zip_with_foreign_classes_is_refused(tmp_path, layer, found):
    config = {"module": "keras", "class_name": "Sequential",
              "config": {"name": "s", "layers": [layer]}}
    _keras_zip(tmp_path / "evil.keras", config)
    with pytest.raises(CheckpointError, match="refused") as e:
        checkpoint.load(tmp_path / "evil.keras")
    assert found in _one_line(e.value)


def test_cli_predict_with_evil_model_is_one_line(runner, tmp_path):
    _keras_zip(tmp_path / "evil.keras", {"module": "keras", "class_name": "Sequential", "config": {
        "layers": [{"module": "keras.layers", "class_name": "Lambda", "config": {}}]}})
    Image.new("L", (28, 28)).save(tmp_path / "x.png")
    res = invoke(runner, "predict", "x.png", "--model", "evil.keras")
    assert res.exit_code == 1 and "refused" in res.output and "Traceback" not in res.output
    assert res.output.count("\n") == 1


# ------------------------------------------------------------------ HDF5 that reads host files
def test_hdf5_external_link_is_refused(good_h5, tmp_path):
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["secret"] = np.arange(3)
    with h5py.File(good_h5, "a") as f:
        f["model_weights/ext"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/secret")
    with pytest.raises(CheckpointError, match="external link"):
        checkpoint.read_meta(good_h5)


def test_hdf5_external_storage_is_refused(good_h5, tmp_path):
    import h5py

    host = tmp_path / "host_file"
    host.write_bytes(b"x" * 64)
    with h5py.File(good_h5, "a") as f:
        f.create_dataset("model_weights/leak", shape=(64,), dtype="u1", external=[(str(host), 0, 64)])
    with pytest.raises(CheckpointError, match="external storage"):
        checkpoint.load(good_h5)


def test_hdf5_virtual_dataset_is_refused(good_h5, tmp_path):
    import h5py

    with h5py.File(tmp_path / "src.h5", "w") as f:
        f["data"] = np.arange(4)
    layout = h5py.VirtualLayout(shape=(4,), dtype="i8")
    layout[:] = h5py.VirtualSource(str(tmp_path / "src.h5"), "data", shape=(4,))
    with h5py.File(good_h5, "a") as f:
        f.create_virtual_dataset("model_weights/virtual", layout)
    with pytest.raises(CheckpointError, match="virtual dataset"):
        checkpoint.load(good_h5)


def test_weights_file_with_external_link_is_refused(good_h5, tmp_path):
    import h5py

    with h5py.File(good_h5, "a") as f:
        f["x"] = h5py.ExternalLink("/etc/passwd", "/")
    with pytest.raises(CheckpointError, match="external link"):
        checkpoint.check_weights_file(good_h5)


# ------------------------------------------------------------------ broken files
@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"\x89HDF\r\n\x1a\n" + b"\0" * 50, "cannot read checkpoint"),
    (b"just some text, not a model", "not a Keras checkpoint"),
    (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "not a Keras checkpoint"),
])
def test_broken_checkpoint_files(runner, tmp_path, content, message):
    (tmp_path / "bad.h5").write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as e:
        checkpoint.load(tmp_path / "bad.h5")
    _one_line(e.value)
    res = invoke(runner, "evaluate", "bad.h5")
    assert res.exit_code == 1 and "Traceback" not in res.output and res.output.count("\n") == 1


def test_truncated_h5_and_zip_without_config(good_h5, tmp_path):
    raw = open(good_h5, "rb").read()
    (tmp_path / "half.h5").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(tmp_path / "half.h5")
    _one_line(e.value)
    with zipfile.ZipFile(tmp_path / "nocfg.keras", "w") as z:
        z.writestr("readme.txt", "hi")
    with pytest.raises(CheckpointError, match="without config.json"):
        checkpoint.load(tmp_path / "nocfg.keras")


def test_model_without_convzoo_metadata(tmp_path):
    import keras

    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(tmp_path / "plain.h5")
    with pytest.raises(CheckpointError, match="without convzoo metadata"):
        checkpoint.load(tmp_path / "plain.h5")


# ------------------------------------------------------------------ images
def _photo(size=(64, 48)):
    rng = np.random.default_rng(1)
    base = np.linspace(0, 255, size[0] * size[1] * 3).reshape(size[1], size[0], 3)
    return Image.fromarray(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8))


def _save(img, path, **kw):
    img.save(path, **kw)
    return path


def test_image_zoo(tmp_path):
    jpg = _save(_photo(), tmp_path / "p.jpg", quality=90)
    assert images.read(jpg).shape == (48, 64, 3)
    # CMYK JPEG
    assert images.read(_save(_photo().convert("CMYK"), tmp_path / "cmyk.jpg")).shape == (48, 64, 3)
    # 16-bit gray PNG: scaled, not clipped to two levels
    ramp = (np.arange(256 * 16, dtype=np.uint16).reshape(16, 256) * 16)
    arr = images.read(_save(Image.fromarray(ramp), tmp_path / "g16.png"), "L")
    assert len(np.unique(arr)) > 100 and arr.min() < 10 and arr.max() > 245
    # gray + alpha: transparent area becomes white
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
    # animated GIF: the first frame
    frames = [Image.new("L", (8, 8), v) for v in (10, 250)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert images.read(tmp_path / "anim.gif", "L").mean() < 50
    # EXIF orientation 6: rotated on read
    exif = Image.Exif()
    exif[0x0112] = 6
    arr = images.read(_save(_photo(), tmp_path / "rot.jpg", exif=exif.tobytes()))
    assert arr.shape == (64, 48, 3)


@pytest.mark.parametrize("name, make, message", [
    ("empty.png", lambda p: p.write_bytes(b""), "not an image"),
    ("text.jpg", lambda p: p.write_text("hello"), "not an image"),
    ("trunc.jpg", lambda p: p.write_bytes(_jpeg_bytes()[:300]), "cannot decode"),
    ("image.psd", lambda p: p.write_bytes(b"8BPS\x00\x01" + b"\0" * 40), "not an image"),
    ("doc.eps", lambda p: p.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"), "not an image"),
    ("missing.png", lambda p: None, "no such file"),
])
def test_bad_images_are_image_errors(tmp_path, name, make, message):
    make(tmp_path / name)
    with pytest.raises(ImageError, match=message) as e:
        images.read(tmp_path / name)
    assert str(tmp_path / name) in _one_line(e.value)


def _jpeg_bytes():
    buf = io.BytesIO()
    _photo((200, 150)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _png_bomb(path, side=10_000):
    """A 1-bit PNG that declares side x side pixels yet is tiny on disk."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" + b"\0" * ((side + 7) // 8)
    body = zlib.compress(row * 64, 9)  # only a few rows: it must be refused before they are needed
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
           + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    path.write_bytes(png)


def test_decompression_bomb_is_refused_before_allocation(tmp_path):
    _png_bomb(tmp_path / "bomb.png")
    t0 = time.time()
    with pytest.raises(ImageError, match="decompression bomb"):
        images.read(tmp_path / "bomb.png")
    assert time.time() - t0 < 2  # 100 megapixels were never decoded


def test_predict_folder_reports_bad_files_and_goes_on(runner, tmp_path):
    from convzoo import zoo

    checkpoint.save(zoo.build_model("mlp", "mnist", (28, 28, 1), 10), str(tmp_path / "m.h5"), tiny_meta())
    folder = tmp_path / "imgs"
    folder.mkdir()
    _save(_photo(), folder / "a_good.jpg")
    (folder / "b_empty.png").write_bytes(b"")
    (folder / "c_trunc.jpg").write_bytes(_jpeg_bytes()[:300])
    _png_bomb(folder / "d_bomb.png")
    _save(_photo().convert("CMYK"), folder / "e_cmyk.jpg")
    res = runner.invoke(__import__("convzoo.cli").cli.cli, ["predict", str(folder), "--model", "m.h5", "--json"])
    assert res.exit_code == 1
    out = {r["file"].rsplit("/", 1)[1]: r for r in json.loads(res.stdout)}
    assert out["a_good.jpg"]["predictions"] and out["e_cmyk.jpg"]["predictions"]
    assert all(out[f]["error"] for f in ("b_empty.png", "c_trunc.jpg", "d_bomb.png"))


def test_fuzzed_images_never_raise_anything_else(tmp_path):
    """300 seeded mutations of real JPEG and PNG bytes: a uint8 array or an ImageError, nothing else."""
    rng = np.random.default_rng(1234)
    png = io.BytesIO()
    _photo((120, 90)).save(png, "PNG")
    seeds = [_jpeg_bytes(), png.getvalue()]
    path = tmp_path / "fuzz"
    t0 = time.time()
    outcomes = {"ok": 0, "error": 0}
    for case in range(300):
        data = bytearray(seeds[case % 2])
        kind = case % 4
        if kind == 0:  # flip random bytes
            for i in rng.integers(0, len(data), size=int(rng.integers(1, 20))):
                data[i] = int(rng.integers(0, 256))
        elif kind == 1:  # truncate
            data = data[: int(rng.integers(1, len(data)))]
        elif kind == 2:  # duplicate a chunk
            a = int(rng.integers(0, len(data) - 10))
            b = a + int(rng.integers(1, min(500, len(data) - a)))
            data = data[:b] + data[a:b] + data[b:]
        else:  # insert garbage
            at = int(rng.integers(0, len(data)))
            data = data[:at] + bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8)) + data[at:]
        path.write_bytes(bytes(data))
        try:
            arr = images.read(path)
            assert arr.dtype == np.uint8 and arr.ndim == 3
            outcomes["ok"] += 1
        except ImageError:
            outcomes["error"] += 1
    assert outcomes["ok"] > 0 and outcomes["error"] > 0
    assert time.time() - t0 < 120
