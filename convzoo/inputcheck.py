"""What the model saw: each preprocessed input saved as a PNG, and cheap checks that warn when an
input is far from the training images. Pillow and numpy only: predict on LiteRT stays TF-free."""
import os

import numpy as np
from PIL import Image

from convzoo import images
from convzoo.errors import ConvzooError
from convzoo.fileio import atomic_path

# Share of pixels above 64 in the 28x28 input, 0.1st to 99.9th percentile over the 60,000 training
# images (measured on /work/data with convzoo.data.store.load; min-max: mnist 0.033-0.432,
# fashion_mnist 0.004-0.897). The sample's digit and clothing photos fall at 0.10-0.25.
INK_RANGE = {"mnist": (0.048, 0.321), "fashion_mnist": (0.031, 0.812)}
# Hasler and Suesstrunk's colourfulness: 0 for gray, about 15 "slightly", 33 "moderately colourful".
# The sample's photos of ink on paper score 2-6; the first six cats_vs_dogs test photos 14-46.
COLOURFUL = 12.0


def colourfulness(rgb):
    """Hasler and Suesstrunk (2003) colourfulness of an RGB uint8 array."""
    a = rgb.astype(np.float64)
    rg = a[..., 0] - a[..., 1]
    yb = 0.5 * (a[..., 0] + a[..., 1]) - a[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def check(path, x, meta):
    """Warnings (strings) for one image file and its preprocessed input x."""
    out = []
    dataset = meta.get("dataset", "its")
    if x.shape[-1] == 1:
        rgb = images.read(path, "RGB")
        step = max(1, max(rgb.shape[:2]) // 256)  # a few thousand pixels decide the colour
        c = colourfulness(rgb[::step, ::step])
        if c > COLOURFUL:
            out.append(f"a colour image (colourfulness {c:.0f}; photos of ink on paper score under "
                       f"{COLOURFUL:.0f}) for a model trained on grayscale {dataset} images: its "
                       "answer may mean little")
    if float(x.std()) < 4.0:
        out.append(f"almost blank after preprocessing (pixel values {int(x.min())}-{int(x.max())}): "
                   "see what the model saw with --save-input")
    elif dataset in INK_RANGE:
        ink = float((x > 64).mean())
        lo, hi = INK_RANGE[dataset]
        if not lo <= ink <= hi:
            out.append(f"{ink:.0%} of the pixels are bright after preprocessing, where 99.8% of the "
                       f"{dataset} training images have {lo:.0%}-{hi:.0%}: "
                       f"{'little is left' if ink < lo else 'this is unlike a ' + dataset + ' image'} "
                       "(see --save-input)")
    return out


def targets(folder, paths):
    """One new PNG path in folder per input file (stems made unique); refuses existing files up front."""
    out, used = [], set()
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0] or "image"
        name, n = stem, 2
        while name in used:
            name, n = f"{stem}-{n}", n + 1
        used.add(name)
        out.append(os.path.join(folder, f"{name}.png"))
    taken = [t for t in out if os.path.lexists(t)]
    if taken:
        raise ConvzooError(f"{taken[0]} already exists; give --save-input an empty or new folder")
    return out


def save(target, x):
    """Write x (HxWxC uint8) as a PNG at target, atomically."""
    img = x[..., 0] if x.shape[-1] == 1 else x
    with atomic_path(target) as tmp:
        Image.fromarray(np.ascontiguousarray(img)).save(tmp, format="PNG")
