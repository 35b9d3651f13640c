"""One keras.Sequential builder per zoo entry. Every model takes uint8-range pixels: Rescaling is
its first layer, so predict cannot skip it."""
import keras
from keras import layers


def _start(input_shape, augment=()):
    return [keras.Input(shape=input_shape), *augment, layers.Rescaling(1.0 / 255)]


def mnist_cnn(input_shape, num_classes, dataset=None):
    """S3 ("Learning TensorFlow" ch.4); the book reports about 99.2% on MNIST."""
    # the book's weights: truncated normal std 0.1, biases 0.1; its keep_prob=0.5 is Dropout(0.5)
    init = dict(kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.1),
                bias_initializer=keras.initializers.Constant(0.1))
    return keras.Sequential(_start(input_shape) + [
        layers.Conv2D(32, 5, padding="same", activation="relu", **init),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 5, padding="same", activation="relu", **init),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(1024, activation="relu", **init),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax", **init),
    ], name="mnist_cnn")


def _fashion_convnet(input_shape, num_classes, dropout, logits):
    init = dict(kernel_initializer="glorot_uniform", bias_initializer="zeros")
    return _start(input_shape) + [
        layers.Conv2D(10, 3, padding="same", activation="relu", **init),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        *([layers.Dropout(0.5)] if dropout else []),
        layers.Dense(100, activation="relu", **init),
        layers.Dense(num_classes, activation=None if logits else "softmax", **init),
    ]


def fashion_cnn(input_shape, num_classes, dataset=None):
    """S2: the S1 convnet in Keras with a Dropout between the conv part and the dense part."""
    return keras.Sequential(_fashion_convnet(input_shape, num_classes, True, False), name="fashion_cnn")


def fashion_cnn_scratch(input_shape, num_classes, dataset=None):
    """S1: the same convnet ending in logits, trained by the hand-written GradientTape loop."""
    return keras.Sequential(_fashion_convnet(input_shape, num_classes, False, True),
                            name="fashion_cnn_scratch")


def mlp(input_shape, num_classes, dataset=None):
    """S6: 784 - 100 sigmoid - 10 softmax; the notes report validation accuracy 0.815."""
    return keras.Sequential(_start(input_shape) + [
        layers.Flatten(),
        layers.Dense(100, activation="sigmoid"),
        layers.Dense(num_classes, activation="softmax"),
    ], name="mlp")


def _conv(filters, bn):
    if not bn:
        return [layers.Conv2D(filters, 3, padding="same", activation="relu")]
    return [layers.Conv2D(filters, 3, padding="same", use_bias=False),
            layers.BatchNormalization(), layers.Activation("relu")]


def _vgg(input_shape, num_classes, augment, bn, name):
    """Two VGG-style blocks (3x3 conv pairs, 32 then 64 filters), dense 256, dropout."""
    return keras.Sequential(_start(input_shape, augment) + [
        *_conv(32, bn), *_conv(32, bn), layers.MaxPooling2D(2), layers.Dropout(0.1),
        *_conv(64, bn), *_conv(64, bn), layers.MaxPooling2D(2), layers.Dropout(0.2),
        layers.Flatten(),
        layers.Dense(256, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ], name=name)


def mnist_vgg(input_shape, num_classes, dataset=None):
    """S3 improved: 3x3 conv pairs, light shift/rotate/zoom augmentation; the release MNIST model."""
    augment = [layers.RandomRotation(0.03, fill_mode="constant"),
               layers.RandomTranslation(0.1, 0.1, fill_mode="constant"),
               layers.RandomZoom(0.1, fill_mode="constant")]
    return _vgg(input_shape, num_classes, augment, False, "mnist_vgg")


def fashion_vgg(input_shape, num_classes, dataset=None):
    """S2 improved: 3x3 conv pairs with batch norm, flips and shifts; the release Fashion-MNIST model."""
    augment = [layers.RandomFlip("horizontal"),
               layers.RandomTranslation(0.08, 0.08, fill_mode="constant")]
    return _vgg(input_shape, num_classes, augment, True, "fashion_vgg")


BUILDERS = {
    "mnist-cnn": mnist_cnn,
    "fashion-cnn": fashion_cnn,
    "fashion-cnn-scratch": fashion_cnn_scratch,
    "mlp": mlp,
    "mnist-vgg": mnist_vgg,
    "fashion-vgg": fashion_vgg,
}
