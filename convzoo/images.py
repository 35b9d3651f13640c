"""Reading user images with Pillow: only photo formats, first frame, EXIF rotation, alpha on white,
16-bit scaled, decompression bombs refused before their pixels are allocated."""
import warnings

import numpy as np
from PIL import Image, ImageOps

from convzoo.errors import ImageError

FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF")
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MAX_PIXELS = 50_000_000


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


def _to_8bit(img):
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        top = 1.0 if arr.max() <= 1.0 else 255.0
        return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "1":
        return img.convert("L")
    return img


def read(path, mode="RGB"):
    """The image at `path` as a uint8 array, HxW ('L') or HxWx3 ('RGB'); ImageError if unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, MAX_PIXELS
            try:
                with Image.open(path, formats=FORMATS) as img:
                    img.seek(0)  # animated GIF/WebP: the first frame
                    img = ImageOps.exif_transpose(img)
                    img.load()
                    img = _flatten_alpha(_to_8bit(img))
                    img = img.convert(mode)
                    return np.asarray(img, dtype=np.uint8)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageError(f"{path}: refused: over {MAX_PIXELS:,} pixels (possible decompression bomb)") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{path}: not an image in a supported format ({', '.join(FORMATS)})") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError, TypeError, IndexError,
            KeyError, ZeroDivisionError, RuntimeError, AttributeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageError(f"{path}: cannot decode image ({msg})") from None
