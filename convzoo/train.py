"""Training: train() runs a plan (plan.py: `convzoo train`'s options resolved and checked) end to
end: set up TensorFlow's devices, load the data, build the model (model surgery: nets.py), make the
recipe's optimizer, time a few steps, then run loop.py's custom loop fed by the recipe's batches
(the tf.data pipeline in Keras fit's order, S1's NumPy batches, or the distributed datasets of
--distribute). The per-epoch state (history, checkpoint, state.npz, run folder) is runstate.Run's.
"""
import dataclasses
import math
import os
import shutil
import sys
import time

import numpy as np

from convzoo import backend, cpu, distributed, heads, interrupt, loop, tricks, watch, zoo
from convzoo import data as catalog
from convzoo.data import store
from convzoo.errors import ConvzooError, Diverged, Interrupted  # noqa: F401 -- train.Diverged
from convzoo.fileio import real_folder
from convzoo.plan import Plan, default_output, load_data, next_free, plan  # noqa: F401 -- train.plan
from convzoo.runstate import Run, locked

PIPELINE = "gather"  # the input pipeline's kind, measured by bench/levers.py (see bench/README.md)


def optimizer(keras, recipe, steps_per_epoch, decay_from=0):
    """The recipe's optimizer. A run extended by --resume --epochs (decay_from: the epochs run
    before) gets its schedule, warm-up included, anew over the added epochs."""
    # --ema: the weights become their running average after every epoch, so each epoch's
    # validation score and checkpoint are the averaged weights'
    opts = dict(use_ema=True, ema_momentum=recipe.ema, ema_overwrite_frequency=steps_per_epoch) \
        if recipe.ema else {}
    lr = tricks.schedule(keras, dataclasses.replace(recipe, epochs=recipe.epochs - decay_from), steps_per_epoch)
    if decay_from and not isinstance(lr, float):
        lr = _shifted(keras, lr, steps_per_epoch * decay_from)
    if recipe.optimizer != "adam" and recipe.momentum:
        opts["momentum"] = recipe.momentum
    if recipe.nesterov:
        opts["nesterov"] = True
    return {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop,
            "sgd": keras.optimizers.SGD}[recipe.optimizer](
        learning_rate=lr, weight_decay=recipe.weight_decay or None, **opts)


def _shifted(keras, schedule, start):
    """`schedule` begun at step `start` instead of 0."""

    class Shifted(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            return schedule(keras.ops.maximum(step - start, 0))

    return Shifted()


def train(p, log=lambda msg: print(msg, file=sys.stderr), opts=None):
    """Train per plan `p` (watched per `opts`, a watch.Options); returns the checkpoint metadata."""
    opts, started = opts or watch.Options(), time.monotonic()
    keras = backend.load()
    if p.distribute == "multiworker":  # the strategy waits here until every worker has joined
        task = distributed.parse_tf_config(p.distribute)
        log(f"{task.type} {task.index} of {task.workers} workers{' (chief)' if task.chief else ''}: "
            f"waiting for every worker to join")
    strategy = distributed.strategy(p.distribute, p.devices)  # before anything sets up TF's devices
    if strategy is None:
        return _train(p, log, keras, None, opts, started)
    with strategy.scope():  # the model, optimizer and training loop under the strategy
        meta = _train(p, log, keras, strategy, opts, started)
    if p.non_chief:
        distributed.remove_worker_copy(p.output, p.run_dir)
    return meta


def _train(p, log, keras, strategy, opts, started):
    created = not os.path.lexists(p.run_dir)
    with interrupt.graceful(log) as stop:
        run = None
        try:
            with locked(p.output, log):  # before the data is loaded; removed however the run ends
                run = _setup(p, log, keras, stop)
                _loop(p, keras, strategy, run, opts, started)
                if run.watch and run.watch.stop:
                    log(run.watch.stop_message)
                return run.finish()
        except KeyboardInterrupt:
            raise Interrupted(_interrupted(p, run.done if run else 0, created)) from None


def _setup(p, log, keras, stop):
    """Load the data, build the model and its Run; from here on Ctrl-C waits for the step."""
    info = catalog.get(p.dataset, p.data_dir)
    spec = zoo.get_spec(p.model)
    x_tr, y_tr, x_va, y_va = load_data(p)
    log(cpu.describe())
    warning = cpu.precision_warning(p.recipe.precision)
    if warning:
        log(warning)
    keras.utils.set_random_seed(p.seed)  # weights, data order, augmentation (the split has its own seed)
    if p.deterministic:  # and the same result from every op, at a cost (see --deterministic's help)
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    y_tr, y_va = heads.targets(y_tr, spec.head), heads.targets(y_va, spec.head)
    keras.mixed_precision.set_global_policy(p.recipe.precision)
    try:
        model = build(p, info)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    run = Run(p, model, info, spec, len(y_tr), len(y_va), log)
    run.stop, stop.armed = stop, True
    run.data = x_tr, y_tr, x_va, y_va
    log(f"training {p.model} ({spec.source}, {model.count_params():,} parameters) on {p.dataset}: "
        f"{len(y_tr)} training / {len(y_va)} validation images, {p.recipe.optimizer} "
        f"lr {p.recipe.learning_rate}, batch {p.recipe.batch_size}, {p.recipe.epochs} epochs"
        + ("" if p.recipe.precision == "float32" else f", {p.recipe.precision}"))
    return run


def _loop(p, keras, strategy, run, opts, started):
    """Restore a resumed run, then run the recipe's loop over the epochs left."""
    log, spec = run.log, run.spec
    x_tr, y_tr, x_va, y_va = run.data
    if strategy:
        run.distribute = distributed.describe(strategy, p.distribute)
        log(distributed.summary(run.distribute, p.recipe.batch_size))
    if not p.resume and not p.weights:  # fresh weights: the recipe's data-dependent init
        if p.recipe.whiten:
            tricks.fit_whitening(run.model, x_tr, log)
        if p.recipe.dirac:
            log(f"identity init in {tricks.dirac_init(run.model)} conv layers")
    run.optimizer = optimizer(keras, p.recipe, math.ceil(len(y_tr) / p.recipe.batch_size), p.decay_from)
    run.optimizer.build(run.model.trainable_variables)
    if p.resume:
        run.restore_state()
        if p.decay_from and p.decay_from == run.done and p.decay_from < p.recipe.epochs:
            log(f"the {p.recipe.schedule} schedule starts anew over epochs {run.done + 1}-{p.recipe.epochs}")
        if run.stopped_early:
            log(f"this run already stopped early at epoch {run.stopped_early} ({p.monitor} had not "
                f"improved for {p.early_stop} epochs); {p.output} holds epoch {run.best_epoch}'s weights; "
                f"to train on from them: convzoo train {p.dataset} --model {p.model} --weights {p.output} "
                f"--output {next_free(p.output)}")
    bs = p.recipe.batch_size
    if run.epochs_left() and (not opts.quiet or opts.time_budget):  # timed before anything is written
        rates = _measure(keras, run, strategy)
        log(watch.estimate_line(rates, p.recipe.epochs, len(y_tr), len(y_va), bs, run.done))
        watch.check_budget(opts, rates, len(y_tr), len(y_va), p.recipe.epochs - run.done, started)
    real_folder(p.run_dir, "run folder")
    run.watch = watch.Watch(opts, len(y_tr), bs, p.recipe.epochs, run.done, started)
    if opts.tensorboard and run.epochs_left():
        run.watch.writers = watch.summary_writers(p.run_dir, fresh=not p.resume)
        run.watch.optimizer = run.optimizer
    weights = balanced_weights(y_tr, len(run.info.classes)) if p.class_weight and run.epochs_left() else None
    if weights:
        log("class weights (balanced): " + ", ".join(f"{run.info.classes[c]} {w:.3f}" for c, w in weights.items()))
    weights = weights and [weights[c] for c in range(len(weights))]
    loss = heads.loss(keras, spec.head, p.recipe.label_smoothing)
    scales = tricks.gradient_scales(run.model, p.recipe)
    if strategy is not None:  # S1 distributes its own batches: a dataset per epoch in its order
        train = (lambda epoch: pipeline(x_tr, y_tr, bs, order=tape_order(p.seed, epoch, len(y_tr)))) \
            if p.recipe.loop == "tape" else pipeline(x_tr, y_tr, bs, shuffle_seed=p.seed)
        train_batches, val_batches = distributed.datasets(strategy, run, train, pipeline(x_va, y_va, bs))
        with distributed.worker_errors(run):
            loop.custom(keras, run, loss, train_batches, val_batches, weights, scales)
        return
    if p.recipe.loop == "tape":
        train_batches, val_batches = tape_batches(run)
    else:
        train_batches, val_batches = fit_batches(run)
    loop.custom(keras, run, loss, train_batches, val_batches, weights, scales)


def tape_batches(run):
    """S1's data order: each epoch a permutation seeded by (seed, epoch), so a resumed run sees the
    same batches as one that was never stopped; validation in chunks of 1024."""
    (x_tr, y_tr, x_va, y_va), bs = run.data, run.p.recipe.batch_size

    def train_batches(epoch):
        order = tape_order(run.p.seed, epoch, len(y_tr))
        return ((x_tr[order[i:i + bs]], y_tr[order[i:i + bs]]) for i in range(0, len(order), bs))

    def val_batches():
        return ((x_va[i:i + 1024], y_va[i:i + 1024]) for i in range(0, len(y_va), 1024))

    return train_batches, val_batches


def tape_order(seed, epoch, n):
    """S1's images of one epoch, in order: a permutation seeded by (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def fit_batches(run):
    """The input pipeline in Keras fit's data order: one shuffling dataset, a new iterator each
    epoch and one more, unused, at each epoch's end (Keras' EpochIterator does that, and each
    iterator draws the next shuffle), so a run gives the same batches as it did under fit."""
    (x_tr, y_tr, x_va, y_va), bs = run.data, run.p.recipe.batch_size
    train_ds, val_ds = pipeline(x_tr, y_tr, bs, shuffle_seed=run.p.seed), pipeline(x_va, y_va, bs)
    first = run.done

    def train_batches(epoch):
        if epoch > first:
            iter(train_ds)
        return train_ds

    return train_batches, (lambda: val_ds)


def _measure(keras, run, strategy):
    """A few timed steps of this run's loop (watch.py), leaving the model and optimizer as they were."""
    p, (x_tr, y_tr, x_va, y_va) = run.p, run.data
    return watch.measure(keras, run.model, optimizer(keras, p.recipe, 1),
                         heads.loss(keras, run.spec.head, p.recipe.label_smoothing), run.spec.head,
                         x_tr, y_tr, x_va, p.recipe.batch_size, strategy,
                         fixed=p.distribute == "multiworker", check=run.stop.check)


def _interrupted(p, done, created):
    """The message for a stopped run, with a command that works; a run stopped before its first
    epoch ended leaves nothing behind (an existing run folder, with --overwrite, stays)."""
    if done:
        return (f"interrupted; {p.output} holds epoch {done} of {p.recipe.epochs}; continue with: "
                f"{p.command(resume=True)}")
    if p.resume:
        return f"interrupted; continue with: {p.command(resume=True)}"
    if created:
        shutil.rmtree(p.run_dir, ignore_errors=True)
    return f"interrupted before the first epoch ended; nothing was kept; start again with: {p.command()}"


def balanced_weights(y, k):
    """{class: n / (k * n_class)}: inverse class frequency, 1 on average over the images
    (scikit-learn's "balanced"); a class with no training image gets 0."""
    counts = np.bincount(np.asarray(y, int).reshape(-1), minlength=k)
    return {c: (float(len(y) / (k * n)) if n else 0.0) for c, n in enumerate(counts)}


def pipeline(x, y, batch_size, shuffle_seed=None, kind=None, order=None):
    """A tf.data input pipeline over decoded uint8 images held in memory (decoded once, every file
    checked, and cached on disk by the data loaders). Pixels stay uint8 until the model's Rescaling
    layer; augmentation layers run inside the model. kind "gather" shuffles indices and gathers
    whole batches (one op per batch); "slices" shuffles and batches single images. `order`: the
    images' indices in the order to batch them, instead of 0..n-1 (S1's, under --distribute)."""
    import tensorflow as tf

    kind = kind or PIPELINE
    ds = tf.data.Dataset.range(len(y)) if order is None else \
        tf.data.Dataset.from_tensor_slices(np.asarray(order, np.int64))  # indices
    if isinstance(x, (np.memmap, store.Rows)):  # over the memory budget: read from disk per batch
        rows = store.Rows(x)
        if shuffle_seed is not None:
            ds = ds.shuffle(len(y), seed=shuffle_seed, reshuffle_each_iteration=True)

        def read(i):
            xb, yb = tf.numpy_function(lambda k: (rows[k], y[k]), [i], (tf.uint8, tf.as_dtype(y.dtype)))
            return tf.ensure_shape(xb, (None,) + rows.shape[1:]), tf.ensure_shape(yb, (None,) + y.shape[1:])
        return ds.batch(batch_size).map(read, num_parallel_calls=2, deterministic=True).prefetch(2)
    if kind == "slices":
        ds = tf.data.Dataset.from_tensor_slices((x, y) if order is None else (x[order], y[order]))
        if shuffle_seed is not None:
            ds = ds.shuffle(len(y), seed=shuffle_seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    xs, ys = tf.constant(x), tf.constant(y)
    if shuffle_seed is not None:
        ds = ds.shuffle(len(y), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(lambda i: (tf.gather(xs, i), tf.gather(ys, i)),
                                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def build(p, info):
    """The plan's model: the zoo builder with the recipe's tricks, from --weights if given."""
    from convzoo import nets

    spec = zoo.get_spec(p.model)
    weights = None if p.weights in (None, "none") else p.weights
    build = dict(augment=p.recipe.augment, augmentation=info.augmentation)
    if spec.weights == "warm-start":
        model = tricks.apply_to_build(zoo.build_model(p.model, p.dataset, info.input_shape,
                                                      len(info.classes), **build), p.recipe)
        if weights:
            nets.warm_start(model, weights)
        return model
    try:
        model = zoo.build_model(p.model, p.dataset, info.input_shape, len(info.classes), weights=weights, **build)
    except Exception as e:
        if weights != "imagenet" or isinstance(e, ConvzooError):
            raise
        raise ConvzooError(
            "cannot download the VGG16 ImageNet weights (offline?): put "
            "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 in ~/.keras/models/, or pass "
            "--weights PATH to a local copy, or --weights none to train from scratch") from None
    # a transfer model's layers (and their batch-norm settings) are the base's: a rebuild would lose them
    return model if tricks.takes_layers_from_weights(p.model) else tricks.apply_to_build(model, p.recipe)
