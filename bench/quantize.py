"""float32 against int8 LiteRT models of the bundled checkpoints: size, test accuracy and speed,
measured in one run, the two taking turns.

    python bench/quantize.py --int8-dir DIR [--data-dir DIR] [--limit 2000] [--repeats 3] [--json]

DIR holds NAME_int8.tflite from `convzoo export NAME --format tflite --quantize int8`; the float
models are the shipped models/NAME.tflite. Speed: images/s one image at a time and in batches of 64.
"""
import argparse
import json
import os
import statistics
import time

import numpy as np

import machine

ROOT = machine.ROOT


def rate(runner, x, batch, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(0, len(x), batch):
            runner(x[i:i + batch])
        times.append(time.perf_counter() - t0)
    return len(x) / statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--int8-dir", required=True)
    ap.add_argument("--data-dir")
    ap.add_argument("--limit", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from convzoo import bundled, litert
    from convzoo import data as catalog
    from convzoo.data import store
    from convzoo.predict import probabilities

    rows = []
    for name in bundled.names():
        f32 = os.path.join(bundled.models_dir(), f"{name}.tflite")
        i8 = os.path.join(args.int8_dir, f"{name}_int8.tflite")
        if not (os.path.isfile(f32) and os.path.isfile(i8)):
            continue
        runners = {"float32": litert.Runner(f32), "int8": litert.Runner(i8)}
        meta = runners["float32"].meta
        x, y = store.load(meta["dataset"], store.data_dir(args.data_dir), "test")
        # the same subset --limit takes everywhere: per class where the files come sorted by class
        x, y = store.subset(x, np.asarray(y, int), args.limit, catalog.get(meta["dataset"], args.data_dir))
        row = {"model": name, "n": len(y)}
        for kind, r in runners.items():
            p = probabilities(r(x), meta["head"])
            row[f"{kind}_accuracy"] = round(float((p.argmax(1) == y).mean()), 4)
            row[f"{kind}_mb"] = round(os.path.getsize(f32 if kind == "float32" else i8) / 2**20, 2)
        few = x[:200 if meta["input_shape"][0] > 32 else 1000]
        for batch in (1, 64):
            got = {k: [] for k in runners}
            for _ in range(args.repeats):  # the two take turns
                for k, r in runners.items():
                    got[k].append(rate(r, few, batch, 1))
            for k in runners:
                row[f"{k}_b{batch}_images_per_s"] = round(statistics.median(got[k]), 1)
            row[f"int8_vs_float32_b{batch}"] = round(row[f"int8_b{batch}_images_per_s"] /
                                                     row[f"float32_b{batch}_images_per_s"], 2)
        rows.append(row)
    out = {"machine": machine.describe(machine.matmul_peak(3)), "rows": rows}
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print("\n".join(machine.lines(out["machine"])))
        for r in rows:
            print(json.dumps(r))


if __name__ == "__main__":
    main()
