"""The fast path and the server, as ratios to peers measured in the same run.

    python bench/serve.py [--json] [--repeats 5] [--photos 1000] [--requests 200] [--data-dir DIR]

- cold `convzoo predict photo.jpg --model mnist` (whole process; LiteRT twin) beside the same with
  `--no-litert` (the .h5 through TensorFlow) and a bare `python -c "import tensorflow"`;
- `convzoo predict DIR --model mnist` over --photos photo-like JPEGs (bench/photos.py), twin and .h5;
- `convzoo serve --model mnist`: single-image requests (`:classify-image` with a JPEG, `:predict`
  with one instance) from 1 and 8 concurrent clients on 127.0.0.1 (--requests each setting, every
  request with a timeout): requests/s and latency percentiles, beside the same photos through one
  `convzoo predict` process.
Test images come from --data-dir (mnist test split), else the repo's data/ sample.
"""
import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import machine

ROOT = machine.ROOT
EXE = [sys.executable, "-m", "convzoo"]
ENV = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")


def wall(cmd, repeats=1):
    """Median wall seconds of a whole command."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True, env=ENV)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def photos(folder, n, data_dir):
    from convzoo import data as catalog
    import photos as render
    from convzoo.data import store

    x, y = store.load("mnist", data_dir or os.path.join(ROOT, "data"), "test")
    reps = -(-n // len(y))
    import numpy as np

    x, y = np.concatenate([x] * reps)[:n], np.concatenate([y] * reps)[:n]
    return [p for p, _ in render.render_set(x, y, catalog.get("mnist").classes, folder, n, seed=0)]


def start_server():
    proc = subprocess.Popen(EXE + ["serve", "--model", "mnist", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=ENV)
    line = proc.stdout.readline()
    return proc, int(line.rsplit(":", 1)[1].split("/")[0])


def one_request(port, path, body, headers):
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{path}: HTTP {resp.status}")
    finally:
        conn.close()
    return time.perf_counter() - t0


def load_test(port, bodies, clients):
    """(requests/s, latencies in ms) for all `bodies` [(path, body, headers)] over `clients` threads."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        lat = list(pool.map(lambda b: one_request(port, *b), bodies))
    return len(bodies) / (time.perf_counter() - t0), [1000 * t for t in lat]


def pct(values, q):
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q / 100 * len(s)))], 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--photos", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--data-dir")
    args = ap.parse_args()
    rows = {"machine": machine.describe(machine.matmul_peak(3))}
    with tempfile.TemporaryDirectory() as tmp:
        files = photos(os.path.join(tmp, "photos"), max(args.photos, args.requests), args.data_dir)
        one = files[0]
        # cold single predictions, the three commands taking turns
        cold = {"twin": [], "h5": [], "import_tf": []}
        cmds = {"twin": EXE + ["predict", one, "--model", "mnist"],
                "h5": EXE + ["predict", one, "--model", "mnist", "--no-litert"],
                "import_tf": [sys.executable, "-c", "import tensorflow"]}
        for _ in range(args.repeats):
            for k, cmd in cmds.items():
                cold[k].append(wall(cmd))
        c = {k: statistics.median(v) for k, v in cold.items()}
        rows.update({"cold_predict_twin_s": round(c["twin"], 3), "cold_predict_h5_s": round(c["h5"], 3),
                     "import_tensorflow_s": round(c["import_tf"], 3),
                     "cold_twin_vs_h5": round(c["twin"] / c["h5"], 3),
                     "cold_twin_vs_import_tensorflow": round(c["twin"] / c["import_tf"], 3)})
        folder = os.path.join(tmp, "photos")
        n = len(files)
        t_twin = wall(EXE + ["predict", folder, "--model", "mnist", "--json"])
        t_h5 = wall(EXE + ["predict", folder, "--model", "mnist", "--json", "--no-litert"])
        rows.update({"folder_photos": n, "folder_twin_s": round(t_twin, 2), "folder_h5_s": round(t_h5, 2),
                     "folder_twin_vs_h5": round(t_twin / t_h5, 3)})
        # the server against one predict process over the same photos
        some = files[:args.requests]
        t_one = wall(EXE + ["predict", *some, "--model", "mnist", "--json"])
        rows["predict_process_images_per_s"] = round(len(some) / t_one, 1)
        from convzoo import checkpoint, predict

        meta = checkpoint.read_meta(os.path.join(ROOT, "models", "mnist.h5"))
        proc, port = start_server()
        try:
            jpeg = [("/v1/models/mnist:classify-image?top_k=3", open(f, "rb").read(), {"Content-Type": "image/jpeg"})
                    for f in some]
            inst = [("/v1/models/mnist:predict", json.dumps({"instances": [predict.to_input(f, meta).tolist()]}),
                     {"Content-Type": "application/json"}) for f in some]
            load_test(port, jpeg[:10], 1)  # warm up
            for name, bodies in (("classify_image", jpeg), ("predict_json", inst)):
                for clients in (1, 8):
                    rps, lat = load_test(port, bodies, clients)
                    key = f"serve_{name}_{clients}c"
                    rows[key + "_rps"] = round(rps, 1)
                    rows[key + "_p50_ms"], rows[key + "_p90_ms"], rows[key + "_p99_ms"] = (
                        pct(lat, 50), pct(lat, 90), pct(lat, 99))
                    rows[key + "_vs_predict_process"] = round(rps / rows["predict_process_images_per_s"], 2)
        finally:
            proc.terminate()
            proc.wait(30)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print("\n".join(machine.lines(rows.pop("machine"))))
        for k, v in rows.items():
            print(f"{k:<44}{v}")


if __name__ == "__main__":
    main()
