"""Each training-speed lever, measured on the S3 MNIST model against convzoo's default in one run.

    python bench/levers.py [--json] [--repeats 3] [--images 4096] [--only NAME ...]

Every setting runs in its own process (thread counts and the Keras backend are fixed at start-up),
the settings take turns over the repeats so drift hits them alike, and the table gives the median
images/s and its ratio to the default. A minimal PyTorch loop runs in the same rounds as the peer.
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

# name -> settings that differ from convzoo's default path (see train.compile_model / pipeline)
LEVERS = {
    "default": {},
    # oneDNN: convzoo turns it on (convzoo.cpu.defaults); these set it in the child's environment
    "onednn_off": {"env": {"TF_ENABLE_ONEDNN_OPTS": "0"}},
    "onednn_on": {"env": {"TF_ENABLE_ONEDNN_OPTS": "1"}},
    "onednn_isa_avx2": {"env": {"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"}},
    "jit_on": {"jit": True},
    "jit_off": {"jit": False},
    "intra1_inter1": {"intra": 1, "inter": 1},
    "intra2_inter1": {"intra": 2, "inter": 1},
    "intra2_inter2": {"intra": 2, "inter": 2},
    "pipeline_slices": {"pipeline": "slices"},
    "pipeline_gather": {"pipeline": "gather"},
    "arrays_float32": {"pipeline": "arrays", "dtype": "float32"},
    "steps_per_execution_1": {"spe": 1},
    "steps_per_execution_8": {"spe": 8},
    "steps_per_execution_32": {"spe": 32},
    "batch_64": {"batch": 64},
    "batch_256": {"batch": 256},
    "mixed_bfloat16": {"policy": "mixed_bfloat16"},
    "backend_jax": {"backend": "jax"},
    "backend_torch": {"backend": "torch"},
    # convzoo's custom loop (loop.steps, the default strategy) instead of Keras fit: fed by
    # train.pipeline as --distribute does, or by NumPy slices as S1's recipe does
    "custom_loop": {"loop": "pipeline"},
    "custom_loop_arrays": {"loop": "arrays"},
}


def set_threads(intra=None, inter=None):
    """TensorFlow's thread pools (before any op runs); None keeps TensorFlow's default."""
    import tensorflow as tf

    if intra:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
    if inter:
        tf.config.threading.set_inter_op_parallelism_threads(inter)


def worker(cfg, images, repeats):
    """Runs in a child process: images/s of one setting (median over `repeats` epochs)."""
    if cfg.get("backend"):
        os.environ["KERAS_BACKEND"] = cfg["backend"]
    sys.path.insert(0, ROOT)
    import numpy as np

    from convzoo import heads, loop, train, zoo
    from convzoo.data import mnist

    if cfg.get("backend", "tensorflow") == "tensorflow":
        set_threads(cfg.get("intra"), cfg.get("inter"))
    import keras

    x, y = mnist.load(os.path.join(ROOT, "data", "mnist"), "train")
    reps = -(-images // len(y))
    x, y = np.concatenate([x] * reps)[:images], np.concatenate([y] * reps)[:images]
    if cfg.get("dtype") == "float32":
        x = x.astype("float32")
    if cfg.get("policy"):
        keras.mixed_precision.set_global_policy(cfg["policy"])
    batch = cfg.get("batch", 128)
    recipe = zoo.get_spec("mnist-cnn").recipe.with_overrides(batch_size=batch)
    model = zoo.build_model("mnist-cnn", "mnist", (28, 28, 1), 10)
    optimizer = train.optimizer(keras, recipe, 1000)
    kind = cfg.get("pipeline", train.PIPELINE)
    if cfg.get("loop"):
        optimizer.build(model.trainable_variables)
        step, _ = loop.steps(keras, model, optimizer, heads.loss(keras, "softmax"), "softmax")
        ds = ([(x[i:i + batch], y[i:i + batch]) for i in range(0, len(y), batch)] if cfg["loop"] == "arrays"
              else train.pipeline(x, y, batch, shuffle_seed=0, kind=kind))

        def epoch():
            for xb, yb in ds:
                step(xb, yb).numpy()  # the custom loop reads each step's totals
    else:
        train.compile_model(keras, model, optimizer, "softmax", jit=cfg.get("jit", train.JIT),
                            steps_per_execution=cfg.get("spe", train.STEPS_PER_EXECUTION))
        ds = (x, y) if kind == "arrays" else train.pipeline(x, y, batch, shuffle_seed=0, kind=kind)

        def epoch():
            if kind == "arrays":
                model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
            else:
                model.fit(ds, epochs=1, shuffle=False, verbose=0)
    epoch()  # tracing and warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - t0)
    return images / statistics.median(times)


def torch_worker(images, repeats):
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import run

    x, y = run.mnist_data(images)
    return run.torch_loop(x, y, 128, repeats)


def measure(name, images, repeats):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--images", str(images),
           "--repeats", str(repeats)]
    env = {k: v for k, v in machine.CALLER_ENV.items() if k != "KERAS_BACKEND"}  # before convzoo set its defaults
    env.update((LEVERS.get(name) or {}).get("env", {}))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["failed"])[-1]
        return None, last[:120]
    return float(out.stdout.strip().splitlines()[-1]), None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeats", type=int, default=3, help="rounds over all settings")
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per setting per round")
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--only", nargs="*", help="a subset of: " + ", ".join(LEVERS) + ", pytorch")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        if args.child == "pytorch":
            ips = torch_worker(args.images, args.repeats)
            if ips is None:
                sys.exit("torch is not installed")
        else:
            ips = worker(LEVERS[args.child], args.images, args.repeats)
        print(ips)
        return
    names = args.only or [*LEVERS, "pytorch"]
    if "default" not in names:
        names.insert(0, "default")
    rates = {n: [] for n in names}
    errors = {}
    for _ in range(args.repeats):
        for n in names:
            ips, error = measure(n, args.images, args.epochs)
            if ips is None:
                errors[n] = error
            else:
                rates[n].append(ips)
    base = statistics.median(rates["default"]) if rates["default"] else None
    rows = []
    for n in names:
        med = statistics.median(rates[n]) if rates[n] else None
        rows.append({"setting": n, **(LEVERS.get(n) or {}),
                     "images_per_s": None if med is None else round(med, 1),
                     "vs_default": None if med is None or not base else round(med / base, 2),
                     "runs": [round(r, 1) for r in rates[n]], "error": errors.get(n)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("\n".join(machine.lines(machine.describe(machine.matmul_peak()))))
    print(f"S3 MNIST model, {args.images} images, median of {args.repeats} rounds x "
          f"{args.epochs} epochs, {os.cpu_count()} cores")
    print(f"{'setting':<24}{'images/s':>10}{'vs default':>12}  runs")
    for r in rows:
        ips = "-" if r["images_per_s"] is None else f"{r['images_per_s']:.0f}"
        ratio = "-" if r["vs_default"] is None else f"{r['vs_default']:.2f}x"
        print(f"{r['setting']:<24}{ips:>10}{ratio:>12}  {r['error'] or r['runs']}")


if __name__ == "__main__":
    main()
