"""Planning a training run: plan() resolves the names and options of `convzoo train` (or, with
--resume, reads them from the run state) and refuses bad values and an existing output before
anything is loaded or written; load_data() loads the plan's images, cut to --limit.
"""
import dataclasses
import os
import shlex

from convzoo import distributed, tricks, zoo
from convzoo import data as catalog
from convzoo.data import store
from convzoo.errors import ConvzooError, StateError
from convzoo.fileio import check_output, refuse_link
from convzoo.runstate import read_state, run_folder, state_path

MONITORS = ("val_loss", "val_accuracy")
RECIPE_FIXED = zoo.FIXED  # recipe fields that are the zoo entry's, not CLI options


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
    non_chief: bool = False  # a multi-worker non-chief: its files are a temp copy, removed at the end
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
    task = distributed.parse_tf_config(distribute, devices)  # a bad TF_CONFIG fails before anything is written
    non_chief = task is not None and not task.chief
    if resume:
        if non_chief:  # each worker resumes from its own copy of the run state
            output = distributed.worker_copy(
                output or default_output(model or info.default_model, dataset), task)
        p = _resume_plan(info, model, output, data_dir, seed, limit,
                         dict(save_best=save_best or None, early_stop=early_stop, monitor=monitor,
                              deterministic=deterministic or None), overrides)
        p.strict, p.distribute, p.devices, p.non_chief = strict, distribute, devices, non_chief
        return p
    seed = 0 if seed is None else seed
    model = model or info.default_model
    spec = zoo.get_spec(model)
    if not spec.fits(dataset):
        raise ConvzooError(f"model '{model}' is built for {', '.join(spec.datasets)}, not {dataset}; "
                           f"models for {dataset}: {', '.join(zoo.list_models(dataset=dataset))}")
    recipe = spec.recipe.with_overrides(**overrides)
    _check_recipe(model, recipe)
    if class_weight not in (None, "balanced"):
        raise ConvzooError(f"--class-weight {class_weight}: the only weighting is 'balanced'")
    weights = _check_weights(spec, info, weights)
    if output == "auto":  # the default name, or the first free x-2.h5, x-3.h5, ... beside it
        if task is not None:
            raise ConvzooError("--output auto: give every worker of a multi-worker run the same --output")
        output = default_output(model, dataset)
        if not overwrite and (os.path.lexists(output) or os.path.lexists(run_folder(output))):
            output = next_free(output)
    output = output or default_output(model, dataset)
    _no_links(output)
    if os.path.lexists(output) and not os.path.isdir(output) and not overwrite and not non_chief:
        raise ConvzooError(f"{os.path.abspath(output)} already exists; pass --overwrite to replace it, or "
                           f"--output auto to write {next_free(default_output(model, dataset))}")
    if non_chief:  # only the chief writes --output; this worker's copy goes to workertemp_N beside it
        output, overwrite = distributed.worker_copy(output, task), True
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
                devices=devices, non_chief=non_chief, class_weight=class_weight)


def _no_links(output):
    """--output and its run folder, written by the run, may not be links (live or dangling): with
    --overwrite, a linked run folder had another folder's files replaced."""
    hint = "remove the link or give another --output"
    refuse_link(output, "--output", hint)
    refuse_link(run_folder(output), "run folder", hint)


def _check_recipe(model, recipe):
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
    tricks.check(recipe, model)


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
        _check_recipe(cfg["model"], zoo.Recipe(**cfg["recipe"]))
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
    return store.take(x, tr), y[tr], store.take(x, va), y[va]


def next_free(output):
    """The first of x-2.h5, x-3.h5, ... beside `output` with neither a file nor a run folder."""
    stem, ext = os.path.splitext(output)
    n = 2
    while os.path.lexists(f"{stem}-{n}{ext}") or os.path.lexists(run_folder(f"{stem}-{n}{ext}")):
        n += 1
    return f"{stem}-{n}{ext}"
