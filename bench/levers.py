"""Each training-speed lever, measured on the S3 MNIST model against convzoo's default in one run.

    python bench/levers.py [--json] [--repeats 3] [--images 4096] [--only NAME ...]

Every setting runs in its own process (thread counts and the Keras backend are fixed at start-up),
the settings take turns over the repeats so drift hits them alike, and the table gives the median
images/s and its ratio to the default. convzoo's default is its custom loop (loop.steps over
train.pipeline, as `convzoo train` runs every recipe); keras_fit is Keras fit on the same model,
optimizer and pipeline with the compile settings convzoo used when fit ran its recipes (the loop
stays custom while it is the faster); a minimal PyTorch loop runs in the same rounds as a peer.
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

# Keras fit as convzoo compiled it when fit ran its recipes (the keras_fit rows)
FIT_JIT = "auto"  # no XLA on a CPU-only machine
FIT_STEPS_PER_EXECUTION = 8  # fewer Python round trips per epoch: 1.09-1.15x on S3 under fit

# name -> settings that differ from convzoo's default path (bench/run.py's convzoo_epoch)
LEVERS = {
    "default": {},
    # oneDNN: convzoo turns it on (convzoo.cpu.defaults); these set it in the child's environment
    "onednn_off": {"env": {"TF_ENABLE_ONEDNN_OPTS": "0"}},
    "onednn_on": {"env": {"TF_ENABLE_ONEDNN_OPTS": "1"}},
    "onednn_isa_avx2": {"env": {"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"}},
    "intra1_inter1": {"intra": 1, "inter": 1},
    "intra2_inter1": {"intra": 2, "inter": 1},
    "intra2_inter2": {"intra": 2, "inter": 2},
    "pipeline_slices": {"pipeline": "slices"},
    "pipeline_gather": {"pipeline": "gather"},
    "arrays_uint8": {"pipeline": "arrays"},  # NumPy batches, as S1's recipe feeds the loop
    "arrays_float32": {"pipeline": "arrays", "dtype": "float32"},
    "batch_64": {"batch": 64},
    "batch_256": {"batch": 256},
    "mixed_bfloat16": {"policy": "mixed_bfloat16"},
    # the peer: Keras fit (compile + fit over the same pipeline), and its own levers
    "keras_fit": {"fit": True},
    "keras_fit_jit_on": {"fit": True, "jit": True},
    "keras_fit_steps_per_execution_1": {"fit": True, "spe": 1},
    "keras_fit_steps_per_execution_32": {"fit": True, "spe": 32},
    "keras_fit_backend_jax": {"fit": True, "backend": "jax"},  # the custom loop is TensorFlow's
    "keras_fit_backend_torch": {"fit": True, "backend": "torch"},
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
    from convzoo import heads, train, zoo

    if cfg.get("backend", "tensorflow") == "tensorflow":
        set_threads(cfg.get("intra"), cfg.get("inter"))
    import keras

    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import run

    x, y = run.mnist_data(images)
    if cfg.get("dtype") == "float32":
        x = x.astype("float32")
    if cfg.get("policy"):
        keras.mixed_precision.set_global_policy(cfg["policy"])
    batch = cfg.get("batch", 128)
    recipe = zoo.get_spec("mnist-cnn").recipe.with_overrides(batch_size=batch)
    model = zoo.build_model("mnist-cnn", "mnist", (28, 28, 1), 10)
    if cfg.get("fit"):
        model.compile(optimizer=train.optimizer(keras, recipe, 1000), loss=heads.loss(keras, "softmax"),
                      metrics=["accuracy"], jit_compile=cfg.get("jit", FIT_JIT),
                      steps_per_execution=cfg.get("spe", FIT_STEPS_PER_EXECUTION))
        ds = train.pipeline(x, y, batch, shuffle_seed=0)

        def epoch():
            model.fit(ds, epochs=1, shuffle=False, verbose=0)
    else:
        epoch = run.convzoo_epoch(keras, model, recipe, "softmax", x, y, batch,
                                  kind=cfg.get("pipeline", train.PIPELINE))
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
