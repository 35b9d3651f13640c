"""The record recipes' training tricks, each a Recipe field any zoo model can use: a frozen
patch-whitening first convolution, identity (Dirac) initialisation, batch-norm settings, warm-up
schedules, cutout, a logit scale, a batch-norm shift learning rate, label smoothing (its loss
is heads.loss's).

Every model stays a plain Sequential of built-in Keras layers (the whitening layer is a frozen
Conv2D whose weights are computed from training patches), so checkpoints load under the
allowlist with safe_mode=True and no registered code. Keras is imported inside the functions.
"""
import numpy as np

from convzoo.errors import ConvzooError

WHITEN_NAME = "whiten"
WHITEN_IMAGES = 5000  # airbench fits its whitening on 5,000 training images
LOGIT_SCALE_NAME = "logit_scale"
WHITEN_EPS = 5e-4  # airbench's eps on the eigenvalues (pixels scaled to 0..1)


def check(recipe, model_name):
    """One-line errors for recipe values no model can use."""
    from convzoo import tta

    if not 0 <= recipe.label_smoothing < 1:
        raise ConvzooError(f"--label-smoothing {recipe.label_smoothing}: must be in [0, 1)")
    if not 0 <= recipe.ema < 1:
        raise ConvzooError(f"--ema {recipe.ema}: the averaging momentum must be in [0, 1) (0: off)")
    if not 0 <= recipe.bn_momentum < 1:
        raise ConvzooError(f"--bn-momentum {recipe.bn_momentum}: must be in [0, 1)")
    if recipe.warmup_epochs < 0 or recipe.warmup_epochs >= recipe.epochs:
        raise ConvzooError(f"--warmup-epochs {recipe.warmup_epochs:g}: must be at least 0 and below "
                           f"--epochs {recipe.epochs}")
    if not 0 <= recipe.cutout < 1:
        raise ConvzooError(f"--cutout {recipe.cutout:g}: the square's side is a fraction of the image's, in [0, 1)")
    if not 0 <= recipe.momentum < 1:
        raise ConvzooError(f"--momentum {recipe.momentum:g}: must be in [0, 1)")
    if recipe.momentum and recipe.optimizer == "adam":
        raise ConvzooError("--momentum is for sgd and rmsprop: Adam's momentum is built in (beta_1)")
    if recipe.nesterov and (recipe.optimizer != "sgd" or not recipe.momentum):
        raise ConvzooError("--nesterov needs --optimizer sgd and a --momentum above 0")
    if recipe.weight_decay < 0:
        raise ConvzooError(f"--weight-decay {recipe.weight_decay:g}: must be at least 0")
    if not recipe.logit_scale > 0:  # also NaN: a stored recipe skips click's ranges
        raise ConvzooError(f"--logit-scale {recipe.logit_scale:g}: must be above 0")
    if not recipe.bias_lr > 0:
        raise ConvzooError(f"--bias-lr {recipe.bias_lr:g}: must be above 0")
    if recipe.bias_lr != 1 and recipe.optimizer != "sgd":
        raise ConvzooError(f"--bias-lr {recipe.bias_lr:g} needs --optimizer sgd: {recipe.optimizer} "
                           f"divides a scaled gradient by its own size")
    tta.parse(recipe.tta)
    if takes_layers_from_weights(model_name) and (
            recipe.whiten or recipe.bn_momentum != 0.99 or not recipe.bn_scale or recipe.cutout
            or recipe.logit_scale != 1):
        raise ConvzooError(f"{model_name} takes its layers from pretrained weights: --whiten, "
                           f"--bn-momentum, --no-bn-scale, --cutout and --logit-scale would rebuild them")


def takes_layers_from_weights(model_name):
    """VGG16 and the transfer entries: their layers, batch norm included, are the pretrained base's."""
    from convzoo import zoo

    return zoo.get_spec(model_name).weights != "warm-start"


def apply_to_build(model, recipe):
    """The fresh model with the recipe's architecture fields applied (a whitening layer inserted
    after Rescaling if the builder has none; batch-norm momentum and scale); same object if none."""
    import keras

    bn_differs = any(isinstance(layer, keras.layers.BatchNormalization)
                     and (layer.momentum != recipe.bn_momentum or layer.scale != recipe.bn_scale)
                     for layer in model.layers)
    scale_logits = recipe.logit_scale != 1 and not any(l.name == LOGIT_SCALE_NAME for l in model.layers)
    if not bn_differs and not (recipe.whiten and not _has_whiten(model)) and not recipe.cutout \
            and not scale_logits:
        return model

    cfg = model.get_config()
    layers = cfg["layers"]
    for layer in layers:  # shapes are inferred again from the Input: a new layer changes them
        layer.pop("build_config", None)
    for layer in layers:
        if layer["class_name"] == "BatchNormalization":
            layer["config"]["momentum"] = recipe.bn_momentum
            layer["config"]["scale"] = recipe.bn_scale
    if recipe.whiten and not _has_whiten(model):
        at = next((i for i, layer in enumerate(layers) if layer["class_name"] == "Rescaling"), None)
        if at is None:
            raise ConvzooError(f"{model.name}: no Rescaling layer to put the whitening layer after")
        channels = model.input_shape[-1]
        # "same" keeps every later shape; the builder's own whitening layer (cifar10-air) is "valid"
        conv = whitening_layer(channels, padding="same")
        layers.insert(at + 1, keras.saving.serialize_keras_object(conv))
    if recipe.cutout:  # after the builder's augmentation, on the 0..255 pixels
        at = next((i for i, layer in enumerate(layers) if layer["class_name"] == "Rescaling"), None)
        if at is None:
            raise ConvzooError(f"{model.name}: no Rescaling layer to put the cutout layer before")
        layers.insert(at, keras.saving.serialize_keras_object(cutout_layer(recipe.cutout)))
    if scale_logits:  # Dense(activation) -> Dense(linear), Rescaling(scale), Activation
        head = layers[-1]
        if head["class_name"] != "Dense":
            raise ConvzooError(f"{model.name}: --logit-scale needs a Dense last layer")
        activation, head["config"]["activation"] = head["config"]["activation"], "linear"
        layers += [keras.saving.serialize_keras_object(layer) for layer in (
            keras.layers.Rescaling(recipe.logit_scale, name=LOGIT_SCALE_NAME),
            keras.layers.Activation(activation, dtype="float32", name="head_activation"))]
    return keras.Sequential.from_config(cfg)


def cutout_layer(side):
    """Cutout (DeVries and Taylor 2017) as Keras' RandomErasing: in every training image one square
    of `side` times the image's sides, filled with mid-grey; identity outside training. RandomErasing
    draws each side as sqrt(U(scale)) of the image's, so scale (side**2, side**2) fixes it."""
    import keras

    return keras.layers.RandomErasing(factor=(1.0, 1.0), scale=(side * side, side * side),
                                      fill_value=127.5, value_range=(0, 255), name="cutout")


def whitening_layer(channels, padding="valid"):
    """The frozen 2x2 conv: the patch covariance's eigenvectors and their negatives."""
    import keras

    return keras.layers.Conv2D(2 * 4 * channels, 2, padding=padding, trainable=False, name=WHITEN_NAME)


def _has_whiten(model):
    return any(layer.name == WHITEN_NAME for layer in model.layers)


def whitening_weights(images, eps=WHITEN_EPS):
    """(kernel, bias) of a 2x2 patch-whitening conv from uint8 images (n, h, w, c): the
    eigenvectors of the centred patch covariance scaled by 1/sqrt(eigenvalue + eps), and their
    negatives (airbench94's init_whitening_conv), with a bias that subtracts the mean patch."""
    x = np.asarray(images, np.float64) / 255.0  # the model's Rescaling
    n, h, w, c = x.shape
    patches = np.concatenate([x[:, i:h - 1 + i, j:w - 1 + j, :][..., None]
                              for i in range(2) for j in range(2)], axis=-1)  # (n, h-1, w-1, c, 4)
    # kernel layout (kh, kw, c): the patch vector's order
    patches = patches.reshape(n, h - 1, w - 1, c, 2, 2).transpose(0, 1, 2, 4, 5, 3).reshape(-1, 4 * c)
    mean = patches.mean(axis=0)
    centred = patches - mean
    cov = centred.T @ centred / len(centred)
    values, vectors = np.linalg.eigh(cov)
    values, vectors = values[::-1], vectors[:, ::-1]  # largest first
    scaled = vectors / np.sqrt(np.clip(values, 0, None) + eps)  # (4c, 4c): one filter per column
    filters = np.concatenate([scaled, -scaled], axis=1)  # (4c, 8c)
    kernel = filters.reshape(2, 2, c, 8 * c).astype("float32")
    bias = (-(mean @ filters)).astype("float32")
    return kernel, bias


def fit_whitening(model, images, log=None):
    """Set the model's whitening layer from the first WHITEN_IMAGES training images."""
    layer = model.get_layer(WHITEN_NAME)
    kernel, bias = whitening_weights(images[:WHITEN_IMAGES])
    layer.set_weights([kernel, bias])
    if log:
        log(f"whitening layer fitted on {min(len(images), WHITEN_IMAGES)} training images")


def dirac_init(model):
    """airbench's identity init: in each odd-sized Conv2D (not the whitening layer), the first
    min(in, out) filters pass their input channel straight through (torch.nn.init.dirac_); the
    other filters keep their random init. Returns how many convs were set."""
    import keras

    count = 0
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Conv2D) or layer.name == WHITEN_NAME:
            continue
        kernel, *rest = layer.get_weights()
        kh, kw, cin, cout = kernel.shape
        if kh % 2 == 0 or kw % 2 == 0:
            continue
        k = min(cin, cout)
        kernel[:, :, :, :k] = 0
        kernel[kh // 2, kw // 2, np.arange(k), np.arange(k)] = 1
        layer.set_weights([kernel, *rest])
        count += 1
    return count


def schedule(keras, recipe, steps_per_epoch):
    """The learning rate: a float, or a schedule over the run's steps (warm-up first if asked)."""
    lr, total = recipe.learning_rate, max(steps_per_epoch * recipe.epochs, 1)
    if recipe.schedule == "cosine" and not recipe.warmup_epochs:
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps=total)  # as before warm-ups
    if recipe.schedule == "constant" and not recipe.warmup_epochs:
        return lr
    return _warmup_schedule(keras)(lr, int(round(recipe.warmup_epochs * steps_per_epoch)), total,
                                   recipe.schedule)


def _warmup_schedule(keras):
    from keras import ops

    class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
        """Linear warm-up from 0 to the peak, then constant, linear or cosine decay to 0."""

        def __init__(self, peak, warmup_steps, total_steps, decay):
            self.peak, self.warmup, self.total, self.decay = peak, warmup_steps, total_steps, decay

        def __call__(self, step):
            step = ops.cast(step, "float32")
            up = ops.minimum(1.0, (step + 1) / max(self.warmup, 1)) if self.warmup else 1.0
            frac = ops.clip((step - self.warmup) / max(self.total - self.warmup, 1), 0.0, 1.0)
            if self.decay == "linear":
                down = 1.0 - frac
            elif self.decay == "cosine":
                down = 0.5 * (1.0 + ops.cos(np.pi * frac))
            else:
                down = 1.0
            return self.peak * up * down

        def get_config(self):
            return {"peak": self.peak, "warmup_steps": self.warmup, "total_steps": self.total,
                    "decay": self.decay}

    return WarmupDecay


def gradient_scales(model, recipe):
    """One factor per trainable variable: --bias-lr for the batch-norm shifts (beta), 1 elsewhere;
    None when all are 1. Under SGD a gradient scaled by k is a learning rate k times larger."""
    import keras

    if recipe.bias_lr == 1:
        return None
    shifts = {id(layer.beta) for layer in model.layers
              if isinstance(layer, keras.layers.BatchNormalization) and layer.center}
    return [recipe.bias_lr if id(v) in shifts else 1.0 for v in model.trainable_variables]
