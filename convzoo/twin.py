"""LiteRT twins of checkpoints: predict and serve run a .h5 through its .tflite twin, without
TensorFlow, whenever ai-edge-litert is installed.

A twin carries the SHA-256 of the checkpoint it was made from (in its metadata, `export.sha256`),
so a twin is used only for that exact file. Bundled models ship theirs beside the .h5 (made by
`convzoo export NAME --format tflite`, self-checked on the test set); any other checkpoint gets one
on first use, written to the user's cache ($XDG_CACHE_HOME/convzoo/twins, else
~/.cache/convzoo/twins) under its hash, never beside the user's file.
"""
import importlib.util
import os

import numpy as np

from convzoo.errors import ConvzooError

TOLERANCE = 1e-4  # largest |probability difference| a twin may show against its checkpoint
CHECK_IMAGES = 16  # random images the first-use twin is checked on
NO_LITERT = "ai-edge-litert is not installed: predicting through TensorFlow (slower start); " \
            "pip install ai-edge-litert for the fast path"


def available():
    return importlib.util.find_spec("ai_edge_litert") is not None


def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "convzoo", "twins")


def _bundled_twin(path):
    """models/X.tflite for a bundled models/X.h5, else None."""
    from convzoo import bundled

    folder = os.path.realpath(bundled.models_dir())
    if os.path.dirname(os.path.realpath(path)) != folder:
        return None
    beside = os.path.splitext(path)[0] + ".tflite"
    return beside if os.path.isfile(beside) else None


def _runner_if_made_from(candidate, digest):
    """A litert.Runner for `candidate` if its metadata says it was made from `digest`, else None."""
    from convzoo import litert

    if not candidate or not os.path.isfile(candidate):
        return None
    try:
        runner = litert.Runner(candidate)
    except ConvzooError:
        return None  # a damaged or foreign file where a twin should be: the checkpoint decides
    made = runner.meta.get("export", {})
    # a quantized export is not a twin: it does not answer within TOLERANCE
    return runner if made.get("sha256") == digest and not made.get("quantize") else None


def find(path):
    """A litert.Runner of `path`'s twin (bundled, else cached), or None."""
    from convzoo.fileio import sha256

    digest = sha256(path)
    return (_runner_if_made_from(_bundled_twin(path), digest)
            or _runner_if_made_from(os.path.join(cache_dir(), f"{digest}.tflite"), digest))


def make(model, meta, path, log):
    """Write the twin of checkpoint `path` (loaded as `model`) to the cache, checked against the
    model on random images; returns its path, or None (said on `log`) when the check fails."""
    import datetime
    import warnings

    from convzoo import __version__, litert
    from convzoo.export import _write_tflite
    from convzoo.fileio import atomic_path, sha256
    from convzoo.predict import probabilities, raw_outputs

    digest = sha256(path)
    folder = cache_dir()
    os.makedirs(folder, mode=0o700, exist_ok=True)
    target = os.path.join(folder, f"{digest}.tflite")
    carried = dict(meta, export={"format": "tflite", "from": os.path.basename(path), "sha256": digest,
                                 "convzoo": __version__, "date": datetime.date.today().isoformat(),
                                 "input": "float32 NHWC holding 0..255 (Rescaling is in the model)"})
    x = np.random.default_rng(0).integers(0, 256, (CHECK_IMAGES, *meta["input_shape"]), dtype=np.uint8)
    try:
        with atomic_path(target) as tmp:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _write_tflite(model, tmp, carried)
            runner = litert.Runner(tmp)
            diff = float(np.abs(probabilities(raw_outputs(model, x), meta["head"]) -
                                probabilities(runner(x), meta["head"])).max())
            if diff > TOLERANCE:
                raise ConvzooError(f"its probabilities differ by {diff:.2g} (limit {TOLERANCE:.0e})")
    except Exception as e:  # noqa: BLE001 -- a failed twin costs speed, never the prediction
        log(f"no LiteRT twin for {path} ({str(e).splitlines()[0][:200] if str(e) else type(e).__name__}); "
            "predicting through TensorFlow")
        return None
    log(f"wrote the LiteRT twin of {path} to {target}: later predictions skip TensorFlow")
    return target


def open_checkpoint(path, log, use_twin=True):
    """(run, meta) for a .h5/.keras checkpoint: its twin on LiteRT when there is one (made on first
    use), else the Keras model."""
    if use_twin and available():
        runner = find(path)
        if runner is not None:
            return runner, runner.meta
    elif use_twin:
        log(NO_LITERT)
    from convzoo import checkpoint
    from convzoo.predict import raw_outputs

    model, meta = checkpoint.load(path, need=checkpoint.USE_FIELDS)
    if use_twin and available():
        make(model, meta, path, log)
    return (lambda x: raw_outputs(model, x)), meta
