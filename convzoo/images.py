"""Reading user images with Pillow: only photo formats, first frame, EXIF rotation, alpha on white,
16-bit scaled, decompression bombs refused before their pixels are allocated."""
import contextlib
import os
import re
import stat
import warnings

import numpy as np
from PIL import Image, ImageOps

from convzoo.errors import ImageError

FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF")
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MAX_PIXELS = 50_000_000
MAX_SCANS = 100  # progressive JPEG scans; encoders write about 10
DECODE_SECONDS = 20.0  # one image's decode; over it, that file is an error and the rest go on
BAND_PIXELS = 1 << 20  # wide (16-bit, float) images are scaled to 8 bits this many pixels at a time

# Formats Pillow (or a user) may meet that are not opened: named in the error, never parsed.
_REFUSED = ((b"8BPS", "PSD"), (b"%PDF", "PDF"), (b"%!PS", "PostScript/EPS"), (b"\xc5\xd0\xd3\xc6", "EPS"),
            (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (b"\xff\x4f\xff\x51", "JPEG 2000"),
            (b"SIMPLE  =", "FITS"), (b"\x00\x00\x01\x00", "ICO"), (b"icns", "ICNS"))


class _TooLarge(Exception):
    """An image whose header declares more than MAX_PIXELS pixels."""


class _Costly(Exception):
    """An image whose decoder would cost far more than its pixels."""


class _Slow(Exception):
    """A decode over DECODE_SECONDS."""


def _sniff(head):
    """The name of a known but refused format from the first bytes, or None."""
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"avif", b"heim", b"hevc"):
        return "HEIC/AVIF"
    return next((name for magic, name in _REFUSED if head.startswith(magic)), None)


def _flatten_alpha(img):
    """Composite any transparency on white; returns an 'L' or 'RGB' image."""
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("LA", "La", "PA"):
        img = img.convert("RGBA") if img.mode == "PA" else img
    if img.mode in ("RGBA", "RGBa", "LA", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
    return img


def _gray8(arr, top):
    """Integer or float gray levels 0..top -> uint8, rounding, without clipping to a few levels."""
    if arr.dtype.kind == "f":
        arr = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=top, neginf=0.0)
        return np.clip(arr * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
    # integer arithmetic: no float64 copies
    arr = np.clip(arr, 0, top).astype(np.uint64 if top >= 2**24 else np.uint32)
    return ((arr * 255 + top // 2) // top).astype(np.uint8)


def _bands(img):
    """(first row, pixels as an array) for bands of about BAND_PIXELS: a wide image is never copied whole."""
    w, h = img.size
    rows = max(1, BAND_PIXELS // max(w, 1))
    for y in range(0, h, rows):
        yield y, np.asarray(img.crop((0, y, w, min(h, y + rows))))


def _to_8bit(img):
    """16-bit, 32-bit and float gray scaled to 8 bits (Pillow's convert('L') clips them), band by
    band, so a 50 MP float image costs its decoded buffer plus 50 MB, not several float copies."""
    if img.mode == "1":
        return img.convert("L")
    if not (img.mode.startswith("I;16") or img.mode in ("I", "F")):
        return img
    if img.mode.startswith("I;16"):
        top = 65535
    elif img.mode == "I":
        peak = max((int(b.max(initial=0)) for _, b in _bands(img)), default=0)
        # 8- or 16-bit data stored as 32-bit ints keeps its scale; wider data is scaled by its maximum
        top = 255 if peak <= 255 else 65535 if peak <= 65535 else peak
    else:
        peak = max((float(b[np.isfinite(b)].max(initial=0.0)) for _, b in _bands(img)), default=0.0)
        top = 1.0 if peak <= 1.0 else 255.0 if peak <= 255.0 else peak
    w, h = img.size
    out = np.empty((h, w), np.uint8)
    for y, band in _bands(img):
        out[y:y + len(band)] = _gray8(band, top)
    return Image.fromarray(out, "L")


def _count_scans(f, limit):
    """Start-of-scan markers in a JPEG (0xFFDA; entropy-coded data never holds one), up to limit + 1."""
    f.seek(0)
    count, tail = 0, b""
    while count <= limit and (chunk := f.read(1 << 20)):
        block = tail + chunk
        count += block.count(b"\xff\xda")
        tail = block[-1:] if block[-1:] == b"\xff" else b""
    f.seek(0)
    return count


def _check_decoder(img, f):
    """Refuse the decoders that cost far more than their pixels, before they run."""
    if img.format == "BMP" and any(t[0] == "bmp_rle" for t in img.tile):
        # Pillow decodes BMP RLE4/RLE8 in pure Python: 25 s for 29 KB
        raise _Costly("run-length-encoded (RLE) BMP; save it as PNG or uncompressed BMP")
    if img.format == "JPEG" and (img.info.get("progressive") or img.info.get("progression")):
        scans = _count_scans(f, MAX_SCANS)
        if scans > MAX_SCANS:
            raise _Costly(f"progressive JPEG of over {MAX_SCANS} scans (each one a pass over the image); "
                          "save it as a baseline JPEG")


def _decode(f, mode):
    with Image.open(f, formats=FORMATS) as img:
        w, h = img.size
        if w * h > MAX_PIXELS:  # checked on the header, before the pixels are allocated
            raise _TooLarge(f"{w}x{h} pixels")
        _check_decoder(img, f)
        img.seek(0)  # animated GIF/WebP/PNG, multi-page TIFF: the first frame
        img = ImageOps.exif_transpose(img)
        img.load()
        img = _flatten_alpha(_to_8bit(img))
        return np.asarray(img.convert(mode), dtype=np.uint8)


@contextlib.contextmanager
def _deadline(seconds):
    """Raise _Slow in the block after `seconds` (SIGALRM, main thread only; elsewhere the caps hold)."""
    import signal
    import threading
    import time

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum, frame):
        raise _Slow()

    start = time.monotonic()
    previous = signal.signal(signal.SIGALRM, on_alarm)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:  # someone else's alarm (a test timeout): put it back with what was left
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - start), 0.001))


def _open(path):
    """The file opened once (never blocking on a FIFO) and its fstat, checked: a regular, non-empty file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror or e})") from None
    st = os.fstat(fd)
    why = ("is a folder" if stat.S_ISDIR(st.st_mode) else
           "not a regular file" if not stat.S_ISREG(st.st_mode) else  # a FIFO or device never ends
           "empty file (0 bytes), not an image" if st.st_size == 0 else None)
    if why:
        os.close(fd)
        raise ImageError(f"{path}: {why}")
    return os.fdopen(fd, "rb")


def read(path, mode="RGB"):
    """The image at `path` as a uint8 array, HxW ('L') or HxWx3 ('RGB'); ImageError if unreadable."""
    with _open(path) as f:
        return _read(f, path, mode)


def read_sized(path, size, mode="RGB"):
    """read() resized to `size` (h, w) with Pillow bilinear when it differs, as HxWx3 ('RGB') or
    HxWx1 ('L'): the one resize training data (folders.decode) and prediction (predict.to_input) share."""
    arr = read(path, mode)
    h, w = size
    if arr.shape[:2] != (h, w):
        arr = np.asarray(Image.fromarray(arr).resize((w, h), Image.BILINEAR), dtype=np.uint8)
    return arr.reshape(h, w, 3 if mode == "RGB" else 1)


def _read(f, path, mode):
    try:
        with warnings.catch_warnings(), _deadline(DECODE_SECONDS):
            # Pillow's warnings on odd files (corrupt EXIF, ...) say nothing a user can act on
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _decode(f, mode)
    except _Slow:
        raise ImageError(f"{path}: refused: decoding took over {DECODE_SECONDS:g} s") from None
    except _Costly as e:
        raise ImageError(f"{path}: refused: {e}") from None
    except (_TooLarge, Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        # Pillow's own check (at open, for far larger images) says "Image size (N pixels) exceeds ..."
        count = re.search(r"\((\d+) pixels\)", str(e))
        size = str(e) if isinstance(e, _TooLarge) else f"{int(count[1]):,} pixels" if count else "the image"
        raise ImageError(f"{path}: refused: {size}, over the {MAX_PIXELS:,} limit "
                         "(possible decompression bomb)") from None
    except Image.UnidentifiedImageError:
        f.seek(0)
        other = _sniff(f.read(16))
        if other:
            raise ImageError(f"{path}: {other} files are not read; convert to one of "
                             f"{', '.join(FORMATS)}") from None
        raise ImageError(f"{path}: not an image in a supported format ({', '.join(FORMATS)})") from None
    except Exception as e:  # noqa: BLE001 -- Pillow's decoders raise many types on damaged bytes
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageError(f"{path}: cannot decode image ({msg})") from None
