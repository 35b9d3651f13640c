"""Accuracy of `convzoo predict` on photo-like renderings of test images (dark ink on light,
off-centre, larger canvas, JPEG) next to its accuracy on the same test images as they are.

    python bench/photos.py --model models/mnist.h5 --data-dir ../shared/datasets [--count 1000]

render() and render_set() make the renderings (bench/serve.py and data/make_sample.py use them too).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from convzoo import checkpoint  # noqa: E402
from convzoo.data import store  # noqa: E402


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


def accuracy(folder, model, labels):
    out = subprocess.run([sys.executable, "-m", "convzoo", "predict", folder, "--model", model,
                          "--json", "--top-k", "1"], capture_output=True, text=True, check=True)
    results = json.loads(out.stdout)
    by_file = {os.path.basename(r["file"]): r["predictions"][0]["label"] for r in results}
    return float(np.mean([by_file[name] == label for name, label in labels.items()]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data-dir")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    meta = checkpoint.read_meta(args.model)
    classes = meta["classes"]
    x, y = store.load(meta["dataset"], store.data_dir(args.data_dir), "test")
    x, y = x[: args.count], y[: args.count]
    with tempfile.TemporaryDirectory() as tmp:
        plain, photo = os.path.join(tmp, "plain"), os.path.join(tmp, "photo")
        os.makedirs(plain)
        labels = {}
        for i, img in enumerate(x):
            Image.fromarray(img[..., 0]).save(os.path.join(plain, f"{i:04d}.png"))
            labels[f"{i:04d}.png"] = classes[y[i]]
        written = render_set(x, y, classes, photo, len(y), seed=args.seed)
        photo_labels = {os.path.basename(p): classes[c] for p, c in written}
        a_plain = accuracy(plain, args.model, labels)
        a_photo = accuracy(photo, args.model, photo_labels)
    print(json.dumps({"model": args.model, "dataset": meta["dataset"], "n": len(y),
                      "test_png_accuracy": round(a_plain, 4), "photo_accuracy": round(a_photo, 4)}))


if __name__ == "__main__":
    main()
