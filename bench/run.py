"""convzoo's speed beside its peers, measured in one run on the same data, model, batch and threads.

    python bench/run.py [--json] [--repeats 3] [--images 4096] [--tiny]

Prints medians over repeats: a float32 matmul peak; training images/s on the S3 MNIST model for
convzoo's own path, a minimal plain-Keras fit and (if installed) a minimal PyTorch loop, with % of
peak; `convzoo --help` wall time; a cold one-image predict vs a bare `import tensorflow`; predict
images/s on a folder. Timings live here, never in tests.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
S3_TRAIN_FLOP = 3 * 2 * (28 * 28 * 25 * 32 + 14 * 14 * 25 * 32 * 64 + 3136 * 1024 + 1024 * 10)


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_peak(repeats, n=2048):
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    a @ a
    return 2 * n**3 / median_time(lambda: a @ a, repeats) / 1e9


def data(n):
    from convzoo.data import mnist

    x, y = mnist.load(os.path.join(ROOT, "data", "mnist"), "train")
    reps = -(-n // len(y))
    return np.concatenate([x] * reps)[:n], np.concatenate([y] * reps)[:n]


def convzoo_fit(x, y, batch, repeats):
    """convzoo's training path: the zoo model, the recipe's compile, its tf.data pipeline."""
    from convzoo import backend, train, zoo

    keras = backend.load()
    recipe = zoo.get_spec("mnist-cnn").recipe.with_overrides(batch_size=batch)
    model = zoo.build_model("mnist-cnn", "mnist", (28, 28, 1), 10)
    model.compile(optimizer=train._optimizer(keras, recipe, 1000), loss=train._loss(keras, "softmax"),
                  metrics=["accuracy"])
    ds = train.pipeline(x, y, batch, shuffle_seed=0)
    model.fit(ds, epochs=1, shuffle=False, verbose=0)  # warm-up: tracing; the pipeline shuffles
    return len(y) / median_time(lambda: model.fit(ds, epochs=1, shuffle=False, verbose=0), repeats)


def keras_fit(x, y, batch, repeats):
    """A minimal plain-Keras loop: float inputs scaled by hand, model.fit on arrays."""
    from convzoo import backend

    keras = backend.load()
    L = keras.layers
    model = keras.Sequential([keras.Input((28, 28, 1)),
                              L.Conv2D(32, 5, padding="same", activation="relu"), L.MaxPooling2D(),
                              L.Conv2D(64, 5, padding="same", activation="relu"), L.MaxPooling2D(),
                              L.Flatten(), L.Dense(1024, activation="relu"), L.Dropout(0.5),
                              L.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    xf = x.astype("float32") / 255
    model.fit(xf, y, batch_size=batch, epochs=1, verbose=0)
    return len(y) / median_time(lambda: model.fit(xf, y, batch_size=batch, epochs=1, verbose=0), repeats)


def torch_loop(x, y, batch, repeats):
    """A minimal PyTorch loop on the same model; None when torch is not installed."""
    try:
        import torch
        from torch import nn
    except ImportError:
        return None
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(3136, 1024), nn.ReLU(), nn.Dropout(0.5), nn.Linear(1024, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).astype("float32") / 255)
    yt = torch.from_numpy(y.astype("int64"))

    def epoch():
        for i in range(0, len(yt), batch):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[i:i + batch]), yt[i:i + batch])
            loss.backward()
            opt.step()

    epoch()
    return len(y) / median_time(epoch, repeats)


def wall(cmd, repeats):
    return median_time(lambda: subprocess.run(cmd, capture_output=True, check=True), repeats)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--tiny", action="store_true", help="a seconds-long smoke run (tests)")
    args = ap.parse_args()
    if args.tiny:
        args.repeats, args.images = 1, 256
    peak = matmul_peak(args.repeats)
    x, y = data(args.images)
    rows = {"matmul_peak_gflops": round(peak, 1), "batch": args.batch, "images": args.images,
            "threads": os.cpu_count()}
    for name, fn in (("convzoo", convzoo_fit), ("plain_keras", keras_fit), ("pytorch", torch_loop)):
        ips = fn(x, y, args.batch, args.repeats)
        rows[f"train_{name}_images_per_s"] = None if ips is None else round(ips, 1)
        rows[f"train_{name}_pct_peak"] = (None if ips is None
                                          else round(100 * ips * S3_TRAIN_FLOP / 1e9 / peak, 1))
    base = rows["train_plain_keras_images_per_s"]
    for name in ("convzoo", "pytorch"):
        v = rows[f"train_{name}_images_per_s"]
        rows[f"train_{name}_vs_plain_keras"] = None if v is None else round(v / base, 2)
    if rows["train_pytorch_images_per_s"]:
        rows["train_convzoo_vs_pytorch"] = round(rows["train_convzoo_images_per_s"] /
                                                 rows["train_pytorch_images_per_s"], 2)
    exe = [sys.executable, "-m", "convzoo"]
    rows["help_seconds"] = round(wall(exe + ["--help"], args.repeats), 3)
    model = os.path.join(ROOT, "models", "mnist.h5")
    sample = os.path.join(ROOT, "data", "samples", "mnist_9999_6.png")
    tf_import = wall([sys.executable, "-c", "import tensorflow"], args.repeats)
    cold = wall(exe + ["predict", sample, "--model", model], args.repeats)
    rows["import_tensorflow_seconds"] = round(tf_import, 2)
    rows["predict_one_cold_seconds"] = round(cold, 2)
    rows["predict_cold_vs_import"] = round(cold / tf_import, 2)
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        n = 50 if args.tiny else 1000
        for i in range(n):
            Image.fromarray(x[i % len(x), ..., 0]).save(os.path.join(tmp, f"{i:04d}.png"))
        t = wall(exe + ["predict", tmp, "--model", model, "--json"], 1)
        rows["predict_folder_images"] = n
        rows["predict_folder_images_per_s"] = round(n / t, 1)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for k, v in rows.items():
            print(f"{k:<36}{'missing (pip install torch==2.13.0)' if v is None else v}")


if __name__ == "__main__":
    main()
