"""Photo-like renderings of 28x28 test images: dark ink on light, tinted, uneven paper, off-centre,
on a larger canvas, saved as JPEG. Used to measure how predict copes with a user's photos."""
import numpy as np
from PIL import Image, ImageFilter


def render(img28, rng, canvas=(160, 120)):
    """A PIL RGB image of a 28x28 light-on-dark sample as a photo of dark ink on paper."""
    w, h = canvas
    ink = np.asarray(img28, dtype=np.float64).reshape(28, 28) / 255.0
    size = int(rng.integers(int(0.35 * min(w, h)), int(0.75 * min(w, h))))
    glyph = np.asarray(Image.fromarray((ink * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC),
                       dtype=np.float64) / 255.0
    # uneven paper: a tint and a lighting gradient
    paper = rng.uniform(185, 245) + np.linspace(-15, 15, w)[None, :] * rng.uniform(-1, 1)
    paper = np.broadcast_to(paper, (h, w)).copy()
    top = int(rng.integers(0, h - size + 1))
    left = int(rng.integers(0, w - size + 1))
    ink_level = rng.uniform(10, 70)
    alpha = np.zeros((h, w))
    alpha[top:top + size, left:left + size] = glyph
    gray = paper * (1 - alpha) + ink_level * alpha
    gray += rng.normal(0, 4, size=gray.shape)
    tint = rng.uniform(0.9, 1.05, size=3)
    rgb = np.clip(gray[..., None] * tint[None, None, :], 0, 255).astype(np.uint8)
    img = Image.fromarray(rgb, "RGB")
    return img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))


def render_set(x, y, classes, folder, count, seed=0, quality=85):
    """Write `count` photo-like JPEGs named NNNN_<label>.jpg; returns [(path, label index)]."""
    import os

    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    out = []
    for i in range(min(count, len(y))):
        label = int(y[i])
        safe = classes[label].replace("/", "-").replace(" ", "_")
        path = os.path.join(folder, f"{i:04d}_{safe}.jpg")
        render(x[i], rng).save(path, quality=quality)
        out.append((path, label))
    return out
