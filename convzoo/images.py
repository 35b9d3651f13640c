"""Reading user images with Pillow: only photo formats, first frame, EXIF rotation, alpha on white,
16-bit scaled, decompression bombs refused before their pixels are allocated."""
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

# Formats Pillow (or a user) may meet that are not opened: named in the error, never parsed.
_REFUSED = ((b"8BPS", "PSD"), (b"%PDF", "PDF"), (b"%!PS", "PostScript/EPS"), (b"\xc5\xd0\xd3\xc6", "EPS"),
            (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (b"\xff\x4f\xff\x51", "JPEG 2000"),
            (b"SIMPLE  =", "FITS"), (b"\x00\x00\x01\x00", "ICO"), (b"icns", "ICNS"))


class _TooLarge(Exception):
    """An image whose header declares more than MAX_PIXELS pixels."""


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
    """Integer or float gray levels 0..top -> 'L', rounding, without clipping to a few levels."""
    if arr.dtype.kind == "f":
        arr = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=top, neginf=0.0)
        return Image.fromarray(np.clip(arr * (255.0 / top) + 0.5, 0, 255).astype(np.uint8), "L")
    # integer arithmetic: no float64 copies of a large image
    arr = np.clip(arr, 0, top).astype(np.uint64 if top >= 2**24 else np.uint32)
    return Image.fromarray(((arr * 255 + top // 2) // top).astype(np.uint8), "L")


def _to_8bit(img):
    """16-bit, 32-bit and float gray scaled to 8 bits (Pillow's convert('L') clips them)."""
    if img.mode.startswith("I;16"):
        return _gray8(np.asarray(img), 65535)
    if img.mode == "I":
        arr = np.asarray(img)
        top = int(arr.max(initial=0))
        # 8- or 16-bit data stored as 32-bit ints keeps its scale; wider data is scaled by its maximum
        return _gray8(arr, 255 if top <= 255 else 65535 if top <= 65535 else top)
    if img.mode == "F":
        arr = np.asarray(img)
        finite = arr[np.isfinite(arr)]
        top = float(finite.max(initial=0.0))
        return _gray8(arr, 1.0 if top <= 1.0 else 255.0 if top <= 255.0 else top)
    if img.mode == "1":
        return img.convert("L")
    return img


def _decode(path, mode):
    with Image.open(path, formats=FORMATS) as img:
        w, h = img.size
        if w * h > MAX_PIXELS:  # checked on the header, before the pixels are allocated
            raise _TooLarge(f"{w}x{h} pixels")
        img.seek(0)  # animated GIF/WebP/PNG, multi-page TIFF: the first frame
        img = ImageOps.exif_transpose(img)
        img.load()
        img = _flatten_alpha(_to_8bit(img))
        return np.asarray(img.convert(mode), dtype=np.uint8)


def read(path, mode="RGB"):
    """The image at `path` as a uint8 array, HxW ('L') or HxWx3 ('RGB'); ImageError if unreadable."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageError(f"{path}: is a folder")
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
        raise ImageError(f"{path}: not a regular file")
    if st.st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes), not an image")
    try:
        with warnings.catch_warnings():
            # Pillow's warnings on odd files (corrupt EXIF, ...) say nothing a user can act on
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _decode(path, mode)
    except (_TooLarge, Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        # Pillow's own check (at open, for far larger images) says "Image size (N pixels) exceeds ..."
        count = re.search(r"\((\d+) pixels\)", str(e))
        size = str(e) if isinstance(e, _TooLarge) else f"{int(count[1]):,} pixels" if count else "the image"
        raise ImageError(f"{path}: refused: {size}, over the {MAX_PIXELS:,} limit "
                         "(possible decompression bomb)") from None
    except Image.UnidentifiedImageError:
        with open(path, "rb") as f:
            other = _sniff(f.read(16))
        if other:
            raise ImageError(f"{path}: {other} files are not read; convert to one of "
                             f"{', '.join(FORMATS)}") from None
        raise ImageError(f"{path}: not an image in a supported format ({', '.join(FORMATS)})") from None
    except Exception as e:  # noqa: BLE001 -- Pillow's decoders raise many types on damaged bytes
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageError(f"{path}: cannot decode image ({msg})") from None
