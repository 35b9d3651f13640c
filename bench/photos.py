"""Accuracy of `convzoo predict` on photo-like renderings of test images (dark ink on light,
off-centre, larger canvas, JPEG) next to its accuracy on the same test images as they are.

    python bench/photos.py --model models/mnist.h5 --data-dir ../shared/datasets [--count 1000]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from convzoo import checkpoint  # noqa: E402
from convzoo.data import photos, store  # noqa: E402


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
        written = photos.render_set(x, y, classes, photo, len(y), seed=args.seed)
        photo_labels = {os.path.basename(p): classes[c] for p, c in written}
        a_plain = accuracy(plain, args.model, labels)
        a_photo = accuracy(photo, args.model, photo_labels)
    print(json.dumps({"model": args.model, "dataset": meta["dataset"], "n": len(y),
                      "test_png_accuracy": round(a_plain, 4), "photo_accuracy": round(a_photo, 4)}))


if __name__ == "__main__":
    main()
