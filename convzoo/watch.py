"""Watching a training run: the cost estimate before it (from a few timed steps), progress and the
run's ETA during it, --time-budget, and TensorBoard logs. The one training loop (loop.py) hands
its batches through Watch.epoch_batches.

TensorFlow is imported inside functions; Keras comes in as an argument.
"""
import dataclasses
import math
import os
import shutil
import sys
import time
import warnings

import numpy as np

from convzoo.errors import ConvzooError
from convzoo.progress import Progress, about, duration

TIMED_SECONDS = 2.0  # steady training steps timed for the estimate (after one warm-up step)
TIMED_STEPS = (3, 20)  # at least, at most
FIXED_STEPS = 5  # multi-worker: every worker runs the same number of steps (collective ops)
TENSORBOARD = "tensorboard"  # the log folder inside the run folder


@dataclasses.dataclass
class Options:
    """The train command's watching options (none of them changes what is trained)."""

    quiet: bool = False  # no progress bar or lines, no estimate, no per-epoch lines
    time_budget: float | None = None  # minutes: stop after the last epoch that fits
    tensorboard: bool = False
    tensorboard_every: int | None = None  # also log every N training steps


@dataclasses.dataclass
class Rates:
    """What a few timed steps measured on this machine."""

    train: float  # training images per second
    val: float  # validation images per second
    overhead: float  # seconds of one-time tracing (the run's loop traces its own functions too)
    steps: int  # training steps timed

    def seconds(self, epochs, n_train, n_val):
        return self.overhead + epochs * (n_train / self.train + (n_val / self.val if n_val else 0))


def measure(keras, model, optimizer, loss_fn, head, x, y, x_val, batch_size, strategy=None, fixed=False,
            check=None):
    """Time a few steps of the custom loop (loop.steps) and validation batches of `model` on this
    machine, then put every model variable back (weights, batch-norm statistics, dropout seeds), so
    the run is unchanged. `optimizer` is a throwaway of the run's kind; under `strategy` each replica
    takes its share of the batch, as in training. check() runs after every step (a Ctrl-C raises there)."""
    import tensorflow as tf

    from convzoo import loop

    replicas = strategy.num_replicas_in_sync if strategy else 1
    per = max(1, math.ceil(min(batch_size, len(x)) / replicas))
    xb, yb = tf.constant(x[:per]), tf.constant(y[:per])
    vb = tf.constant(x_val[:per]) if len(x_val) else xb
    vy = yb[:vb.shape[0]]  # the loss needs labels; any will do for timing
    saved = [v.numpy() for v in model.variables]
    optimizer.build(model.trainable_variables)
    train_fn, val_fn = loop.steps(keras, model, optimizer, loss_fn, head)
    # never more steady steps than one epoch has: a short run is not timed for longer than it trains
    most_train = math.ceil(len(x) / (per * replicas))
    most_val = math.ceil(len(x_val) / (per * replicas)) if len(x_val) else 1
    try:
        first_train, train_s, steps = _time(lambda: train_fn(xb, yb), TIMED_SECONDS, fixed, check, most_train)
        first_val, val_s, _ = _time(lambda: val_fn(vb, vy), TIMED_SECONDS / 4, fixed, check, most_val)
    finally:
        for v, value in zip(model.variables, saved):
            v.assign(value)
    images = per * replicas
    return Rates(train=images / train_s, val=images / val_s,
                 overhead=max(first_train - train_s, 0) + max(first_val - val_s, 0), steps=steps)


def _time(call, seconds, fixed, check=None, most=TIMED_STEPS[1]):
    """(first call, mean steady call, steady calls) in seconds; at most `most` steady calls
    (every worker of a multi-worker run makes FIXED_STEPS)."""
    t0 = time.perf_counter()
    _sync(call())
    first = time.perf_counter() - t0
    hi = min(TIMED_STEPS[1], max(1, most))
    lo, hi = (FIXED_STEPS, FIXED_STEPS) if fixed else (min(TIMED_STEPS[0], hi), hi)
    n, t0 = 0, time.perf_counter()
    while n < lo or (n < hi and time.perf_counter() - t0 < seconds):
        if check:
            check()
        _sync(call())
        n += 1
    return first, (time.perf_counter() - t0) / n, n


def _sync(out):
    """Wait for the step's result (TensorFlow runs ops asynchronously)."""
    import tensorflow as tf

    for t in tf.nest.flatten(out):
        if hasattr(t, "numpy"):
            t.numpy()
        elif hasattr(t, "values"):  # a PerReplica result
            for v in t.values:
                v.numpy()


def estimate_line(rates, epochs, n_train, n_val, batch_size, resumed=0):
    """One line: the run's cost on this machine, e.g. "about 24 min (15 epochs of 54,000 images ...)"."""
    left = epochs - resumed
    more = f"{left} more epochs" if resumed else f"{left} epochs"
    if left == 1:
        more = more.replace("epochs", "epoch")
    steps = math.ceil(n_train / batch_size)
    return (f"estimate: {about(rates.seconds(left, n_train, n_val))} ({more} of {n_train:,} images, "
            f"{steps:,} steps of {batch_size}, at ~{rates.train:,.0f} img/s; {n_val:,} validation "
            f"images at ~{rates.val:,.0f} img/s; timed over {rates.steps} steps)")


class Watch:
    """Per-run progress: a bar or lines per epoch, the run's ETA from the epochs so far, the budget."""

    def __init__(self, opts, n_train, batch_size, epochs, done=0, started=None, stream=None):
        self.opts, self.n_train, self.batch_size, self.epochs = opts, n_train, batch_size, epochs
        self.started = time.monotonic() if started is None else started
        self.stream = stream or sys.stderr
        self.walls = []  # wall seconds per epoch of this process: training, validation, saving
        self.mark = None
        self.bar = None
        self.epoch = done
        self.stop = False  # set when the next epoch would not fit in the time budget
        self.stop_message = None
        self.writers = None  # --tensorboard: tf.summary writers (summary_writers)
        self.optimizer = None  # with writers: its learning rate and step count are logged too

    def typical_epoch(self):
        """Seconds per epoch: the mean after the first (which traces the loop's functions)."""
        if not self.walls:
            return None
        later = self.walls[1:] or self.walls
        return sum(later) / len(later)

    def run_eta(self):
        """Seconds left in the run, once an epoch of this process has completed."""
        typical = self.typical_epoch()
        if typical is None:
            return None
        frac = self.bar.done / self.bar.total if self.bar and self.bar.total else 0
        now = max(typical * (1 - frac), (self.bar.eta() if self.bar else None) or 0)  # this epoch
        return now + typical * (self.epochs - self.epoch - 1)

    def _eta_text(self):
        left = self.run_eta()
        return None if left is None else f"run ETA {duration(left)}"

    def begin_epoch(self, epoch):
        self.epoch = epoch
        if self.mark is None:
            self.mark = time.monotonic()
        if self.bar:
            self.bar.close()
        self.bar = Progress(self.n_train, label=f"epoch {epoch + 1}/{self.epochs}", unit="images",
                            quiet=self.opts.quiet, stream=self.stream, suffix=self._eta_text)

    def step(self, steps):
        """`steps` training steps of the current epoch are done."""
        if self.bar:
            self.bar.update(steps * self.batch_size)

    def epoch_batches(self, epoch, batches):
        """The loop's training batches of one epoch, counted as each one completes."""
        self.begin_epoch(epoch)
        n = 0
        for batch in batches:
            yield batch
            n += 1
            self.step(n)

    def step_scalars(self, step, loss, accuracy):
        """--tensorboard-every N: the epoch's running loss and accuracy after every Nth training
        step (counted from this process's first), as Keras' callback logs them."""
        every = self.opts.tensorboard_every
        if self.writers and every and step % every == 0:
            import tensorflow as tf

            with self.writers["train"].as_default():
                tf.summary.scalar("batch_loss", loss, step=step)
                tf.summary.scalar("batch_accuracy", accuracy, step=step)

    def end_epoch(self, epoch, row):
        """Called with the epoch's row before it is saved; returns text for the epoch's line."""
        if self.bar:
            self.bar.close()
            self.bar = None
        now = time.monotonic()
        self.walls.append(now - (self.mark or now))
        self.mark = now
        self.epoch = epoch + 1
        if self.writers:
            _write_scalars(self.writers, epoch, row, self.optimizer)
        left = self.epochs - epoch - 1
        if left <= 0:
            return ""
        typical = self.typical_epoch()
        if self.opts.time_budget:
            used = now - self.started
            if used + typical > self.opts.time_budget * 60:
                self.stop = True
                self.stop_message = (
                    f"--time-budget {self.opts.time_budget:g} min: stopping after epoch {epoch + 1} of "
                    f"{self.epochs}, as another epoch (~{duration(typical)}) would not fit "
                    f"({duration(used)} used); continue with the same command and --resume")
                return ""
        return f" - run ETA {duration(typical * left)}"


def check_budget(opts, rates, n_train, n_val, epochs_left, started):
    """Refuse, before anything is written, a budget that not even one epoch fits."""
    if not opts.time_budget or epochs_left <= 0:
        return
    one = rates.seconds(1, n_train, n_val)
    used = time.monotonic() - started
    if used + one > opts.time_budget * 60:
        raise ConvzooError(f"--time-budget {opts.time_budget:g} min: one epoch takes {about(one)} here "
                           f"(estimate); raise the budget, or train on fewer images with --limit")


def tensorboard_dir(run_dir, fresh=False):
    """The run folder's TensorBoard logs; a fresh run (not --resume) starts them anew."""
    # tensorboard 2.21 converts Keras' scalars with np.array(copy=False): a NumPy 2 warning per write
    warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept a copy keyword")
    path = os.path.join(run_dir, TENSORBOARD)
    if fresh and os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    return path


def summary_writers(run_dir, fresh=False):
    """train/ and validation/ writers, the layout and tags of Keras' TensorBoard callback."""
    import tensorflow as tf

    root = tensorboard_dir(run_dir, fresh)
    return {k: tf.summary.create_file_writer(os.path.join(root, k)) for k in ("train", "validation")}


def _write_scalars(writers, epoch, row, optimizer=None):
    """Keras' callback's epoch tags: epoch_loss, epoch_accuracy (and epoch_learning_rate) per
    epoch; validation's also against the optimizer's step count (evaluation_*_vs_iterations)."""
    import tensorflow as tf

    for split, prefix in (("train", ""), ("validation", "val_")):
        with writers[split].as_default():
            for name in ("loss", "accuracy"):
                value = row.get(prefix + name)
                if value is not None:
                    tf.summary.scalar(f"epoch_{name}", value, step=epoch)
                    if prefix and optimizer is not None:
                        tf.summary.scalar(f"evaluation_{name}_vs_iterations", value,
                                          step=int(np.asarray(optimizer.iterations)))
            if not prefix and optimizer is not None:
                tf.summary.scalar("epoch_learning_rate", float(np.asarray(optimizer.learning_rate)), step=epoch)
        writers[split].flush()


def planned_sizes(p):
    """(training, validation) images of plan `p`, from the dataset's file headers (no decoding)."""
    from convzoo import data as catalog
    from convzoo.data import store

    mod = catalog.loader(p.dataset, p.data_dir)
    where = store.folder(p.dataset, p.data_dir)
    counts = mod.counts(where) if mod.find(where) is not None else None
    if not counts:
        raise ConvzooError(f"{p.dataset} not found: {mod.missing_message(where)} "
                           f"(or run `convzoo data fetch {p.dataset}` online)")
    k = len(catalog.get(p.dataset, p.data_dir).classes)
    n = counts["train"]
    if counts.get("validation"):
        n_val = counts["validation"]
        if p.limit:
            n, n_val = min(n, k * max(1, p.limit // k)), min(n_val, k * max(1, max(2, p.limit // 4) // k))
        return n, n_val
    n = min(n, p.limit) if p.limit else n
    n_val = int(round(n * p.recipe.validation_split))
    return n - n_val, n_val


def dry_run(p):
    """The plan as text lines, with the estimate from a few timed steps; nothing is written."""
    from convzoo import backend, heads, zoo
    from convzoo import data as catalog
    from convzoo import train as training

    keras = backend.load()
    info = catalog.get(p.dataset, p.data_dir)
    spec = zoo.get_spec(p.model)
    n_train, n_val = planned_sizes(p)
    keras.utils.set_random_seed(p.seed)
    keras.mixed_precision.set_global_policy(p.recipe.precision)
    try:
        model = training.build(p, info)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    bs = p.recipe.batch_size
    rng = np.random.default_rng(0)  # timing does not depend on the pixels
    n = min(bs, max(n_train, 1))
    x = rng.integers(0, 256, (n, *info.input_shape), dtype=np.uint8)
    y = rng.integers(0, len(info.classes), n)
    y = heads.targets(y, spec.head)
    rates = measure(keras, model, training.optimizer(keras, p.recipe, math.ceil(n_train / bs)),
                    heads.loss(keras, spec.head, p.recipe.label_smoothing), spec.head, x, y, x, bs)
    recipe = ", ".join(f"{f.name} {getattr(p.recipe, f.name)}" for f in dataclasses.fields(p.recipe))
    lines = [
        f"model    {p.model} ({spec.source}, {model.count_params():,} parameters)",
        f"recipe   {recipe}",
        f"data     {p.dataset} in {os.path.join(p.data_dir, p.dataset)}: {n_train:,} training / "
        f"{n_val:,} validation images" + (f" (--limit {p.limit})" if p.limit else ""),
        f"output   {p.output} and {p.run_dir}{os.sep}",
        f"seed     {p.seed}" + (f", weights {p.weights}" if p.weights else "")
        + (f", --distribute {p.distribute} (timed on one device)" if p.distribute else ""),
        estimate_line(rates, p.recipe.epochs, n_train, n_val, bs),
    ]
    return lines
