"""convzoo's speed beside its peers, measured in one run on the same data, model, batch and threads.

    python bench/run.py [--json] [--repeats 3] [--images 4096] [--data-dir DIR] [--tiny]

Prints medians over repeats: a float32 matmul peak; training images/s, and % of that peak, on the
S3 MNIST model and the S8 cats-vs-dogs model for convzoo's own path, a minimal plain-Keras fit
and (if installed) a minimal PyTorch loop; the cats-vs-dogs input pipeline's rates (JPEG decode and
resize, S9 augmentation) beside the rate the S9 training step consumes; `convzoo --help` wall time;
a cold one-image predict vs a bare `import tensorflow`; predict images/s on a folder of images.
Timings live here, never in tests.
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

import machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
# The plain-Keras peer runs with the caller's oneDNN setting (TensorFlow's default unless set), as
# a plain Keras user would; convzoo's path with convzoo's default.
CALLER_ONEDNN = machine.CALLER_ENV.get("TF_ENABLE_ONEDNN_OPTS")


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def train_flop(model):
    """FLOP per training image (forward + backward, 3x the forward multiply-adds x 2)."""
    from keras import layers

    macs = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            _, h, w, c = layer.output.shape
            kh, kw = layer.kernel_size
            macs += h * w * c * kh * kw * layer.input.shape[-1]
        elif isinstance(layer, layers.Dense):
            macs += layer.input.shape[-1] * layer.units
    return 3 * 2 * macs


def repeat_to(x, y, n):
    reps = -(-n // len(y))
    return np.concatenate([x] * reps)[:n], np.concatenate([y] * reps)[:n]


def mnist_data(n):
    from convzoo.data import mnist

    x, y = mnist.load(os.path.join(ROOT, "data", "mnist"), "train")
    return repeat_to(x, y, n)


def cats_data(data_dir, n):
    """(x, y, source): the real cats-vs-dogs training images, or random ones when not imported
    (training speed does not depend on the pixels)."""
    from convzoo.data import store
    from convzoo.errors import ConvzooError

    try:
        x, y = store.load("cats_vs_dogs", store.data_dir(data_dir), "train")
        source = "real"
    except ConvzooError:
        rng = np.random.default_rng(0)
        x, y = rng.integers(0, 256, (64, 150, 150, 3), dtype=np.uint8), np.arange(64) % 2
        source = "random (cats_vs_dogs not imported)"
    x, y = repeat_to(x, y.astype("uint8"), n)
    return x, y, source


# --------------------------------------------------------------- training: three ways
ZOO_NAME = {"s3": ("mnist-cnn", "mnist", (28, 28, 1), 10), "s8": ("catsdogs-cnn", "cats_vs_dogs",
                                                                 (150, 150, 3), 2)}


def convzoo_epoch(keras, model, recipe, head, x, y, batch, kind=None, steps_per_epoch=1000):
    """A function that trains one epoch as `convzoo train` does: the recipe's optimizer and the
    custom loop's step (loop.steps, the default strategy, each step's totals read back) over
    train.pipeline (`kind`: its default, "slices", or "arrays": NumPy batches, as S1 feeds)."""
    from convzoo import heads, loop, train

    optimizer = train.optimizer(keras, recipe, steps_per_epoch)
    optimizer.build(model.trainable_variables)
    step, _ = loop.steps(keras, model, optimizer, heads.loss(keras, head, recipe.label_smoothing), head)
    y = heads.targets(y, head)
    ds = ([(x[i:i + batch], y[i:i + batch]) for i in range(0, len(y), batch)] if kind == "arrays"
          else train.pipeline(x, y, batch, shuffle_seed=0, kind=kind))

    def epoch():
        for xb, yb in ds:
            step(xb, yb).numpy()

    return epoch


def convzoo_train(which, x, y, batch, repeats):
    """convzoo's training path: the zoo model, its recipe's optimizer, the custom loop over
    train.pipeline, exactly as `convzoo train` runs them. Returns (images/s, FLOP per image)."""
    from convzoo import backend, zoo

    keras = backend.load()
    name, dataset, shape, k = ZOO_NAME[which]
    spec = zoo.get_spec(name)
    model = zoo.build_model(name, dataset, shape, k)
    epoch = convzoo_epoch(keras, model, spec.recipe.with_overrides(batch_size=batch), spec.head, x, y, batch)
    epoch()  # warm-up: tracing
    ips = len(y) / median_time(epoch, repeats)
    return ips, train_flop(model)


def keras_model(which):
    if CALLER_ONEDNN is None:
        os.environ.pop("TF_ENABLE_ONEDNN_OPTS", None)  # TensorFlow's own default, not convzoo's
    else:
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = CALLER_ONEDNN
    from convzoo import backend

    keras = backend.load()
    L = keras.layers
    if which == "s3":
        return keras.Sequential([keras.Input((28, 28, 1)),
                                 L.Conv2D(32, 5, padding="same", activation="relu"), L.MaxPooling2D(),
                                 L.Conv2D(64, 5, padding="same", activation="relu"), L.MaxPooling2D(),
                                 L.Flatten(), L.Dense(1024, activation="relu"), L.Dropout(0.5),
                                 L.Dense(10, activation="softmax")])
    return keras.Sequential([keras.Input((150, 150, 3)),
                             L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(),
                             L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(),
                             L.Conv2D(128, 3, activation="relu"), L.MaxPooling2D(),
                             L.Conv2D(128, 3, activation="relu"), L.MaxPooling2D(),
                             L.Flatten(), L.Dense(512, activation="relu"), L.Dense(1, activation="sigmoid")])


def keras_fit(which, x, y, batch, repeats):
    """A minimal plain-Keras loop: float inputs scaled by hand, model.fit on numpy arrays."""
    model = keras_model(which)
    if which == "s3":
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    else:
        model.compile("rmsprop", "binary_crossentropy", metrics=["accuracy"])
        y = y.reshape(-1, 1).astype("float32")
    xf = x.astype("float32") / 255
    model.fit(xf, y, batch_size=batch, epochs=1, verbose=0)
    return len(y) / median_time(lambda: model.fit(xf, y, batch_size=batch, epochs=1, verbose=0), repeats)


def torch_model(which):
    from torch import nn

    if which == "s3":
        return nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(3136, 1024), nn.ReLU(), nn.Dropout(0.5), nn.Linear(1024, 10))
    return nn.Sequential(nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(64, 128, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(128, 128, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(6272, 512), nn.ReLU(), nn.Linear(512, 1))


def torch_loop(x, y, batch, repeats, which="s3"):
    """A minimal PyTorch loop on the same model; None when torch is not installed."""
    try:
        import torch
        from torch import nn
    except ImportError:
        return None
    torch.manual_seed(0)
    model = torch_model(which)
    if which == "s3":
        opt = torch.optim.Adam(model.parameters(), 1e-4)
        yt = torch.from_numpy(y.astype("int64"))
        loss_fn = nn.functional.cross_entropy
    else:
        opt = torch.optim.RMSprop(model.parameters(), 1e-4)
        yt = torch.from_numpy(y.astype("float32").reshape(-1, 1))
        loss_fn = nn.functional.binary_cross_entropy_with_logits
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).astype("float32") / 255)

    def epoch():
        for i in range(0, len(yt), batch):
            opt.zero_grad()
            loss = loss_fn(model(xt[i:i + batch]), yt[i:i + batch])
            loss.backward()
            opt.step()

    epoch()
    return len(y) / median_time(epoch, repeats)


def training_rows(which, batch, repeats, peak, images, data_dir):
    """Each peer in a fresh process of its own (no thread pools or memory left over from another
    framework), taking turns over the repeats so that drift hits them alike."""
    rates = {"convzoo": [], "plain_keras": [], "pytorch": []}
    flop = None
    names = list(rates)
    for round_ in range(repeats):
        for name in names[round_ % 3:] + names[:round_ % 3]:  # each peer takes each place in turn
            cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--which", which,
                   "--images", str(images), "--batch", str(batch), "--repeats", "2"]
            if data_dir:
                cmd += ["--data-dir", data_dir]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                if name == "pytorch" and "No module named 'torch'" in out.stderr:
                    continue
                raise SystemExit(f"{which} {name} failed:\n{out.stderr[-2000:]}")
            got = json.loads(out.stdout.strip().splitlines()[-1])
            rates[name].append(got["ips"])
            flop = got.get("flop") or flop
    med = {k: statistics.median(v) if v else None for k, v in rates.items()}
    rows = {f"{which}_gflop_per_image": round(flop / 1e9, 3)}
    for name, v in med.items():
        rows[f"{which}_train_{name}_images_per_s"] = None if v is None else round(v, 1)
        rows[f"{which}_train_{name}_pct_peak"] = None if v is None else round(100 * v * flop / 1e9 / peak, 1)
    for name, v in rates.items():
        rows[f"{which}_train_{name}_runs"] = [round(r, 1) for r in v]
    rows[f"{which}_train_convzoo_vs_plain_keras"] = round(med["convzoo"] / med["plain_keras"], 2)
    rows[f"{which}_train_convzoo_vs_pytorch"] = (None if med["pytorch"] is None
                                                 else round(med["convzoo"] / med["pytorch"], 2))
    return rows


def child(args):
    """One peer's images/s in this process (python bench/run.py --child NAME --which s3|s8)."""
    if args.which == "s3":
        x, y = mnist_data(args.images)
    else:
        x, y, _ = cats_data(args.data_dir, args.images)
    batch = args.batch if args.which == "s3" else 32
    if args.child == "convzoo":
        ips, flop = convzoo_train(args.which, x, y, batch, args.repeats)
        return {"ips": ips, "flop": flop}
    if args.child == "plain_keras":
        return {"ips": keras_fit(args.which, x, y, batch, args.repeats)}
    ips = torch_loop(x, y, batch, args.repeats, args.which)
    if ips is None:
        raise SystemExit("No module named 'torch'")
    return {"ips": ips}


# --------------------------------------------------------------- cats vs dogs input pipeline
def pipeline_rows(x, y, batch, repeats, tiny):
    """What feeding the S9 step costs: decoding and resizing JPEGs (done once, then cached), the
    S9 augmentation layers alone, and the whole S9 training step (augmentation included)."""
    from PIL import Image

    from convzoo import backend, zoo
    from convzoo.data import folders
    from convzoo import data as catalog
    from convzoo.nets import augmentation

    keras = backend.load()
    import tensorflow as tf

    rows = {}
    n = 32 if tiny else 256
    with tempfile.TemporaryDirectory() as tmp:  # JPEGs at the real images' typical size
        paths = []
        for i in range(n):
            p = os.path.join(tmp, f"{i}.jpg")
            Image.fromarray(x[i % len(x)]).resize((500, 374)).save(p, quality=90)
            paths.append(p)
        t = median_time(lambda: [folders.decode(p, (150, 150)) for p in paths], repeats)
    rows["cats_decode_resize_images_per_s"] = round(n / t, 1)
    aug = keras.Sequential([keras.Input((150, 150, 3)), *augmentation(catalog.get("cats_vs_dogs").augmentation)])
    run_aug = tf.function(lambda b: aug(b, training=True))
    xb = tf.constant(x[:batch].astype("float32"))
    run_aug(xb)
    steps = 2 if tiny else 8
    t = median_time(lambda: [run_aug(xb).numpy() for _ in range(steps)], repeats)
    rows["cats_augment_images_per_s"] = round(steps * batch / t, 1)
    spec = zoo.get_spec("catsdogs-cnn-aug")
    model = zoo.build_model("catsdogs-cnn-aug", "cats_vs_dogs", (150, 150, 3), 2)
    epoch = convzoo_epoch(keras, model, spec.recipe, spec.head, x, y, batch)
    epoch()
    t = median_time(epoch, repeats)
    rows["cats_s9_train_step_images_per_s"] = round(len(y) / t, 1)
    rows["cats_decode_vs_step"] = round(rows["cats_decode_resize_images_per_s"] /
                                        rows["cats_s9_train_step_images_per_s"], 2)
    return rows


# --------------------------------------------------------------- commands
def wall(cmd, repeats):
    return median_time(lambda: subprocess.run(cmd, capture_output=True, check=True), repeats)


def command_rows(x, repeats, tiny):
    from PIL import Image

    rows = {}
    exe = [sys.executable, "-m", "convzoo"]
    rows["help_seconds"] = round(wall(exe + ["--help"], repeats), 3)
    model = os.path.join(ROOT, "models", "mnist.h5")
    sample = os.path.join(ROOT, "data", "samples", "mnist_9999_6.png")
    tf_import = wall([sys.executable, "-c", "import tensorflow"], repeats)
    # the .h5 through TensorFlow (--no-litert), then the same model through its LiteRT twin
    cold = wall(exe + ["predict", sample, "--model", model, "--no-litert"], repeats)
    twin = wall(exe + ["predict", sample, "--model", model], repeats)
    rows["import_tensorflow_seconds"] = round(tf_import, 2)
    rows["predict_one_cold_seconds"] = round(cold, 2)
    rows["predict_cold_vs_import"] = round(cold / tf_import, 2)
    rows["predict_one_cold_twin_seconds"] = round(twin, 3)
    with tempfile.TemporaryDirectory() as tmp:
        lite = os.path.join(tmp, "mnist.tflite")
        made = subprocess.run(exe + ["export", model, "--format", "tflite", "--output", lite,
                                     "--data-dir", os.path.join(ROOT, "data"), "--limit", "100"],
                              capture_output=True, text=True)
        if made.returncode == 0:
            rows["predict_one_cold_tflite_seconds"] = round(
                wall(exe + ["predict", sample, "--model", lite], repeats), 3)
        else:
            rows["predict_one_cold_tflite_seconds"] = None  # no ai-edge-litert
    with tempfile.TemporaryDirectory() as tmp:
        n = 50 if tiny else 1000
        for i in range(n):
            Image.fromarray(x[i % len(x), ..., 0]).save(os.path.join(tmp, f"{i:04d}.png"))
        t = wall(exe + ["predict", tmp, "--model", model, "--json", "--no-litert"], 1)
        rows["predict_folder_images"] = n
        rows["predict_folder_images_per_s"] = round(n / t, 1)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--images", type=int, default=4096, help="S3 images per timed epoch")
    ap.add_argument("--cats-images", type=int, default=512, help="S8/S9 images per timed epoch")
    ap.add_argument("--batch", type=int, default=128, help="S3 batch (cats vs dogs: 32)")
    ap.add_argument("--data-dir", help="where cats_vs_dogs is imported (default: convzoo's)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["s3", "s8", "pipeline", "commands"])
    ap.add_argument("--tiny", action="store_true", help="a seconds-long smoke run (tests)")
    ap.add_argument("--child", choices=["convzoo", "plain_keras", "pytorch"], help=argparse.SUPPRESS)
    ap.add_argument("--which", choices=["s3", "s8"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    if args.tiny:
        args.repeats, args.images, args.cats_images = 1, 256, 32
    peak = machine.matmul_peak(args.repeats)
    desc = machine.describe(peak)
    if not args.json:
        print("\n".join(machine.lines(desc)))
    rows = {"machine": desc, "matmul_peak_gflops": round(peak, 1), "threads": os.cpu_count(), "s3_batch": args.batch,
            "s3_images": args.images, "cats_batch": 32, "cats_images": args.cats_images}
    x, y = mnist_data(args.images)
    if "s3" not in args.skip:
        rows.update(training_rows("s3", args.batch, args.repeats, peak, args.images, args.data_dir))
    if "s8" not in args.skip or "pipeline" not in args.skip:
        cx, cy, rows["cats_data"] = cats_data(args.data_dir, args.cats_images)
        if "s8" not in args.skip:
            rows.update(training_rows("s8", 32, args.repeats, peak, args.cats_images, args.data_dir))
        if "pipeline" not in args.skip:
            rows.update(pipeline_rows(cx, cy, 32, args.repeats, args.tiny))
    if "commands" not in args.skip:
        rows.update(command_rows(x, args.repeats, args.tiny))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for k, v in rows.items():
            if k == "machine":
                continue
            print(f"{k:<40}{'missing (pip install torch==2.13.0 / ai-edge-litert)' if v is None else v}")


if __name__ == "__main__":
    main()
