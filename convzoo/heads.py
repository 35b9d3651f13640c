"""What each kind of head means, in one place: its output units, training targets, loss, accuracy
and probabilities. softmax: one probability per class; logits (S1): one raw score per class;
sigmoid: one output, the probability of class 1 of two.

No TensorFlow at import (predict's probabilities run without it); Keras comes in as an argument.
"""
import numpy as np

HEADS = ("softmax", "logits", "sigmoid")


def units(head, n_classes):
    """The last Dense layer's units."""
    return 1 if head == "sigmoid" else n_classes


def targets(y, head):
    """Labels as the head's loss wants them: binary cross-entropy takes (n, 1) floats."""
    return y.reshape(-1, 1).astype("float32") if head == "sigmoid" else y


def loss(keras, head, label_smoothing=0.0):
    """The head's loss; label smoothing for a softmax head one-hots the integer labels in the loss,
    so the data pipeline, accuracy and loop stay as they are."""
    if head == "sigmoid":
        return keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
    if not label_smoothing:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=head == "logits")
    from keras import ops

    class SmoothedCrossentropy(keras.losses.Loss):
        def call(self, y_true, y_pred):
            n = ops.shape(y_pred)[-1]
            onehot = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), n)
            return keras.losses.categorical_crossentropy(onehot, y_pred, from_logits=head == "logits",
                                                         label_smoothing=label_smoothing)

    return SmoothedCrossentropy(name="smoothed_crossentropy")


def accuracy(keras, head):
    """The per-image accuracy (1 right, 0 wrong) that compile's metrics=["accuracy"] picks for this
    head's loss; the custom loop sums the same function (tests/test_train.py checks they agree)."""
    return keras.metrics.binary_accuracy if head == "sigmoid" else keras.metrics.sparse_categorical_accuracy


def probabilities(raw, head, activated=True):
    """Model outputs -> class probabilities (n, classes); activated=False: from the last Dense
    layer's scores before its softmax or sigmoid (explain's Grad-CAM works on those)."""
    raw = np.asarray(raw, dtype=np.float64)
    if head == "logits" or (head == "softmax" and not activated):
        e = np.exp(raw - raw.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if head == "sigmoid":
        p = raw.reshape(-1) if activated else (1 + np.tanh(raw.reshape(-1) / 2)) / 2  # the sigmoid
        return np.stack([1 - p, p], axis=1)
    return raw
