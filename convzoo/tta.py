"""Test-time augmentation: average a model over the views it was trained to be invariant to.

The views are a recipe field stored in the checkpoint ("mirror", "mirror+shift1", ...). Views are
made in NumPy on the uint8 input, so TTA works the same for a Keras checkpoint and a .tflite.
"""
import numpy as np

from convzoo.errors import ConvzooError

MAX_SHIFT = 4
# checkpoints made before the recipe stored its views: what their dataset's augmentation allows
DATASET_DEFAULT = {"cifar10": "mirror+shift1", "fashion_mnist": "mirror", "cats_vs_dogs": "mirror",
                   "mnist": "none"}


def parse(spec):
    """("mirror" or None, shift in pixels or 0) from "none", "mirror", "shift1", "mirror+shift2"."""
    if spec in (None, "", "none"):
        return None, 0
    mirror, shift = None, 0
    for token in str(spec).split("+"):
        if token == "mirror" and not mirror:
            mirror = "mirror"
        elif token.startswith("shift") and token[5:].isdigit() and 1 <= int(token[5:]) <= MAX_SHIFT \
                and not shift:
            shift = int(token[5:])
        else:
            raise ConvzooError(f"--tta '{spec}': views are none, mirror, shiftN (N = 1 to {MAX_SHIFT}) "
                               f"or both joined by '+', e.g. mirror+shift1")
    return mirror, shift


def views_of(meta):
    """The checkpoint's TTA views and where they came from ("recipe" or "dataset default")."""
    recipe = meta.get("recipe") or {}
    if "tta" in recipe:
        return recipe["tta"], "recipe"
    if recipe.get("augment"):
        return DATASET_DEFAULT.get(meta.get("dataset"), "none"), "dataset default"
    return "none", "no augmentation"


def _shift(x, dy, dx):
    """x moved by (dy, dx) pixels, the uncovered border reflected (as airbench pads)."""
    s = max(abs(dy), abs(dx))
    padded = np.pad(x, ((0, 0), (s, s), (s, s), (0, 0)), mode="reflect")
    h, w = x.shape[1:3]
    return padded[:, s - dy:s - dy + h, s - dx:s - dx + w, :]


def views(x, spec):
    """[(weight, batch)] whose weighted sum of outputs is the TTA output (weights sum to 1).

    airbench94's weighting: half on the image (and its mirror), half on the shifted copies
    (diagonal shifts by -N and +N pixels, each with its mirror)."""
    mirror, shift = parse(spec)
    base = [x, x[:, :, ::-1, :]] if mirror else [x]
    if not shift:
        return [(1.0 / len(base), b) for b in base]
    shifted = [_shift(b, d, d) for d in (-shift, shift) for b in base]
    return [(0.5 / len(base), b) for b in base] + [(0.5 / len(shifted), b) for b in shifted]


def average(run, x, spec, batch_size=512):
    """The weighted mean of run(view) over the views, for a uint8 batch, in chunks."""
    out = []
    for i in range(0, len(x), batch_size):
        chunk = x[i:i + batch_size]
        out.append(sum(w * np.asarray(run(v), np.float64) for w, v in views(chunk, spec)))
    return np.concatenate(out) if out else np.zeros((0, 0))


def outputs(run, x, meta, tta):
    """(raw outputs, views used or None): run(x), or its TTA average over the checkpoint's views."""
    if not tta:
        return run(x), None
    spec, _ = views_of(meta)
    return average(run, x, spec), spec


def probabilities(model, x, meta):
    """A Keras model's class probabilities for a uint8 batch, averaged over the checkpoint's views."""
    from convzoo.predict import probabilities as to_probs, raw_outputs

    spec, _ = views_of(meta)
    return to_probs(average(lambda b: raw_outputs(model, b), x, spec), meta["head"])
