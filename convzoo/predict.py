"""Prediction: turn any image a person has into what the model saw in training, driven by the
checkpoint's stored preprocessing, then rank the classes."""
import os

import numpy as np
from PIL import Image

from convzoo import images
from convzoo.errors import ConvzooError, ImageError
from convzoo.heads import probabilities  # noqa: F401 -- predict.probabilities, as its callers name it


def expand(paths):
    """Files in the order given; folders contribute their images (recursively, sorted)."""
    from convzoo.fileio import walk_files

    out = []
    for p in paths:
        if os.path.isdir(p):
            out += walk_files(p, lambda name: name.lower().endswith(images.EXTENSIONS))
        else:
            out.append(p)
    return out


def _fit_28(gray, fit):
    """A photo of dark ink on light paper (or MNIST-style light on dark) -> 28x28 light on dark."""
    g = gray.astype(np.float64)
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    if np.median(border) > 127:  # light background: invert, as the training images are light-on-dark
        g = 255.0 - g
        border = 255.0 - border
    g = np.clip(g - np.median(border), 0, None)
    top = g.max()
    if top <= 0:
        return np.zeros((28, 28), np.uint8)
    g = g * (255.0 / top)
    ys, xs = np.nonzero(g > 0.25 * 255)
    crop = g[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    box = 20 if fit == "digit" else 28
    h, w = crop.shape
    scale = box / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = np.asarray(Image.fromarray(crop.astype(np.float32), "F").resize((nw, nh), Image.LANCZOS))
    small = np.clip(small, 0, 255)
    out = np.zeros((28, 28), np.float64)
    if fit == "digit":  # MNIST: centre of mass at the centre of the 28x28 field
        total = small.sum()
        cy = (small.sum(1) * np.arange(nh)).sum() / total if total else nh / 2
        cx = (small.sum(0) * np.arange(nw)).sum() / total if total else nw / 2
        top_, left = int(round(14 - cy)), int(round(14 - cx))
    else:  # Fashion-MNIST: the bounding box centred
        top_, left = (28 - nh) // 2, (28 - nw) // 2
    top_ = min(max(top_, 0), 28 - nh)
    left = min(max(left, 0), 28 - nw)
    out[top_:top_ + nh, left:left + nw] = small
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def to_input(path, meta):
    """The model input (uint8, the checkpoint's input shape) for one image file."""
    prep = meta["preprocess"]
    h, w, c = meta["input_shape"]
    if prep.get("fit") in ("digit", "object"):
        return _fit_28(images.read(path, "L"), prep["fit"])[..., None]
    return images.read_sized(path, (h, w), "L" if c == 1 else "RGB")


def raw_outputs(model, x, batch_size=256, progress=None):
    """A Keras model's outputs for a uint8 batch, in chunks sized to the model's activations."""
    batch_size = min(batch_size, getattr(model, "convzoo_batch", batch_size))
    out = []
    for i in range(0, len(x), batch_size):
        out.append(np.asarray(model(x[i:i + batch_size], training=False)))
        if progress:
            progress.update(i + len(out[-1]))
    if progress:
        progress.close()
    return np.concatenate(out) if out else np.zeros((0, 0))


def run_model(model, x, head, batch_size=256, progress=None):
    """Class probabilities for a uint8 batch, in chunks (advancing a progress.Progress if given)."""
    if not len(x):
        return np.zeros((0, 0))
    return probabilities(raw_outputs(model, x, batch_size, progress), head)


def open_model(model_path, log=None, use_twin=True):
    """(run, meta): run maps a uint8 batch to raw outputs. A .tflite runs on the LiteRT interpreter
    without TensorFlow; a .h5/.keras checkpoint through its LiteRT twin (twin.py), else Keras."""
    path = os.fspath(model_path)
    if path.lower().endswith(".tflite"):
        from convzoo import litert

        runner = litert.Runner(path)
        return runner, runner.meta
    if path.lower().endswith(".onnx") or os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ConvzooError(f"{path}: predict runs .h5/.keras checkpoints and .tflite models; serve an "
                           "ONNX file with onnxruntime and a SavedModel with TensorFlow Serving")
    from convzoo import twin

    return twin.open_checkpoint(path, log or (lambda msg: None), use_twin)


def predict(paths, model_path, top_k=3, log=None, use_twin=True, save_input=None, tta=False):
    """[{"file", "predictions": [{"label", "probability"}], "error"}] for every file, with "warnings"
    when an input looks unlike the training images; save_input: a folder for each preprocessed input
    as PNG (adds "input")."""
    from convzoo import inputcheck

    run, meta = open_model(model_path, log, use_twin)
    classes = meta["classes"]
    files = expand(paths)
    if not files:
        raise ConvzooError(f"no images found in {', '.join(paths)}")
    saved = inputcheck.targets(save_input, files) if save_input else [None] * len(files)
    results, batch, where = [], [], []
    for f, target in zip(files, saved):
        results.append({"file": f, "predictions": [], "error": None})
        try:
            x = to_input(f, meta)
            found = inputcheck.check(f, x, meta)
            if found:
                results[-1]["warnings"] = found
            if target:
                inputcheck.save(target, x)
                results[-1]["input"] = target
            batch.append(x)
            where.append(len(results) - 1)
        except ImageError as e:
            results[-1]["error"] = str(e)
    if batch:
        from convzoo import tta as views

        if tta and log:
            log("test-time augmentation: %s (%s)" % views.views_of(meta))
        probs = probabilities(views.outputs(run, np.stack(batch), meta, tta)[0], meta["head"])
        k = max(1, min(top_k, len(classes)))
        for i, p in zip(where, probs):
            if not np.isfinite(p).all():
                results[i]["error"] = (f"{results[i]['file']}: the model's output is not a number "
                                       "(NaN or infinite weights?)")
                continue
            order = np.argsort(-p)[:k]
            results[i]["predictions"] = [{"label": classes[j], "probability": round(float(p[j]), 6)}
                                         for j in order]
    return results
