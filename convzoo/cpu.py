"""What CPU this is and how TensorFlow is set up for it: the flags that matter for speed, oneDNN
and threads. No TensorFlow import here: `defaults()` must run before TensorFlow starts."""
import os
import platform

# The flags that change which kernels are fast (Linux /proc/cpuinfo spellings).
FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")
# TensorFlow turns oneDNN on by itself only on CPUs with one of these (tensorflow/core/util/util.cc,
# IsMklEnabled); everywhere else its default kernels run unless TF_ENABLE_ONEDNN_OPTS=1.
TF_ONEDNN_BY_ITSELF = ("avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def _cpuinfo():
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return f.read(1 << 20)
    except OSError:
        return ""


def _field(text, key):
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == key:
            return value.strip()
    return ""


def info():
    """{"model", "flags": all flags, "cores"}; flags are empty where /proc/cpuinfo is missing."""
    text = _cpuinfo()
    flags = set(_field(text, "flags").split())
    return {"model": _field(text, "model name") or platform.processor() or platform.machine(),
            "flags": flags, "cores": os.cpu_count() or 1}


def has_bf16(flags=None):
    """True when bfloat16 matmuls run in hardware (AVX512-BF16 or AMX)."""
    flags = info()["flags"] if flags is None else flags
    return any(f in flags for f in BF16_FLAGS)


def precision_warning(precision, flags=None):
    """The one warning for bfloat16 compute on a CPU that emulates it, else None."""
    if precision == "mixed_bfloat16" and not has_bf16(flags):
        return ("warning: this CPU has no bfloat16 hardware (no avx512_bf16 or amx_bf16 flag), so "
                "--precision mixed_bfloat16 is emulated and slower than float32 here")
    return None


def onednn_state(flags=None, env=None):
    """(on, why) for TensorFlow's oneDNN kernels in a process started with `env`."""
    env = os.environ if env is None else env
    given = env.get("TF_ENABLE_ONEDNN_OPTS")
    if given is not None:
        on = given.strip().lower() in ("1", "true")
        return on, "TF_ENABLE_ONEDNN_OPTS=" + given
    flags = info()["flags"] if flags is None else flags
    if any(f in flags for f in TF_ONEDNN_BY_ITSELF):
        return True, "TensorFlow's default on this CPU"
    return False, "TensorFlow's default on this CPU"


def defaults():
    """Before TensorFlow is imported: oneDNN on (1.8x faster training on an AVX2-only CPU, the
    same where TensorFlow already enables it; bench/README.md). A user's own setting wins."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def threads():
    """TensorFlow's (intra, inter) op threads, as the user set them or TensorFlow's default (0)."""
    from convzoo import backend

    backend.load()  # TensorFlow imported quietly
    import tensorflow as tf

    return (tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads())


def describe():
    """One start-up line: 'CPU: AMD EPYC (AVX2 FMA, 2 cores), oneDNN on, threads: TensorFlow's default'."""
    i = info()
    shown = [f.upper() for f in FLAGS if f in i["flags"]] or ["flags unknown"]
    on, _ = onednn_state(i["flags"])
    intra, inter = threads()
    pools = ("TensorFlow's default" if not (intra or inter)
             else f"intra {intra or 'default'}, inter {inter or 'default'}")
    return f"CPU: {i['model']} ({' '.join(shown)}, {i['cores']} cores), oneDNN {'on' if on else 'off'}, threads: {pools}"
