"""Keras fit against convzoo's custom loop (loop.steps under the default strategy), same model, same
data, same optimizer, in one run: why fit stays for the single-device recipes.

    python bench/loops.py [--json] [--repeats 3] [--epochs 2] [--images 4096] [--model mnist-cnn]

Each setting runs in its own process, the settings take turns over the repeats so drift hits them
alike, and the table gives the median training images/s and its ratio to fit. "custom" feeds the
loop from train.pipeline (as --distribute does); "custom_arrays" from NumPy slices (as S1's recipe
does, train.tape_batches).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import machine

ROOT = machine.ROOT
SETTINGS = ("fit", "custom", "custom_arrays")


def worker(setting, model_name, images, epochs):
    """Runs in a child process: training images/s of one setting (median over `epochs` epochs)."""
    import numpy as np

    from convzoo import backend, heads, loop, train, zoo
    from convzoo.data import mnist

    keras = backend.load()
    spec = zoo.get_spec(model_name)
    x, y = mnist.load(os.path.join(ROOT, "data", spec.datasets[0]), "train")  # the bundled IDX sample
    reps = -(-images // len(y))
    x, y = np.concatenate([x] * reps)[:images], np.concatenate([y] * reps)[:images]
    recipe, bs = spec.recipe, spec.recipe.batch_size
    keras.utils.set_random_seed(0)
    model = zoo.build_model(model_name, spec.datasets[0], (28, 28, 1), 10)
    optimizer = train.optimizer(keras, recipe, -(-images // bs))
    if setting == "fit":
        train.compile_model(keras, model, optimizer, spec.head)
        ds = train.pipeline(x, y, bs, shuffle_seed=0)

        def epoch():
            model.fit(ds, epochs=1, shuffle=False, verbose=0)
    else:
        optimizer.build(model.trainable_variables)
        step, _ = loop.steps(keras, model, optimizer, heads.loss(keras, spec.head), spec.head)
        if setting == "custom":
            ds = train.pipeline(x, y, bs, shuffle_seed=0)
        else:
            ds = [(x[i:i + bs], y[i:i + bs]) for i in range(0, len(y), bs)]

        def epoch():
            for xb, yb in ds:
                step(xb, yb).numpy()  # the custom loop reads each step's totals
    epoch()  # tracing and warm-up
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - t0)
    return images / statistics.median(times)


def measure(setting, args):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", setting, "--model", args.model,
           "--images", str(args.images), "--epochs", str(args.epochs)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return None, (out.stderr.strip().splitlines() or ["failed"])[-1][:120]
    return float(out.stdout.strip().splitlines()[-1]), None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeats", type=int, default=3, help="rounds over the settings")
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per setting per round")
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--model", default="mnist-cnn", choices=["mnist-cnn", "mlp", "fashion-cnn-scratch"],
                    help="a zoo model of MNIST or Fashion-MNIST (S1: fashion-cnn-scratch)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(worker(args.child, args.model, args.images, args.epochs))
        return
    desc = machine.describe(machine.matmul_peak(args.repeats))
    rates, errors = {s: [] for s in SETTINGS}, {}
    for _ in range(args.repeats):
        for s in SETTINGS:
            ips, error = measure(s, args)
            if ips is None:
                errors[s] = error
            else:
                rates[s].append(ips)
    base = statistics.median(rates["fit"]) if rates["fit"] else None
    rows = []
    for s in SETTINGS:
        med = statistics.median(rates[s]) if rates[s] else None
        rows.append({"setting": s, "images_per_s": None if med is None else round(med, 1),
                     "vs_fit": None if med is None or not base else round(med / base, 2),
                     "runs": [round(r, 1) for r in rates[s]], "error": errors.get(s)})
    if args.json:
        print(json.dumps({"machine": desc, "rows": rows}, indent=2))
        return
    print("\n".join(machine.lines(desc)))
    print(f"{args.model}, {args.images} images, median of {args.repeats} rounds x {args.epochs} epochs")
    print(f"{'setting':<16}{'images/s':>10}{'vs fit':>9}  runs")
    for r in rows:
        ips = "-" if r["images_per_s"] is None else f"{r['images_per_s']:.0f}"
        ratio = "-" if r["vs_fit"] is None else f"{r['vs_fit']:.2f}x"
        print(f"{r['setting']:<16}{ips:>10}{ratio:>9}  {r['error'] or r['runs']}")


if __name__ == "__main__":
    main()
