"""The machine a benchmark ran on: CPU model and the flags that matter, cores, a measured float32
matmul peak, TensorFlow's oneDNN state, thread settings and each framework's version. Every bench
script prints this and stores it in its --json, so results from two machines are never mixed."""
import os
import statistics
import sys
import time
from importlib import metadata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
# the caller's oneDNN setting, before importing convzoo sets its own default
CALLER_ENV = dict(os.environ)

from convzoo import cpu  # noqa: E402  (no TensorFlow import)


def matmul_peak(repeats=3, n=2048):
    """float32 GFLOP/s of an n x n numpy matmul (median of `repeats`)."""
    import numpy as np

    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    a @ a
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def describe(peak=None):
    """A dict for --json: oneDNN as convzoo runs (its default unless the caller set it) and as
    a plain TensorFlow process started by the caller runs."""
    env = os.environ
    i = cpu.info()
    on, why = cpu.onednn_state(i["flags"], env)
    plain_on, plain_why = cpu.onednn_state(i["flags"], CALLER_ENV)
    return {
        "cpu": i["model"], "cores": i["cores"],
        "flags": [f for f in cpu.FLAGS if f in i["flags"]],
        "bf16_hardware": cpu.has_bf16(i["flags"]),
        "matmul_peak_gflops": None if peak is None else round(peak, 1),
        "onednn": "on" if on else "off", "onednn_why": why,
        "onednn_plain_tensorflow": ("on" if plain_on else "off") + f" ({plain_why})",
        "onednn_max_cpu_isa": env.get("ONEDNN_MAX_CPU_ISA"),
        "threads": {k: env.get(k) for k in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
                                            "OMP_NUM_THREADS") if env.get(k)} or "frameworks' defaults",
        "versions": {d: version(d) for d in ("convzoo", "tensorflow", "keras", "torch", "numpy",
                                             "ai-edge-litert")},
    }


def lines(desc):
    """The same as a few printable lines."""
    v = ", ".join(f"{k} {x}" for k, x in desc["versions"].items() if x)
    return [f"machine: {desc['cpu']}, {desc['cores']} cores, flags {' '.join(desc['flags']) or 'unknown'}"
            f"{', bfloat16 in hardware' if desc['bf16_hardware'] else ', no bfloat16 hardware'}",
            f"matmul peak {desc['matmul_peak_gflops']} GFLOP/s (float32, numpy 2048x2048); "
            f"oneDNN in convzoo {desc['onednn']} ({desc['onednn_why']}), in plain TensorFlow "
            f"{desc['onednn_plain_tensorflow']}"
            + (f", ONEDNN_MAX_CPU_ISA={desc['onednn_max_cpu_isa']}" if desc["onednn_max_cpu_isa"] else ""),
            f"threads: {desc['threads']}; {v}"]


if __name__ == "__main__":
    print("\n".join(lines(describe(matmul_peak()))))
