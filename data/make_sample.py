"""Cut the small MNIST and Fashion-MNIST sample shipped in data/ from the official IDX files.

    python data/make_sample.py [SOURCE]    (SOURCE default: ../shared/datasets)

Writes data/<dataset>/ (the first 2,000 training and first 500 test images, official IDX .gz
format) and data/samples/ (a few test images as PNG, and photo-like JPEGs of them).
"""
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from convzoo import data as catalog  # noqa: E402
from bench import photos  # noqa: E402
from convzoo.data import mnist  # noqa: E402

TRAIN, TEST, SAMPLES = 2000, 500, 4


def main(source):
    os.makedirs(os.path.join(HERE, "samples"), exist_ok=True)
    for name in ("mnist", "fashion_mnist"):
        x_tr, y_tr = mnist.load(os.path.join(source, name), "train")
        x_te, y_te = mnist.load(os.path.join(source, name), "test")
        out = os.path.join(HERE, name)
        mnist.write(out, "train", x_tr[:TRAIN], y_tr[:TRAIN])
        mnist.write(out, "test", x_te[:TEST], y_te[:TEST])
        classes = catalog.get(name).classes
        # samples from the end of the test set, which the sample's 500 test images do not include
        pick = list(range(len(y_te) - SAMPLES, len(y_te)))
        for i in pick:
            label = classes[y_te[i]].replace("/", "-").replace(" ", "_")
            Image.fromarray(x_te[i, ..., 0]).save(os.path.join(HERE, "samples", f"{name}_{i}_{label}.png"))
        rng = np.random.default_rng(0)
        for i in pick:
            label = classes[y_te[i]].replace("/", "-").replace(" ", "_")
            photos.render(x_te[i], rng).save(
                os.path.join(HERE, "samples", f"{name}_{i}_{label}_photo.jpg"), quality=85)
        print(f"{name}: {TRAIN} train + {TEST} test images -> {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "shared", "datasets"))
