"""Looking inside a model: Grad-CAM, feature maps of each conv layer, the first layer's filters.

Works on Sequential models (keras-io's Grad-CAM example builds a sub-model from `model.inputs`,
which a Sequential loaded from .h5 may not have: keras-team/keras-io#1903). Here the layers are
called one by one under a GradientTape, so any chain of layers works, and the score is the
pre-activation output of the last Dense (softmax and sigmoid heads are unwrapped to their logits).
"""
import os

import numpy as np

from convzoo import heads
from convzoo.errors import ConvzooError


def _is_conv(layer):
    import keras

    return isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                              keras.layers.SeparableConv2D)) or \
        (isinstance(layer, keras.Model) and len(layer.output.shape) == 4)


def conv_blocks(model, with_conv=False):
    """Indices of the layers whose output is a conv block's result: each conv layer, or the
    BatchNormalization/Activation right after it (the feature map after its non-linearity);
    with_conv: (conv index, block end index) pairs."""
    import keras

    ends, layers = [], model.layers
    for i, layer in enumerate(layers):
        if not _is_conv(layer):
            continue
        j = i
        while j + 1 < len(layers) and isinstance(layers[j + 1], (keras.layers.BatchNormalization,
                                                                   keras.layers.Activation,
                                                                   keras.layers.ReLU)):
            j += 1
        ends.append((i, j) if with_conv else j)
    return ends


def _logits(layer, x):
    """The last layer without its softmax/sigmoid: Grad-CAM on saturated probabilities fades. A
    Dense with the activation gives its pre-activation; a separate Activation layer (--logit-scale's
    head) gives its input."""
    import keras

    squash = (keras.activations.softmax, keras.activations.sigmoid)
    if isinstance(layer, keras.layers.Activation) and layer.activation in squash:
        return x
    if isinstance(layer, keras.layers.Dense) and layer.activation in squash:
        z = keras.ops.matmul(x, layer.kernel)
        return z + layer.bias if layer.use_bias else z
    return layer(x, training=False)


def forward(model, x, keep=()):
    """Run the layers one by one on x (a float batch of 0..255 pixels); returns (logits, {index: output})."""
    out, kept = x, {}
    last = len(model.layers) - 1
    for i, layer in enumerate(model.layers):
        out = _logits(layer, out) if i == last else layer(out, training=False)
        if i in keep:
            kept[i] = out
    return out, kept


def class_score(logits, head, c):
    """The pre-activation score of class c: a sigmoid head's one logit counts for class 1, its
    negative for class 0."""
    if head == "sigmoid":
        return logits[:, 0] if c == 1 else -logits[:, 0]
    return logits[:, c]


def gradcam(model, image, head, class_index=None):
    """(heat map in 0..1 at the input's size, class index, probability) for one uint8 image HxWxC."""
    import tensorflow as tf

    blocks = conv_blocks(model)
    if not blocks:
        raise ConvzooError(f"{model.name} has no convolutional layer: Grad-CAM needs one")
    target = blocks[-1]
    x = tf.convert_to_tensor(np.asarray(image, np.float32)[None])
    with tf.GradientTape() as tape:
        out, layers_ = x, model.layers
        for layer in layers_[:target + 1]:
            out = layer(out, training=False)
        fmap = out
        tape.watch(fmap)  # the gradient is taken with respect to this intermediate output
        for layer in layers_[target + 1:-1]:
            out = layer(out, training=False)
        logits = _logits(layers_[-1], out)
        probs = heads.probabilities(logits, head, activated=False)
        c = int(np.argmax(probs[0])) if class_index is None else int(class_index)
        score = class_score(logits, head, c)
    grads = tape.gradient(score, fmap)
    weights = tf.reduce_mean(grads, axis=(1, 2))  # one weight per channel: its mean gradient
    cam = tf.nn.relu(tf.reduce_sum(fmap * weights[:, None, None, :], axis=-1))[0].numpy()
    h, w = image.shape[:2]
    cam = tf.image.resize(cam[..., None], (h, w), method="bilinear").numpy()[..., 0]
    top = cam.max()
    cam = cam / top if top > 0 else np.zeros_like(cam)
    return cam, c, float(probs[0, c])


def feature_maps(model, image):
    """[(layer name, HxWxC array)] for each conv block, for one uint8 image."""
    blocks = conv_blocks(model, with_conv=True)
    _, kept = forward(model, np.asarray(image, np.float32)[None], keep={j for _, j in blocks})
    return [(model.layers[i].name, np.asarray(kept[j])[0]) for i, j in blocks]


def first_filters(model):
    """The first conv layer's kernel (kh, kw, in, out), or None."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            return layer.name, np.asarray(layer.kernel)
    return None


def explain(paths, model_path, output, class_name=None, overwrite=False):
    """For each image: input.png (what the model saw), gradcam.png, one features_<layer>.png per conv
    layer; filters.png once. Returns [{"file", "folder", "label", "probability", "files"}]."""
    from convzoo import checkpoint, plots
    import matplotlib.pyplot as plt

    from convzoo.fileio import check_output
    from convzoo.fileio import save_figure as _save
    from convzoo.predict import expand, to_input

    def save_figure(fig, path):
        _save(fig, path)
        plt.close(fig)  # many images: figures would pile up in memory

    model, meta = checkpoint.load(model_path, need=checkpoint.USE_FIELDS)
    classes = meta["classes"]
    c = None
    if class_name is not None:
        if class_name in classes:
            c = classes.index(class_name)
        elif class_name.isdigit() and int(class_name) < len(classes):
            c = int(class_name)
        else:
            from convzoo.errors import unknown
            raise unknown("class", class_name, classes)
    if not conv_blocks(model):
        raise ConvzooError(f"{model_path}: {meta.get('model')} has no convolutional layer to explain")
    files = expand(paths)
    if not files:
        raise ConvzooError(f"no images found in {', '.join(paths)}")
    check_output(output, overwrite, is_folder=True)
    os.makedirs(output, exist_ok=True)
    results = []
    name, kernel = first_filters(model)
    save_figure(plots.filters(kernel, f"first conv layer ({name}): {kernel.shape[3]} filters "
                                      f"{kernel.shape[0]}x{kernel.shape[1]}"),
                os.path.join(output, "filters.png"))
    used = set()
    for f in files:
        x = to_input(f, meta)
        stem = os.path.splitext(os.path.basename(f))[0]
        base = stem
        n = 2
        while base in used:
            base, n = f"{stem}-{n}", n + 1
        used.add(base)
        folder = os.path.join(output, base)
        os.makedirs(folder, exist_ok=True)
        cam, k, p = gradcam(model, x, meta["head"], c)
        written = []
        save_figure(plots.input_image(x, f"what the model saw: {x.shape[1]}x{x.shape[0]}"
                                         f"x{x.shape[2]}, 0..255"), os.path.join(folder, "input.png"))
        written.append("input.png")
        save_figure(plots.gradcam_pair(x, cam, f"Grad-CAM for {classes[k]} ({p:.3f})"),
                    os.path.join(folder, "gradcam.png"))
        written.append("gradcam.png")
        for i, (lname, fmap) in enumerate(feature_maps(model, x)):
            fn = f"features_{i + 1:02d}_{lname}.png"
            save_figure(plots.feature_grid(fmap, f"{lname}: {fmap.shape[2]} maps of "
                                                 f"{fmap.shape[1]}x{fmap.shape[0]}"),
                        os.path.join(folder, fn))
            written.append(fn)
        results.append({"file": f, "folder": folder, "label": classes[k], "probability": round(p, 6),
                        "files": written})
    return results
