"""Hostile images (issue 6): every kind of image a user may hand to predict, decompression bombs,
FIFOs, fuzzed image bytes.

Each input is built here, in tmp_path."""
import contextlib
import io
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, good_model, invoke, one_line, tiny_meta
from convzoo import checkpoint, images
from convzoo.errors import ImageError


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
    checkpoint.save(good_model(), str(tmp_path / "m.h5"), tiny_meta())
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
    one_line(e.value)


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
    assert str(tmp_path / name) in one_line(e.value)


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
    checkpoint.save(good_model(), str(tmp_path / "m.h5"), tiny_meta())
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
            one_line(e)
            outcomes["error"] += 1
    assert outcomes["ok"] > 30 and outcomes["error"] > 30, outcomes
