"""Training: plan() resolves and checks a run; train() builds the model and runs one of the two
loops of loop.py: Keras fit for most recipes, the custom loop for S1's hand-written GradientTape
recipe and --distribute. The per-epoch state (history, checkpoint, state.npz, run folder) is
runstate.Run's.
"""
import dataclasses
import math
import os
import shlex
import shutil
import sys
import time

import numpy as np

from convzoo import backend, cpu, distributed, heads, interrupt, loop, tricks, watch, zoo
from convzoo import data as catalog
from convzoo.data import store
from convzoo.errors import ConvzooError, Diverged, Interrupted  # noqa: F401 -- train.Diverged
from convzoo.fileio import check_output, real_folder, refuse_link
from convzoo.runstate import Run, StateError, inference_model, locked, read_state, run_folder, state_path  # noqa: F401

# speed defaults, each measured by bench/levers.py (see bench/README.md)
JIT = "auto"  # Keras: no XLA on a CPU-only machine
PIPELINE = "gather"
STEPS_PER_EXECUTION = 8  # fewer Python round trips per epoch: 1.09-1.15x on S3 (bench/levers.py)
MONITORS = ("val_loss", "val_accuracy")
RECIPE_FIXED = ("loop",)  # recipe fields that are the zoo entry's, not CLI options


def default_output(model_name, dataset):
    spec = zoo.get_spec(model_name)
    stem = model_name if dataset == spec.datasets[0] else f"{model_name}-{dataset}"
    return os.path.join("runs", f"{stem}.h5")


@dataclasses.dataclass
class Plan:
    """Everything a run needs, resolved and checked before any training starts."""

    dataset: str
    model: str
    recipe: zoo.Recipe
    output: str
    data_dir: str
    seed: int = 0
    limit: int | None = None
    overwrite: bool = False
    resume: bool = False
    save_best: bool = False
    early_stop: int | None = None  # stop after this many epochs without improvement of `monitor`
    monitor: str = "val_accuracy"  # what --save-best and --early-stop follow ("val_loss" or this)
    weights: str | None = None  # VGG16 entries: "imagenet", "none" or a weights file
    strict: bool = False  # fail on an unreadable image instead of skipping it
    distribute: str | None = None  # "mirrored" or "multiworker" (tf.distribute); None: one device
    devices: int | None = None  # --distribute mirrored: GPUs, or logical CPUs without a GPU
    deterministic: bool = False  # TensorFlow's op determinism: the same command gives the same weights
    decay_from: int = 0  # a cosine schedule decays from this epoch on (a run extended by --resume)
    scratch: bool = False  # a multi-worker non-chief: its files are a temp copy, removed at the end
    class_weight: str | None = None  # "balanced": the loss weighted by inverse class frequency

    @property
    def run_dir(self):
        return run_folder(self.output)

    def command(self, resume=False):
        """The `convzoo train` command that repeats this run with every option spelled out, or
        (resume) the one that continues it: --resume reads everything else from the run state."""
        args = [self.dataset, "--model", self.model]
        if not resume:
            for f in dataclasses.fields(self.recipe):
                value = getattr(self.recipe, f.name)
                if f.name in RECIPE_FIXED:
                    continue
                flag = "--" + f.name.replace("_", "-")
                args += [flag if value else "--no-" + flag[2:]] if isinstance(value, bool) else [flag, str(value)]
            args += ["--seed", str(self.seed)] + (["--limit", str(self.limit)] if self.limit else [])
            args += ["--weights", self.weights] if self.weights else []
            args += ["--save-best"] if self.save_best else []
            args += ["--early-stop", str(self.early_stop), "--monitor", self.monitor] if self.early_stop else []
            args += ["--deterministic"] if self.deterministic else []
            args += ["--class-weight", self.class_weight] if self.class_weight else []
            args += ["--data-dir", self.data_dir]
        args += ["--output", self.output]
        args += ["--resume"] if resume else (["--overwrite"] if self.overwrite else [])
        args += ["--strict"] if self.strict else []
        args += ["--distribute", self.distribute] if self.distribute else []
        args += ["--devices", str(self.devices)] if self.devices else []
        return shlex.join(["convzoo", "train", *args])


def plan(dataset, model=None, output=None, data_dir=None, seed=None, limit=None, overwrite=False,
         resume=False, save_best=False, weights=None, strict=False, distribute=None, devices=None,
         early_stop=None, monitor=None, deterministic=False, class_weight=None, **overrides):
    """Resolve names and options; refuse bad values and an existing output before training."""
    info = catalog.get(dataset, data_dir)
    if monitor is not None and monitor not in MONITORS:
        raise ConvzooError(f"--monitor {monitor}: choose {' or '.join(MONITORS)}")
    if monitor and not (early_stop or save_best or resume):
        raise ConvzooError("--monitor chooses what --early-stop and --save-best follow; pass one of them")
    task = distributed.check(distribute, devices)  # a bad TF_CONFIG fails before anything is written
    scratch = task is not None and not task.chief
    if resume:
        if scratch:  # each worker resumes from its own copy of the run state
            output = distributed.scratch_path(
                output or default_output(model or info.default_model, dataset), task)
        p = _resume_plan(info, model, output, data_dir, seed, limit,
                         dict(save_best=save_best or None, early_stop=early_stop, monitor=monitor,
                              deterministic=deterministic or None), overrides)
        p.strict, p.distribute, p.devices, p.scratch = strict, distribute, devices, scratch
        _check_distribute(p.model, p.recipe, distribute)
        return p
    seed = 0 if seed is None else seed
    model = model or info.default_model
    spec = zoo.get_spec(model)
    if not spec.fits(dataset):
        raise ConvzooError(f"model '{model}' is built for {', '.join(spec.datasets)}, not {dataset}; "
                           f"models for {dataset}: {', '.join(zoo.list_models(dataset=dataset))}")
    recipe = spec.recipe.with_overrides(**overrides)
    _check_recipe(model, recipe, distribute)
    if class_weight not in (None, "balanced"):
        raise ConvzooError(f"--class-weight {class_weight}: the only weighting is 'balanced'")
    if class_weight and (distribute or recipe.loop == "tape"):
        raise ConvzooError("--class-weight balanced weights Keras fit's loss; it does not apply to "
                           + ("--distribute" if distribute else model + "'s hand-written loop"))
    weights = _check_weights(spec, info, weights)
    if output == "auto":  # the default name, or the first free x-2.h5, x-3.h5, ... beside it
        if task is not None:
            raise ConvzooError("--output auto: give every worker of a multi-worker run the same --output")
        output = default_output(model, dataset)
        if not overwrite and (os.path.lexists(output) or os.path.lexists(run_folder(output))):
            output = next_free(output)
    output = output or default_output(model, dataset)
    _no_links(output)
    if os.path.lexists(output) and not os.path.isdir(output) and not overwrite and not scratch:
        raise ConvzooError(f"{os.path.abspath(output)} already exists; pass --overwrite to replace it, or "
                           f"--output auto to write {next_free(default_output(model, dataset))}")
    if scratch:  # only the chief writes --output; this worker's copy goes to workertemp_N beside it
        output, overwrite = distributed.scratch_path(output, task), True
        _no_links(output)
    if not output.endswith((".h5", ".keras")):
        raise ConvzooError(f"--output {output}: the checkpoint name must end in .h5 or .keras")
    output = check_output(output, overwrite, need_bytes=4 * spec.params * 3 + 2**20)
    if os.path.exists(run_folder(output)) and not overwrite:
        raise ConvzooError(f"run folder {run_folder(output)} already exists; pass --overwrite to replace it, "
                           f"or --output auto to write {next_free(default_output(model, dataset))}")
    return Plan(dataset=dataset, model=model, recipe=recipe, output=output,
                data_dir=store.data_dir(data_dir), seed=seed, limit=limit, overwrite=overwrite,
                save_best=save_best, early_stop=early_stop,
                monitor=monitor or ("val_loss" if early_stop else "val_accuracy"), weights=weights,
                deterministic=deterministic, strict=strict, distribute=distribute,
                devices=devices, scratch=scratch, class_weight=class_weight)


def _no_links(output):
    """--output and its run folder, written by the run, may not be links (live or dangling): with
    --overwrite, a linked run folder had another folder's files replaced."""
    hint = "remove the link or give another --output"
    refuse_link(output, "--output", hint)
    refuse_link(run_folder(output), "run folder", hint)


def _check_recipe(model, recipe, distribute):
    """The recipe's values, given on the command line or read from a run state (--resume)."""
    spec = zoo.get_spec(model)
    for key, choices in (("optimizer", zoo.OPTIMIZERS), ("schedule", zoo.SCHEDULES),
                         ("precision", zoo.PRECISIONS)):
        if getattr(recipe, key) not in choices:
            raise ConvzooError(f"unknown {key} '{getattr(recipe, key)}'; choose from {', '.join(choices)}")
    if recipe.loop != spec.recipe.loop:
        raise ConvzooError(f"{model} trains with its '{spec.recipe.loop}' loop, not '{recipe.loop}'")
    if recipe.epochs < 1 or recipe.batch_size < 1 or not recipe.learning_rate > 0 \
            or not 0 < recipe.validation_split < 1:
        raise ConvzooError(f"--epochs {recipe.epochs}, --batch-size {recipe.batch_size}, --learning-rate "
                           f"{recipe.learning_rate}, --validation-split {recipe.validation_split}: the first "
                           f"two must be at least 1, the learning rate above 0 and the split between 0 and 1")
    if recipe.loop == "tape" and recipe.optimizer != "sgd":
        raise ConvzooError(f"{model} is S1's hand-written plain-SGD loop; it takes no --optimizer "
                           f"{recipe.optimizer}")
    _check_distribute(model, recipe, distribute)
    tricks.check(recipe, model)


def _check_distribute(model, recipe, distribute):
    if distribute and recipe.loop == "tape":
        raise ConvzooError(f"{model} is S1's hand-written GradientTape loop, which runs on one device; "
                           f"train it without --distribute")


def _check_weights(spec, info, weights):
    """--weights as the zoo entry reads it (ModelSpec.weights), checked before training."""
    from convzoo import checkpoint

    model = spec.name
    if spec.weights == "base":
        if (not weights or weights in ("imagenet", "none")) and spec.bundled_base:
            from convzoo import bundled

            weights = bundled.path("fashion_mnist" if info.color == "gray" else "cifar10")
        elif not weights or weights in ("imagenet", "none"):
            raise ConvzooError(f"{model} starts from a convzoo checkpoint: pass --weights CHECKPOINT.h5")
        checkpoint.read_meta(weights)
        return os.path.abspath(weights)
    if spec.weights == "warm-start":
        if weights is None:
            return None
        meta = checkpoint.read_meta(weights)
        if meta.get("model") != model:  # a warm start: more epochs for a trained model
            raise ConvzooError(f"--weights {weights}: a checkpoint of {meta.get('model')}, not {model}; "
                               f"{model} starts only from its own checkpoints")
        return os.path.abspath(weights)
    weights = weights or "imagenet"
    if weights not in ("imagenet", "none"):
        checkpoint.check_weights_file(weights)
        weights = os.path.abspath(weights)
    return weights


def _resume_plan(info, model, output, data_dir, seed, limit, run_options, overrides):
    """The stored run's plan; options that would change the run are refused, except a larger
    --epochs, which extends it (a cosine schedule then decays anew over the added epochs)."""
    if output == "auto":
        raise ConvzooError("--resume continues a named run: give its --output, not auto")
    dataset = info.name
    output = os.path.abspath(output or default_output(model or info.default_model, dataset))
    _no_links(output)
    state = state_path(output)
    if not os.path.lexists(state):
        raise ConvzooError(f"nothing to resume: {state} not found (train without --resume first)")
    cfg, history, _ = read_state(state)  # the arrays are checked against the model once it is built
    done = len(history["epoch"])
    cfg.setdefault("monitor", "val_accuracy")  # run states written before --early-stop
    try:
        spec = zoo.get_spec(cfg["model"])
        if not spec.fits(cfg["dataset"]):
            raise ConvzooError(f"model {cfg['model']} is not built for {cfg['dataset']}")
        if cfg["monitor"] not in MONITORS:
            raise ConvzooError(f"unknown monitor {cfg['monitor']}")
        if cfg.get("class_weight") not in (None, "balanced") or (cfg.get("early_stop") or 1) < 1 \
                or cfg.get("decay_from", 0) < 0:
            raise ConvzooError("class_weight, early_stop or decay_from out of range")
        _check_recipe(cfg["model"], zoo.Recipe(**cfg["recipe"]), None)
    except ConvzooError as e:
        raise StateError(f"{state}: the stored plan is refused ({e})") from None
    given = {"dataset": dataset, "model": model, "seed": seed, "limit": limit, **run_options}
    for key, value in given.items():
        if value is not None and value != cfg.get(key):
            raise ConvzooError(f"--resume continues the stored run, which has {key.replace('_', '-')} "
                               f"{cfg.get(key)}, not {value}")
    recipe = zoo.Recipe(**cfg["recipe"])
    decay_from = cfg.get("decay_from", 0)
    epochs = overrides.pop("epochs", None)
    if epochs is not None and epochs != recipe.epochs:
        if epochs < done:
            raise ConvzooError(f"--resume --epochs {epochs}: the stored run has already run {done} epochs; "
                               f"give --epochs {done} or more to extend it")
        recipe = dataclasses.replace(recipe, epochs=epochs)
        decay_from = done if recipe.schedule != "constant" or recipe.warmup_epochs else decay_from
    for key, value in overrides.items():
        if value is not None and value != getattr(recipe, key):
            raise ConvzooError(f"--resume continues the stored run, which has {key.replace('_', '-')} "
                               f"{getattr(recipe, key)}, not {value}")
    return Plan(dataset=cfg["dataset"], model=cfg["model"], recipe=recipe, output=output,
                data_dir=store.data_dir(data_dir or cfg["data_dir"]), seed=cfg["seed"],
                limit=cfg["limit"], resume=True, save_best=cfg.get("save_best", False),
                early_stop=cfg.get("early_stop"), monitor=cfg["monitor"], weights=cfg.get("weights"),
                deterministic=cfg.get("deterministic", False), decay_from=decay_from,
                class_weight=cfg.get("class_weight"))


def load_data(p):
    """(x_train, y_train, x_val, y_val): the first --limit images; the dataset's own validation
    split where it has one (cats vs dogs, S10), else a stratified split with seed 42 (S6)."""
    info = catalog.get(p.dataset, p.data_dir)
    x, y = store.load(p.dataset, p.data_dir, "train", fetch_missing=True, strict=p.strict)
    found = catalog.loader(p.dataset, p.data_dir).counts(store.folder(p.dataset, p.data_dir)) or {}
    if "validation" in info.splits and found.get("validation"):
        x_va, y_va = store.load(p.dataset, p.data_dir, "validation", strict=p.strict)
        if p.limit:  # the first N of each class keeps both classes in a quick run
            x, y = store.first_per_class(x, y, p.limit)
            x_va, y_va = store.first_per_class(x_va, y_va, max(2, p.limit // 4))
        return x, y, x_va, y_va
    if p.limit:  # IDX files are in a mixed order; image folders come sorted by class
        x, y = store.subset(x, y, p.limit, info)
    tr, va = store.stratified_split(y, p.recipe.validation_split, seed=42)
    return x[tr], y[tr], x[va], y[va]


def _optimizer(keras, recipe, steps_per_epoch, decay_from=0):
    """The recipe's optimizer. A run extended by --resume --epochs (decay_from: the epochs run
    before) gets its schedule, warm-up included, anew over the added epochs."""
    # --ema: the weights become their running average after every epoch, so each epoch's
    # validation score and checkpoint are the averaged weights'
    opts = dict(use_ema=True, ema_momentum=recipe.ema, ema_overwrite_frequency=steps_per_epoch) \
        if recipe.ema else {}
    lr = tricks.schedule(keras, dataclasses.replace(recipe, epochs=recipe.epochs - decay_from), steps_per_epoch)
    if decay_from and not isinstance(lr, float):
        lr = _shifted(keras, lr, steps_per_epoch * decay_from)
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
        task = distributed.check(p.distribute)
        log(f"{task.type} {task.index} of {task.workers} workers{' (chief)' if task.chief else ''}: "
            f"waiting for every worker to join")
    strategy = distributed.strategy(p.distribute, p.devices)  # before anything sets up TF's devices
    if strategy is None:
        return _train(p, log, keras, None, opts, started)
    with strategy.scope():  # the model, optimizer and training loop under the strategy
        meta = _train(p, log, keras, strategy, opts, started)
    if p.scratch:
        distributed.remove_scratch(p.output, p.run_dir)
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
        model = _build(p, info)
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
    run.optimizer = _optimizer(keras, p.recipe, math.ceil(len(y_tr) / p.recipe.batch_size), p.decay_from)
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
    model, bs = run.model, p.recipe.batch_size
    fit = strategy is None and p.recipe.loop == "fit"
    if fit and run.epochs_left():
        compile_model(keras, model, run.optimizer, spec.head,
                      label_smoothing=p.recipe.label_smoothing)
    if run.epochs_left() and (not opts.quiet or opts.time_budget):  # timed before anything is written
        rates = _measure(keras, run, strategy, fit)
        log(watch.estimate_line(rates, p.recipe.epochs, len(y_tr), len(y_va), bs, run.done))
        watch.check_budget(opts, rates, len(y_tr), len(y_va), p.recipe.epochs - run.done, started)
    real_folder(p.run_dir, "run folder")
    run.watch = watch.Watch(opts, len(y_tr), bs, p.recipe.epochs, run.done, started)
    if opts.tensorboard and not fit:
        run.watch.writers = watch.summary_writers(p.run_dir, fresh=not p.resume)
    loss = heads.loss(keras, spec.head, p.recipe.label_smoothing)
    if strategy is not None:  # the custom loop: Keras 3.15's fit fails under tf.distribute
        train_batches, val_batches = distributed.datasets(
            strategy, run, pipeline(x_tr, y_tr, bs, shuffle_seed=p.seed), pipeline(x_va, y_va, bs))
        with distributed.worker_errors(run):
            loop.custom(keras, run, loss, train_batches, val_batches)
    elif p.recipe.loop == "tape":
        train_batches, val_batches = tape_batches(run)
        loop.custom(keras, run, loss, train_batches, val_batches)
    elif run.epochs_left():
        weights = balanced_weights(y_tr, len(run.info.classes)) if p.class_weight else None
        if weights:
            log("class weights (balanced): " + ", ".join(f"{run.info.classes[c]} {w:.3f}"
                                                         for c, w in weights.items()))
        loop.fit(keras, run, pipeline(x_tr, y_tr, bs, shuffle_seed=p.seed), pipeline(x_va, y_va, bs), weights)


def tape_batches(run):
    """S1's data order: each epoch a permutation seeded by (seed, epoch), so a resumed run sees the
    same batches as one that was never stopped; validation in chunks of 1024."""
    (x_tr, y_tr, x_va, y_va), bs = run.data, run.p.recipe.batch_size

    def train_batches(epoch):
        order = np.random.default_rng([run.p.seed, epoch]).permutation(len(y_tr))
        return ((x_tr[order[i:i + bs]], y_tr[order[i:i + bs]]) for i in range(0, len(order), bs))

    def val_batches():
        return ((x_va[i:i + 1024], y_va[i:i + 1024]) for i in range(0, len(y_va), 1024))

    return train_batches, val_batches


def _measure(keras, run, strategy, fit):
    """A few timed steps of this run's loop (watch.py), leaving the model and optimizer as they were."""
    p, (x_tr, y_tr, x_va, y_va) = run.p, run.data
    if fit:
        bs = p.recipe.batch_size  # the run's own pipeline, so that fit reuses the traced functions
        train, val = pipeline(x_tr, y_tr, bs).repeat(), pipeline(x_va, y_va, bs).repeat()
        return watch.measure_fit(keras, run.model, train, val, min(bs, len(y_tr)), min(bs, len(y_va)),
                                 STEPS_PER_EXECUTION, check=run.stop.check)
    return watch.measure(keras, run.model, _optimizer(keras, p.recipe, 1),
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


def pipeline(x, y, batch_size, shuffle_seed=None, kind=None):
    """A tf.data input pipeline over decoded uint8 images held in memory (decoded once, every file
    checked, and cached on disk by the data loaders). Pixels stay uint8 until the model's Rescaling
    layer; augmentation layers run inside the model. kind "gather" shuffles indices and gathers
    whole batches (one op per batch); "slices" shuffles and batches single images."""
    import tensorflow as tf

    kind = kind or PIPELINE
    if kind == "slices":
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle_seed is not None:
            ds = ds.shuffle(len(y), seed=shuffle_seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    xs, ys = tf.constant(x), tf.constant(y)
    ds = tf.data.Dataset.range(len(y))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(y), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(lambda i: (tf.gather(xs, i), tf.gather(ys, i)),
                                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def next_free(output):
    """The first of x-2.h5, x-3.h5, ... beside `output` with neither a file nor a run folder."""
    stem, ext = os.path.splitext(output)
    n = 2
    while os.path.lexists(f"{stem}-{n}{ext}") or os.path.lexists(run_folder(f"{stem}-{n}{ext}")):
        n += 1
    return f"{stem}-{n}{ext}"


def set_threads(intra=None, inter=None):
    """TensorFlow's thread pools (before any op runs); None keeps TensorFlow's default."""
    import tensorflow as tf

    if intra:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
    if inter:
        tf.config.threading.set_inter_op_parallelism_threads(inter)


def compile_model(keras, model, optimizer, head, jit=None, steps_per_execution=None,
                  label_smoothing=0.0):
    """compile() as every convzoo fit runs it (bench/levers.py measures the choices)."""
    # "accuracy": Keras picks heads.accuracy(keras, head) for the head's loss (a test checks it)
    model.compile(optimizer=optimizer, loss=heads.loss(keras, head, label_smoothing), metrics=["accuracy"],
                  jit_compile=JIT if jit is None else jit,
                  steps_per_execution=steps_per_execution or STEPS_PER_EXECUTION)


def _build(p, info):
    spec = zoo.get_spec(p.model)
    weights = None if p.weights in (None, "none") else p.weights
    build = dict(augment=p.recipe.augment, augmentation=info.augmentation)
    if spec.weights == "warm-start":
        model = tricks.apply_to_build(zoo.build_model(p.model, p.dataset, info.input_shape,
                                                      len(info.classes), **build), p.recipe)
        if weights:
            warm_start(model, weights)
        return model
    try:
        return tricks.apply_to_build(zoo.build_model(p.model, p.dataset, info.input_shape, len(info.classes),
                                                     weights=weights, **build), p.recipe)
    except Exception as e:
        if weights != "imagenet" or isinstance(e, ConvzooError):
            raise
        raise ConvzooError(
            "cannot download the VGG16 ImageNet weights (offline?): put "
            "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 in ~/.keras/models/, or pass "
            "--weights PATH to a local copy, or --weights none to train from scratch") from None


def warm_start(model, path):
    """Copy a checkpoint's weights into a fresh model of the same zoo entry, layer by layer (the
    checkpoint was saved without the augmentation layers, which hold no weights)."""
    from convzoo import checkpoint, nets

    source, _ = checkpoint.load(path)
    mine = [layer for layer in model.layers if layer.weights and not nets.is_augmentation(layer)]
    theirs = [layer for layer in source.layers if layer.weights]
    shapes = [[w.shape for w in layer.get_weights()] for layer in mine]
    if shapes != [[w.shape for w in layer.get_weights()] for layer in theirs]:
        raise ConvzooError(f"--weights {path}: its layers do not match {model.name}'s")
    for new, old in zip(mine, theirs):
        new.set_weights(old.get_weights())
