"""The training loop: one custom loop, written out with strategy.run under the current
tf.distribute strategy (the default one on one device), runs every recipe, S1's hand-written
GradientTape recipe and --distribute alike (bench/levers.py times it against Keras fit, its
keras_fit row: the custom loop was the faster). It calls Run.end_epoch once per epoch, checks the
loss with runstate.check_finite and takes its accuracy from heads.accuracy.

TensorFlow is imported inside functions; Keras comes in as an argument.
"""
import time

from convzoo import heads
from convzoo.runstate import check_finite


def steps(keras, model, optimizer, loss_fn, head, class_weights=None, grad_scales=None):
    """(train_batch, val_batch): tf.functions that run one global batch through strategy.run on
    every replica of the current strategy and return [loss sum, right answers, images] summed
    over the replicas. The loss is the mean over the global batch (the optimizer sums the
    replicas' gradients), plus the model's regularization losses. class_weights (one per class)
    weight each training image's loss as Keras fit's class_weight does: sum(w * loss) / images;
    accuracy and validation stay unweighted, as fit's metrics=["accuracy"] and evaluate are.
    grad_scales (one per trainable variable, tricks.gradient_scales) multiply the gradients."""
    import tensorflow as tf

    strat = tf.distribute.get_strategy()
    right = heads.accuracy(keras, head)
    weights = None if class_weights is None else tf.constant(class_weights, tf.float32)

    def sums(y, out, weighted=False):
        out = tf.cast(out, tf.float32)  # as Keras' Loss.__call__ does: a float32 loss under mixed precision
        per_example = tf.cast(loss_fn.call(y, out), tf.float32)
        if weighted and weights is not None:  # Keras rounds the label to its class
            per_example *= tf.gather(weights, tf.cast(tf.round(tf.reshape(y, [-1])), tf.int32))
        n = tf.cast(tf.shape(per_example)[0], tf.float32)
        return per_example, tf.stack([tf.reduce_sum(per_example),
                                      tf.reduce_sum(tf.cast(right(y, out), tf.float32)), n])

    def train_step(x, y):
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            per_example, totals = sums(y, out, weighted=True)
            loss = tf.nn.compute_average_loss(per_example)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        grads = tape.gradient(loss, model.trainable_variables)
        if grad_scales:
            grads = [g if s == 1 else g * s for g, s in zip(grads, grad_scales)]
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return totals

    def val_step(x, y):
        return sums(y, model(x, training=False))[1]

    @tf.function(reduce_retracing=True)
    def train_batch(x, y):
        return strat.reduce("SUM", strat.run(train_step, args=(x, y)), axis=None)

    @tf.function(reduce_retracing=True)
    def val_batch(x, y):
        return strat.reduce("SUM", strat.run(val_step, args=(x, y)), axis=None)

    return train_batch, val_batch


def custom(keras, run, loss_fn, train_batches, val_batches, class_weights=None, grad_scales=None):
    """The custom loop over the epochs left. train_batches(epoch) and val_batches() give (x, y)
    batches: datasets or arrays on one device, distributed datasets under --distribute. Every
    worker runs every step, save and collective op in the same order, and sees the same reduced
    totals. As Keras fit does, a run that trained ends with the optimizer's final weights (--ema:
    the average). grad_scales: as steps() takes them."""
    train_batch, val_batch = steps(keras, run.model, run.optimizer, loss_fn, run.spec.head, class_weights,
                                   grad_scales)
    step = 0

    def over(batches, fn, epoch, train):
        nonlocal step
        total = 0.0
        for x, y in batches:
            run.stop.check()
            total = total + fn(x, y).numpy()
            if train:
                check_finite({"loss": total[0]}, epoch)
                step += 1
                run.watch.step_scalars(step, total[0] / total[2], total[1] / total[2])
        return total[0] / max(total[2], 1), total[1] / max(total[2], 1)

    left = run.epochs_left()
    for epoch in left:
        t0 = time.time()
        loss, acc = over(run.watch.epoch_batches(epoch, train_batches(epoch)), train_batch, epoch, True)
        val_loss, val_acc = over(val_batches(), val_batch, epoch, False)
        run.end_epoch(epoch, {"loss": loss, "accuracy": acc, "val_loss": val_loss,
                              "val_accuracy": val_acc}, time.time() - t0)
        if run.stopped_early or run.watch.stop:  # no budget on several workers
            break
    if left:
        run.optimizer.finalize_variable_values(run.model.trainable_variables)
