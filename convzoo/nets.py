"""One keras.Sequential builder per zoo entry, and the model surgery training does: a transfer
model from a convzoo base, the inference model (augmentation layers left out) that checkpoints
hold, and a warm start from a checkpoint. Every model takes uint8-range pixels: Rescaling is its
first layer, so predict cannot skip it."""
import keras
from keras import layers

from convzoo import heads
from convzoo.errors import ConvzooError


def _start(input_shape, augment=()):
    return [keras.Input(shape=input_shape), *augment, layers.Rescaling(1.0 / 255)]


def mnist_cnn(input_shape, num_classes, augment=(), **_):
    """S3 ("Learning TensorFlow" ch.4); the book reports about 99.2% on MNIST."""
    # the book's weights: truncated normal std 0.1, biases 0.1; its keep_prob=0.5 is Dropout(0.5)
    init = dict(kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.1),
                bias_initializer=keras.initializers.Constant(0.1))
    return keras.Sequential(_start(input_shape, augment) + [
        layers.Conv2D(32, 5, padding="same", activation="relu", **init),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 5, padding="same", activation="relu", **init),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(1024, activation="relu", **init),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax", **init),
    ], name="mnist_cnn")


def _fashion_convnet(input_shape, num_classes, dropout, logits, augment=()):
    init = dict(kernel_initializer="glorot_uniform", bias_initializer="zeros")
    return _start(input_shape, augment) + [
        layers.Conv2D(10, 3, padding="same", activation="relu", **init),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        *([layers.Dropout(0.5)] if dropout else []),
        layers.Dense(100, activation="relu", **init),
        layers.Dense(num_classes, activation=None if logits else "softmax", **init),
    ]


def fashion_cnn(input_shape, num_classes, augment=(), **_):
    """S2: the S1 convnet in Keras with a Dropout between the conv part and the dense part."""
    return keras.Sequential(_fashion_convnet(input_shape, num_classes, True, False,
                                             augment), name="fashion_cnn")


def fashion_cnn_scratch(input_shape, num_classes, augment=(), **_):
    """S1: the same convnet ending in logits, trained by the hand-written GradientTape loop."""
    return keras.Sequential(_fashion_convnet(input_shape, num_classes, False, True,
                                             augment), name="fashion_cnn_scratch")


def mlp(input_shape, num_classes, augment=(), **_):
    """S6: 784 - 100 sigmoid - 10 softmax; the notes report validation accuracy 0.815."""
    return keras.Sequential(_start(input_shape, augment) + [
        layers.Flatten(),
        layers.Dense(100, activation="sigmoid"),
        layers.Dense(num_classes, activation="softmax"),
    ], name="mlp")


def _conv(filters, bn, size=3):
    if not bn:
        return [layers.Conv2D(filters, size, padding="same", activation="relu")]
    return [layers.Conv2D(filters, size, padding="same", use_bias=False),
            layers.BatchNormalization(), layers.Activation("relu")]


def _vgg(input_shape, num_classes, augment, bn, widths, dropouts, name):
    """VGG-style blocks (pairs of 3x3 convs, then 2x2 pooling), dense 256, dropout 0.5."""
    body = []
    for width, rate in zip(widths, dropouts):
        body += [*_conv(width, bn), *_conv(width, bn), layers.MaxPooling2D(2), layers.Dropout(rate)]
    return keras.Sequential(_start(input_shape, augment) + body + [
        layers.Flatten(),
        layers.Dense(256, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ], name=name)


def mnist_vgg(input_shape, num_classes, augment=(), **_):
    """S3 improved: 3x3 conv pairs, light shift/rotate/zoom augmentation; the release MNIST model."""
    return _vgg(input_shape, num_classes, augment, False, (32, 64), (0.1, 0.2),
                "mnist_vgg")


def fashion_vgg(input_shape, num_classes, augment=(), **_):
    """S2 improved: 3x3 conv pairs with batch norm, flips and shifts; the release Fashion-MNIST model."""
    return _vgg(input_shape, num_classes, augment, True, (32, 64), (0.1, 0.2),
                "fashion_vgg")


def cifar10_cnn(input_shape, num_classes, augment=(), **_):
    """S4: conv 5x5 32/64/128, each with 2x2 pooling, dense 512, dropout, 10 classes."""
    return keras.Sequential(_start(input_shape, augment) + [
        *_conv(32, False, 5), layers.MaxPooling2D(2),
        *_conv(64, False, 5), layers.MaxPooling2D(2),
        *_conv(128, False, 5), layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(512, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ], name="cifar10_cnn")


def cifar10_vgg_small(input_shape, num_classes, augment=(), **_):
    """cifar10-vgg at half width (32/64/128) with heavier dropout: 0.8 M parameters, 82.3% test."""
    return _vgg(input_shape, num_classes, augment, True, (32, 64, 128),
                (0.2, 0.3, 0.4), "cifar10_vgg_small")


def cifar10_vgg(input_shape, num_classes, augment=(), **_):
    """S4 improved: three VGG blocks (64/128/256) with batch norm and no dropout inside them, flips
    and shifts, dropout before a linear classifier; the release CIFAR-10 design."""
    # dropout after every block (cifar10-vgg-small) learns slowly: 82.3% after 40 epochs
    body = []
    for width in (64, 128, 256):
        body += [*_conv(width, True), *_conv(width, True), layers.MaxPooling2D(2)]
    return keras.Sequential(_start(input_shape, augment) + body + [
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ], name="cifar10_vgg")


def _air(input_shape, num_classes, augment, flip, name):
    """airbench94 (Keller Jordan) as a plain Sequential: a frozen 2x2 patch-whitening conv (its
    weights fitted from training patches when training starts), then three blocks of conv - pool -
    batch norm - GELU - conv - batch norm - GELU at 64/256/256, no residual connections; 94.01% on
    CIFAR-10 in 9.9 epochs with Nesterov SGD and its full bag of tricks."""
    from convzoo import tricks

    # airbench's BatchNorm(momentum=0.6, weight=False) in PyTorch terms; the recipe can change both
    def bn():
        return layers.BatchNormalization(momentum=0.4, scale=False)

    aug = []
    if augment:  # airbench: flips and 2-pixel reflected translations (digits get no flips)
        aug = [layers.RandomFlip("horizontal")] if flip else []
        shift = 2 / input_shape[0]
        aug.append(layers.RandomTranslation(shift, shift, fill_mode="reflect", interpolation="nearest"))
    body = [tricks.whitening_layer(input_shape[-1]), layers.Activation("gelu")]
    for width in (64, 256, 256):
        body += [layers.Conv2D(width, 3, padding="same", use_bias=False), layers.MaxPooling2D(2),
                 bn(), layers.Activation("gelu"),
                 layers.Conv2D(width, 3, padding="same", use_bias=False), bn(), layers.Activation("gelu")]
    return keras.Sequential(_start(input_shape, aug) + body + [
        layers.MaxPooling2D(3),
        layers.Flatten(),
        layers.Dense(num_classes, use_bias=False, activation="softmax"),
    ], name=name)


def cifar10_air(input_shape, num_classes, augment=True, **_):
    return _air(input_shape, num_classes, augment, True, "cifar10_air")


def fashion_air(input_shape, num_classes, augment=True, **_):
    return _air(input_shape, num_classes, augment, True, "fashion_air")


def mnist_air(input_shape, num_classes, augment=True, **_):
    return _air(input_shape, num_classes, augment, False, "mnist_air")


def _catsdogs(input_shape, augment, dropout, name):
    """S8 (Deep Learning with Python 5.2): Conv2D 32-64-128-128, each pooled, dense 512, sigmoid."""
    return keras.Sequential(_start(input_shape, augment) + [
        layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(128, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(128, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Flatten(),
        *([layers.Dropout(0.5)] if dropout else []),
        layers.Dense(512, activation="relu"),
        layers.Dense(1, activation="sigmoid"),
    ], name=name)


def catsdogs_cnn(input_shape, num_classes, augment=(), **_):
    """S8 exactly; the book's curves show it over-fitting."""
    return _catsdogs(input_shape, augment, False, "catsdogs_cnn")


def catsdogs_cnn_aug(input_shape, num_classes, augment=(), **_):
    """S9: S8 plus Dropout(0.5) after Flatten, trained with augmentation; about 82% in the book."""
    return _catsdogs(input_shape, augment, True, "catsdogs_cnn_aug")


def catsdogs_vgg(input_shape, num_classes, augment=(), **_):
    """S8 improved: a stride-2 stem, four conv+BN blocks (64-128-128-256), global average pooling,
    S9's augmentation; the release cats-vs-dogs model (target 85% on the test split)."""
    # the stride-2 stem quarters the cost of every later layer: 2 CPU cores must train it
    body = [layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False),
            layers.BatchNormalization(), layers.Activation("relu")]
    for width in (64, 128, 128, 256):
        body += [*_conv(width, True), layers.MaxPooling2D(2)]
    return keras.Sequential(_start(input_shape, augment) + body + [
        layers.GlobalAveragePooling2D(),
        layers.Dropout(0.5),
        layers.Dense(256, activation="relu"),
        layers.Dropout(0.3),
        layers.Dense(1, activation="sigmoid"),
    ], name="catsdogs_vgg")


def _vgg16(input_shape, augment, weights, finetune, name):
    """S11: keras.applications.VGG16 base without its top, a small dense head."""
    base = keras.applications.VGG16(include_top=False, weights=weights, input_shape=tuple(input_shape))
    base.trainable = finetune
    if finetune:  # only the last block learns, as S11 fine-tunes it
        for layer in base.layers:
            layer.trainable = layer.name.startswith("block5")
    return keras.Sequential(_start(input_shape, augment) + [
        base,
        layers.Flatten(),
        layers.Dense(256, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(1, activation="sigmoid"),
    ], name=name)


def vgg16_features(input_shape, num_classes, augment=(), weights=None, **_):
    """S11 feature extraction: frozen VGG16 base; about 90% in the book with ImageNet weights."""
    return _vgg16(input_shape, augment, weights, False, "vgg16_features")


def vgg16_finetune(input_shape, num_classes, augment=(), weights=None, **_):
    """S11 fine-tuning: VGG16 with block5 unfrozen; about 97% in the book with ImageNet weights."""
    return _vgg16(input_shape, augment, weights, True, "vgg16_finetune")


def _transfer(input_shape, num_classes, augment, weights, finetune, name, head="sigmoid"):
    """A convzoo checkpoint's convolutional base (every layer before its Flatten or global pooling)
    under a new head; frozen, or with its last conv block unfrozen (S11's two stages, without
    downloads). A checkpoint of a transfer entry is continued whole: features first, then finetune."""
    from convzoo import checkpoint, zoo

    if not weights:
        raise ConvzooError(f"{name} starts from a convzoo checkpoint: pass --weights CHECKPOINT.h5")
    source, meta = checkpoint.load(weights)
    whole = zoo.is_transfer(meta.get("model", ""))  # stage 2 from stage 1
    if tuple(source.input_shape[1:])[-1:] != tuple(input_shape)[-1:]:
        raise ConvzooError(f"--weights {weights}: its base takes {source.input_shape[-1]}-channel "
                           f"images, these are {input_shape[-1]}-channel; choose a base of the same colour")
    if whole and tuple(source.input_shape[1:]) != tuple(input_shape):
        raise ConvzooError(f"--weights {weights}: a transfer model for input {tuple(source.input_shape[1:])}, "
                           f"not {tuple(input_shape)}")
    cut = next((i for i, layer in enumerate(source.layers)
                if isinstance(layer, (layers.Flatten, layers.GlobalAveragePooling2D))), None)
    if cut is None:
        raise ConvzooError(f"{weights}: no convolutional base (nothing before a Flatten layer)")
    old = [layer for layer in (source.layers if whole else source.layers[:cut])
           if not isinstance(layer, layers.Rescaling) and not is_augmentation(layer)]
    if whole and old[-1].get_config().get("units") != heads.units(head, num_classes):
        raise ConvzooError(f"--weights {weights}: its head has {old[-1].get_config().get('units')} "
                           f"outputs; this dataset needs {name}'s for {num_classes} classes")
    clones = [type(layer).from_config({**layer.get_config(),
                                       "name": layer.name if whole else f"base_{layer.name}"})
              for layer in old]
    out = (layers.Dense(1, activation="sigmoid") if head == "sigmoid"
           else layers.Dense(num_classes, activation="softmax"))
    top = [] if whole else [layers.GlobalAveragePooling2D(), layers.Dropout(0.5),
                            layers.Dense(256, activation="relu"), out]
    # average-pool large images down towards the scale the base learned (150 px -> 50 for a 32 px
    # base: 81.6% validation after 8 frozen epochs, against 78.0% at 75 px)
    k = max(1, round(input_shape[0] / (1.5 * source.input_shape[1])))
    shrink = [layers.AveragePooling2D(k, name="shrink")] if k > 1 and not whole else []
    model = keras.Sequential(_start(input_shape, augment) + shrink + clones + top, name=name)
    for new, src in zip(clones, old):
        new.set_weights(src.get_weights())
    base = clones[:sum(1 for layer in old if source.layers.index(layer) < cut)]
    pools = [i for i, layer in enumerate(base) if isinstance(layer, layers.MaxPooling2D)]
    last_block = pools[-2] + 1 if finetune and len(pools) >= 2 else len(base)
    for i, layer in enumerate(base):
        # batch norm stays frozen (inference mode) while fine-tuning, as is usual
        layer.trainable = i >= last_block and not isinstance(layer, layers.BatchNormalization)
    return model


def catsdogs_transfer(input_shape, num_classes, augment=(), weights=None, **_):
    """S11 without downloads, stage 1: a frozen convzoo conv base (e.g. models/cifar10.h5), new head."""
    return _transfer(input_shape, num_classes, augment, weights, False, "catsdogs_transfer")


def catsdogs_transfer_finetune(input_shape, num_classes, augment=(), weights=None, **_):
    """S11 without downloads, stage 2: the same with the base's last conv block unfrozen."""
    return _transfer(input_shape, num_classes, augment, weights, True, "catsdogs_transfer_finetune")


def transfer(input_shape, num_classes, augment=(), weights=None, **_):
    """catsdogs-transfer for any dataset: a frozen convzoo base, a softmax head for its classes."""
    return _transfer(input_shape, num_classes, augment, weights, False, "transfer", head="softmax")


def transfer_finetune(input_shape, num_classes, augment=(), weights=None, **_):
    """transfer with the base's last conv block unfrozen (stage 2, from a transfer checkpoint)."""
    return _transfer(input_shape, num_classes, augment, weights, True, "transfer_finetune", head="softmax")


def small_cnn(input_shape, num_classes, augment=(), **_):
    """S8's stack for any dataset: Conv2D 32-64-128-128 3x3, each pooled, as many of the four stages
    as the input allows (150 px: all four, S8 exactly; 32 px: three), dropout, dense 512, softmax."""
    body, size = [], input_shape[0]
    for width in (32, 64, 128, 128):
        if (size - 2) // 2 < 1:
            break
        body += [layers.Conv2D(width, 3, activation="relu"), layers.MaxPooling2D(2)]
        size = (size - 2) // 2
    return keras.Sequential(_start(input_shape, augment) + body + [
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(512, activation="relu"),
        layers.Dense(num_classes, activation="softmax"),
    ], name="small_cnn")


def small_vgg(input_shape, num_classes, augment=(), **_):
    """catsdogs-vgg's batch-norm design for any dataset: a stem (stride 2 above 64 px), four conv+BN
    blocks 64-128-128-256 pooled while the image is 2 px or more, global average pool, softmax."""
    big = input_shape[0] > 64
    body = [layers.Conv2D(32, 3, strides=2 if big else 1, padding="same", use_bias=False),
            layers.BatchNormalization(), layers.Activation("relu")]
    size = -(-input_shape[0] // 2) if big else input_shape[0]
    for width in (64, 128, 128, 256):
        body += _conv(width, True)
        if size >= 2:
            body.append(layers.MaxPooling2D(2))
            size //= 2
    return keras.Sequential(_start(input_shape, augment) + body + [
        layers.GlobalAveragePooling2D(),
        layers.Dropout(0.5),
        layers.Dense(256, activation="relu"),
        layers.Dropout(0.3),
        layers.Dense(num_classes, activation="softmax"),
    ], name="small_vgg")


AUGMENTATIONS = {
    "digits": lambda: [layers.RandomRotation(0.03, fill_mode="constant"),
                       layers.RandomTranslation(0.1, 0.1, fill_mode="constant"),
                       layers.RandomZoom(0.1, fill_mode="constant")],
    "garments": lambda: [layers.RandomFlip("horizontal"),
                         layers.RandomTranslation(0.08, 0.08, fill_mode="constant")],
    "small-photos": lambda: [layers.RandomFlip("horizontal"),
                             layers.RandomTranslation(0.1, 0.1, fill_mode="reflect")],
    "small-gray": lambda: [layers.RandomTranslation(0.1, 0.1, fill_mode="constant"),
                           layers.RandomZoom(0.1, fill_mode="constant")],
    # S9's recipe: rotation 40 degrees, shifts 0.2, shear 0.2, zoom 0.2, horizontal flip
    "photos": lambda: [layers.RandomRotation(40 / 360, fill_mode="nearest"),
                       layers.RandomTranslation(0.2, 0.2, fill_mode="nearest"),
                       layers.RandomShear(x_factor=0.2, y_factor=0.2, fill_mode="nearest"),
                       layers.RandomZoom(0.2, fill_mode="nearest"),
                       layers.RandomFlip("horizontal")],
}


def augmentation(kind):
    """A DatasetInfo.augmentation as fresh preprocessing layers: active in training only."""
    if kind not in AUGMENTATIONS:
        from convzoo.errors import unknown

        raise unknown("augmentation", kind, list(AUGMENTATIONS))
    return AUGMENTATIONS[kind]()


def is_augmentation(layer):
    """Augmentation layers hold no weights and act in training only (checkpoints leave them out)."""
    return type(layer).__name__.startswith("Random")


def inference_model(model):
    """The model without its augmentation layers (identity outside training), sharing its weights.

    Checkpoints hold this one: predict runs no random layers, and Keras 3.15 cannot reload a
    saved RandomShear (its stored factors fail its own range check).
    """
    keep = [layer for layer in model.layers if not is_augmentation(layer)]
    if len(keep) == len(model.layers):
        return model
    return keras.Sequential([keras.Input(shape=model.input_shape[1:]), *keep], name=model.name)


def warm_start(model, path):
    """Copy a checkpoint's weights into a fresh model of the same zoo entry, layer by layer (the
    checkpoint was saved without the augmentation layers, which hold no weights)."""
    from convzoo import checkpoint

    source, _ = checkpoint.load(path)
    mine = [layer for layer in model.layers if layer.weights and not is_augmentation(layer)]
    theirs = [layer for layer in source.layers if layer.weights]
    shapes = [[w.shape for w in layer.get_weights()] for layer in mine]
    if shapes != [[w.shape for w in layer.get_weights()] for layer in theirs]:
        raise ConvzooError(f"--weights {path}: its layers do not match {model.name}'s")
    for new, old in zip(mine, theirs):
        new.set_weights(old.get_weights())


BUILDERS = {
    "mnist-cnn": mnist_cnn,
    "fashion-cnn": fashion_cnn,
    "fashion-cnn-scratch": fashion_cnn_scratch,
    "mlp": mlp,
    "mnist-vgg": mnist_vgg,
    "fashion-vgg": fashion_vgg,
    "cifar10-cnn": cifar10_cnn,
    "cifar10-vgg": cifar10_vgg,
    "cifar10-vgg-small": cifar10_vgg_small,
    "cifar10-air": cifar10_air,
    "fashion-air": fashion_air,
    "mnist-air": mnist_air,
    "catsdogs-cnn": catsdogs_cnn,
    "catsdogs-cnn-aug": catsdogs_cnn_aug,
    "catsdogs-vgg": catsdogs_vgg,
    "catsdogs-transfer": catsdogs_transfer,
    "catsdogs-transfer-finetune": catsdogs_transfer_finetune,
    "vgg16-features": vgg16_features,
    "vgg16-finetune": vgg16_finetune,
    "small-cnn": small_cnn,
    "small-vgg": small_vgg,
    "transfer": transfer,
    "transfer-finetune": transfer_finetune,
}
