"""What `convzoo train --deterministic` costs: training images/s with TensorFlow's op determinism
against without it, on S3's MNIST model and the release CIFAR-10 recipe (cifar10-vgg).

    python bench/determinism.py [--json] [--repeats 3] [--images 2048] [--cifar-images 512]
                                [--data-dir DIR] [--only mnist-cnn|cifar10-vgg ...]

Each measurement runs in its own process (op determinism cannot be turned off once on), the two
settings take turns over the repeats so drift hits them alike, and the table gives the median
images/s of each and their ratio. The path is convzoo's: the zoo model with its recipe's
augmentation, the custom loop's step over train.pipeline (bench/run.py's convzoo_epoch), seeded as
`convzoo train` seeds it.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {"mnist-cnn": "mnist", "cifar10-vgg": "cifar10"}


def data(model, images, data_dir):
    """Training images for the model's dataset (CIFAR-10 from --data-dir, else random pixels:
    the speed does not depend on them), repeated to `images`."""
    import numpy as np

    from convzoo import data as catalog
    from convzoo.data import store
    from convzoo.errors import ConvzooError

    dataset = MODELS[model]
    try:
        folder = os.path.join(ROOT, "data") if dataset == "mnist" else store.data_dir(data_dir)
        x, y = store.load(dataset, folder, "train")
    except ConvzooError:
        info = catalog.get(dataset)
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (256, *info.input_shape), dtype=np.uint8)
        y = np.arange(256) % len(info.classes)
    reps = -(-images // len(y))
    return np.concatenate([x] * reps)[:images], np.concatenate([y] * reps)[:images]


def worker(model, deterministic, images, epochs, data_dir):
    """In a child process: images/s of one setting (median over `epochs` timed epochs)."""
    sys.path.insert(0, ROOT)
    from convzoo import backend, data as catalog, zoo

    keras = backend.load()
    x, y = data(model, images, data_dir)
    keras.utils.set_random_seed(0)
    if deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    spec, info = zoo.get_spec(model), catalog.get(MODELS[model])
    net = zoo.build_model(model, MODELS[model], info.input_shape, len(info.classes), augment=spec.recipe.augment)
    batch = spec.recipe.batch_size
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import run

    epoch = run.convzoo_epoch(keras, net, spec.recipe, spec.head, x, y, batch, steps_per_epoch=-(-images // batch))
    epoch()  # tracing and warm-up
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - t0)
    return images / statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeats", type=int, default=3, help="rounds over both settings")
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per setting per round")
    ap.add_argument("--images", type=int, default=2048, help="S3 images per timed epoch")
    ap.add_argument("--cifar-images", type=int, default=512, help="cifar10-vgg images per timed epoch")
    ap.add_argument("--data-dir", help="where cifar10 is (default: convzoo's; random pixels if missing)")
    ap.add_argument("--only", nargs="*", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--child", nargs=2, metavar=("MODEL", "DETERMINISTIC"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        model, det = args.child
        n = args.images if model == "mnist-cnn" else args.cifar_images
        print(worker(model, det == "1", n, args.epochs, args.data_dir))
        return
    rows = []
    for model in args.only:
        rates = {"0": [], "1": []}
        for round_ in range(args.repeats):
            for det in (("0", "1") if round_ % 2 == 0 else ("1", "0")):  # each takes each place in turn
                cmd = [sys.executable, os.path.abspath(__file__), "--child", model, det,
                       "--images", str(args.images), "--cifar-images", str(args.cifar_images),
                       "--epochs", str(args.epochs)] + (["--data-dir", args.data_dir] if args.data_dir else [])
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode != 0:
                    raise SystemExit(f"{model} deterministic={det} failed:\n{out.stderr[-2000:]}")
                rates[det].append(float(out.stdout.strip().splitlines()[-1]))
                print(f"{model} deterministic={det}: {rates[det][-1]:.1f} images/s", file=sys.stderr)
        off, on = statistics.median(rates["0"]), statistics.median(rates["1"])
        rows.append({"model": model, "images_per_s": round(off, 1), "deterministic_images_per_s": round(on, 1),
                     "deterministic_vs_default": round(on / off, 2),
                     "runs": [round(r, 1) for r in rates["0"]], "deterministic_runs": [round(r, 1) for r in rates["1"]]})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"median of {args.repeats} rounds x {args.epochs} epochs; each setting in its own process")
    print(f"{'model':<14}{'default img/s':>15}{'deterministic':>15}{'ratio':>8}")
    for r in rows:
        print(f"{r['model']:<14}{r['images_per_s']:>15}{r['deterministic_images_per_s']:>15}"
              f"{r['deterministic_vs_default']:>8}")


if __name__ == "__main__":
    main()
