"""The convzoo command line: parse options, call one library function, print the result.

TensorFlow is imported only inside the commands that need it (train, evaluate, predict, fetch).
"""
import dataclasses
import json
import os
import sys

import click

from convzoo import __version__, bundled, distributed, zoo
from convzoo import export as exports  # its format table (the module imports no TensorFlow)
from convzoo import data as catalog
from convzoo.errors import ConvzooError

MODELS_DIR = bundled.models_dir()
REPORT = "README.md, 'Reporting a bug'"


class Group(click.Group):
    """Turns a ConvzooError into one line on stderr (exit 1), Ctrl-C into exit 130, and any other
    exception into one line saying it is a bug (exit 1; CONVZOO_RAISE_BUGS=1 re-raises it, as tests do)."""

    def invoke(self, ctx):
        from convzoo.text import one_line

        try:
            return super().invoke(ctx)
        except ConvzooError as e:
            exc = click.ClickException(one_line(e))
            exc.exit_code = getattr(e, "exit_code", 1)
            raise exc from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as e:  # noqa: BLE001 -- the last resort: a bug, said in one line
            if os.environ.get("CONVZOO_RAISE_BUGS"):
                raise
            first = str(e).splitlines()[0] if str(e) else ""
            raise click.ClickException(one_line(
                f"internal error ({type(e).__name__}: {first[:200]}); this is a bug in convzoo "
                f"{__version__}: please report it with the command you ran ({REPORT})")) from None


def err(msg):
    click.echo(msg, err=True)


def examples(*lines):
    """A command's help epilog: its examples, kept as written (click's \\b)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def shown(value):
    return ("on" if value else "off") if isinstance(value, bool) else (
        f"{value:g}" if isinstance(value, float) else str(value))


def recipe_default(field):
    """'[default: ...]' for a zoo.Recipe field: the recipe's value, per dataset default model where
    they differ."""
    values = {m: getattr(zoo.get_spec(m).recipe, field) for m in dict.fromkeys(zoo.DEFAULT_MODEL.values())}
    everywhere = {getattr(spec.recipe, field) for spec in zoo.REGISTRY.values()}
    if len(everywhere) == 1:
        return f"[default: {shown(everywhere.pop())}]"
    if len(set(values.values())) == 1:
        value = shown(next(iter(values.values())))
        return f"[default: the model's recipe: {value} for every dataset's default]"
    return "[default: the model's recipe: " + ", ".join(f"{m}: {shown(v)}" for m, v in values.items()) + "]"


def recipe_options(fn):
    """One option per zoo.Recipe field that is a CLI option, from its metadata (help, choices, bounds)."""
    for f in reversed(zoo.options()):
        m, text = f.metadata, f.metadata["help"] + " " + recipe_default(f.name)
        bounds = {k: m[k] for k in ("min", "max", "min_open", "max_open") if k in m}
        if f.type is bool:
            fn = click.option(f"{zoo.flag(f.name)}/{zoo.flag(f.name, on=False)}", f.name, default=None,
                              help=text)(fn)
            continue
        if "choices" in m:
            kind = click.Choice(m["choices"])
        elif bounds:
            kind = (click.IntRange if f.type is int else click.FloatRange)(**bounds)
        else:
            kind = f.type
        fn = click.option(zoo.flag(f.name), f.name, type=kind, help=text)(fn)
    return fn


def printable(value):
    from convzoo.text import printable as escape

    return escape(value)


def echo_json(obj, **kwargs):
    """Strict JSON on stdout: NaN or infinity is written as null, and said on stderr."""
    from convzoo.text import strict_json

    text, bad = strict_json(obj, **kwargs)
    click.echo(text)
    if bad:
        err(f"warning: {bad} value(s) were NaN or infinite and are written as null")


data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False),
                               help="Dataset folder (the repo's `data` holds a small MNIST and "
                                    "Fashion-MNIST sample) "
                                    "[default: $CONVZOO_DATA, else ~/.convzoo/data].")


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog=examples(
    "convzoo models",
    "convzoo train mnist --data-dir data --epochs 5 --output runs/mnist.h5",
    "convzoo predict data/samples/mnist_9998_5.png --model mnist"))
@click.version_option(__version__, prog_name="convzoo")
def cli():
    """convzoo: train, evaluate and use the classic convolutional networks."""
    import warnings

    # a warning is one line on stderr, not a file:line dump
    warnings.showwarning = lambda message, category, *args, **kwargs: err(f"warning: {message}")


def main():
    cli(prog_name="convzoo")


# ---------------------------------------------------------------- models
@cli.command(epilog=examples(
    "convzoo models --dataset cifar10",
    "convzoo models mnist-vgg",
    "convzoo models --results models"))
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON: a list, or NAME's object.")
@click.option("--dataset", help="Only the models for this dataset; with NAME, the dataset whose layers "
                                "to show [default: the model's first].")
@click.option("--results", "results_dir", is_flag=False, flag_value=MODELS_DIR, default=None,
              help="Instead: a Markdown results table of the checkpoints in a folder [default: models/].")
def models(name, as_json, dataset, results_dir):
    """List the zoo: name, dataset, parameters, source row, recipe; * marks each dataset's default.

    With NAME: that entry in full: description, its seed row (docs/seeds.md), the recipe with every
    default, and the layers Keras builds (output shapes, parameters), without training.
    """
    if results_dir:
        from convzoo import results

        rows = results.collect(results_dir)
        echo_json(rows, indent=2) if as_json else click.echo(results.markdown(rows))
        return
    if name:
        from convzoo import describe

        card = describe.describe(name, dataset)
        click.echo(json.dumps(card, indent=2) if as_json else
                   describe.format_text(card, {o.lstrip("-") for p in train.params for o in p.opts}))
        return
    if dataset:
        catalog.get(dataset)
    rows = []
    for name in zoo.list_models(dataset=dataset):
        s = zoo.get_spec(name)
        rows.append({"name": name, "datasets": list(s.datasets), "params": s.params,
                     "source": s.source, "description": s.description, "head": s.head,
                     "recipe": dataclasses.asdict(s.recipe),  # every field, in declaration order
                     "reported": s.reported,
                     "default_for": [d for d, m in zoo.DEFAULT_MODEL.items() if m == name]})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'name':<28}{'dataset':<24}{'params':>11}  {'source':<7}recipe")
    for row in rows:
        r = row["recipe"]
        recipe = (f"{r['optimizer']} lr {r['learning_rate']:g}, batch {r['batch_size']}, "
                  f"{r['epochs']} epochs" + (", tape loop" if r["loop"] == "tape" else "") +
                  (", cosine" if r["schedule"] == "cosine" else "") + (", augment" if r["augment"] else ""))
        # 0: set by the input (any-dataset models) or by --weights (a transfer's base)
        params = f"{row['params']:>11,}" if row["params"] else f"{'(varies)':>11}"
        shown = row["name"] + (" *" if row["default_for"] else "")
        click.echo(f"{shown:<28}{','.join(row['datasets']):<24}{params}  {row['source']:<7}{recipe}")
    click.echo("\n* the dataset's default: `convzoo train DATASET` without --model trains it; "
               "`convzoo models NAME` shows an entry in full")


# ---------------------------------------------------------------- data
@cli.group(cls=Group, epilog=examples(
    "convzoo data list --data-dir data",
    "convzoo data show fashion_mnist --data-dir data --output grid.png"))
def data():
    """List, show and fetch datasets."""


@data.command("list", epilog=examples(
    "convzoo data list",
    "convzoo data list --data-dir data --json"))
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def data_list(data_dir, as_json):
    """Each dataset: whether found, where, how many images."""
    from convzoo.data import store

    root = store.data_dir(data_dir)
    rows = [store.status(name, root) for name in catalog.names(root)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        state = (", ".join(f"{s} {r[s]:,}" for s in ("train", "validation", "test") if r.get(s))
                 if r["found"] else r["error"] or "not found")
        click.echo(f"{r['name']:<15}{'found' if r['found'] else 'missing':<9}{state:<44}{r['path']}")


@data.command("show", epilog=examples(
    "convzoo data show mnist --data-dir data",
    "convzoo data show fashion_mnist --data-dir data --split test --count 16 --output grid.png"))
@click.argument("name")
@data_dir_option
@click.option("--output", type=click.Path(dir_okay=False),
              help="Write the sample grid to this PNG [default: no picture, the class balance only].")
@click.option("--split", type=click.Choice(["train", "validation", "test"]), default="train",
              show_default=True, help="Which split to draw from.")
@click.option("--count", type=click.IntRange(1, 200), default=32, show_default=True,
              help="How many sample images.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --output file.")
def data_show(name, data_dir, output, split, count, overwrite):
    """A grid of sample images with class names, and the class balance (S7)."""
    import numpy as np

    from convzoo.data import store
    from convzoo.fileio import check_output

    root = store.data_dir(data_dir)
    info = catalog.get(name, root)
    if split not in info.splits:
        raise ConvzooError(f"{name} has no {split} split; choose from {', '.join(info.splits)}")
    if output:
        output = check_output(output, overwrite)
    x, y = store.load(name, root, split)
    counts = np.bincount(np.asarray(y, int), minlength=len(info.classes))
    click.echo(f"{name} {split}: {len(y):,} images, {len(info.classes)} classes, "
               f"shape {tuple(x.shape[1:])}")
    for cls, n in zip(info.classes, counts):
        click.echo(f"  {cls:<14}{n:>7,}  {100 * n / max(len(y), 1):5.1f}%")
    if output:
        from convzoo import plots
        from convzoo.fileio import save_figure

        pick = np.random.default_rng(0).choice(len(y), size=min(count, len(y)), replace=False)
        save_figure(plots.image_grid([x[i] for i in pick], [info.classes[y[i]] for i in pick],
                                     title=f"{name} ({split})"), output)
        click.echo(f"wrote {output}")


@data.command("fetch", epilog=examples(
    "convzoo data fetch mnist",
    "convzoo data fetch cifar10 --data-dir ~/datasets"))
@click.argument("name")
@data_dir_option
def data_fetch(name, data_dir):
    """Download a dataset through keras.datasets (needs the network)."""
    from convzoo.data import store

    root = store.data_dir(data_dir)
    catalog.get(name, root)
    where = store.fetch(name, root)
    click.echo(f"{name} written to {where}")


@data.command("import", epilog=examples(
    "convzoo data import cats_vs_dogs ~/Downloads/dogs-vs-cats/train.zip",
    "convzoo data import cifar10 ~/Downloads/cifar-10-python.tar.gz"))
@click.argument("name")
@click.argument("source", type=click.Path(exists=True))
@data_dir_option
@click.option("--overwrite", is_flag=True, help="Replace an existing dataset folder.")
@click.option("--train", "n_train", type=click.IntRange(min=1),
              help="cats_vs_dogs: training images per class [default: 1000].")
@click.option("--validation", "n_val", type=click.FloatRange(min=0),
              help="Your own images: the fraction of each class cut for validation where the source "
                   "has no validation/ folder [default: 0.1]; cats_vs_dogs: images per class [500].")
@click.option("--test", "n_test", type=click.FloatRange(min=0),
              help="Your own images: the fraction cut for test where the source has no test/ folder "
                   "[default: 0.1]; cats_vs_dogs: images per class [500].")
@click.option("--seed", type=int, help="Seed of the split (cats_vs_dogs: of the shuffle of files "
                                       "without numbers) [default: 0].")
@click.option("--image-size", type=click.IntRange(8, 512),
              help="Your own images: the square input size models take [default: chosen from the images].")
@click.option("--color", type=click.Choice(["rgb", "gray"]),
              help="Your own images: colour mode [default: gray when every image is grayscale].")
def data_import(name, source, data_dir, overwrite, n_train, n_val, n_test, seed, image_size, color):
    """Build dataset NAME from SOURCE (a folder, .zip or .tar.gz); bad images are skipped.

    NAME is a built-in dataset with its own importer (cifar10, cats_vs_dogs), or any new name
    (lower-case letters, digits, - and _) for your own images laid out as <class>/<images> or
    train/<class>/... with optional validation/ (or val/) and test/.
    """
    from convzoo.data import store

    root = store.data_dir(data_dir)
    mod, accepted = catalog.importer(name, root)
    given = {"train": n_train, "validation": n_val, "test": n_test, "seed": seed,
             "image_size": image_size, "color": color}
    given = {k: int(v) if isinstance(v, float) and v.is_integer() else v
             for k, v in given.items() if v is not None}
    refused = [k for k in given if k not in accepted]
    if refused:
        raise ConvzooError(f"{', '.join('--' + k.replace('_', '-') for k in refused)}: not an option of "
                           f"{name}'s import (it takes {', '.join('--' + k.replace('_', '-') for k in accepted) or 'none'})")
    report = mod.import_source(source, store.folder(name, root), overwrite=overwrite, **given)
    print_import(name, report)


def print_import(name, report, echo=click.echo):
    for note in report.get("notes", []):
        err(note)
    ignored = report["ignored"] if isinstance(report.get("ignored"), list) else []
    for entry, why in (ignored + report["skipped"])[:20]:
        err(f"skipped {printable(entry)}: {printable(why)}")
    if len(ignored + report["skipped"]) > 20:
        err(f"... and {len(ignored + report['skipped']) - 20} more (all listed in the dataset card)")
    written = ", ".join(f"{split} {n:,}" for split, n in report["written"].items())
    echo(f"{name} imported to {report['folder']}: {written}; skipped {len(report['skipped'])} "
         f"unreadable file(s)" + (f", {len(ignored)} other file(s)" if ignored else ""))
    if report.get("per_class"):
        splits = list(report["written"])
        echo(f"  {'class':<20}" + "".join(f"{s:>12}" for s in splits))
        for cls, row in report["per_class"].items():
            echo(f"  {cls[:20]:<20}" + "".join(f"{row.get(s, 0):>12,}" for s in splits))


@data.command("check", epilog=examples(
    "convzoo data check mnist --data-dir data",
    "convzoo data check ~/photos/flowers --json"))
@click.argument("target", metavar="NAME|PATH")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def data_check(target, data_dir, as_json):
    """The dataset doctor: unreadable files, duplicates and near-duplicates (within a class, across
    classes, across splits), tiny classes, imbalance, small images, mixed colour modes.

    Exits 1 on a blocking problem: a class with no training images, or test images that are also
    in train (exactly or nearly: pHash at most 6 of 64 bits apart).
    """
    from convzoo.data import check

    report = check.check(target, data_dir)
    click.echo(json.dumps(report) if as_json else check.format_text(report))
    if report["blocking"]:
        sys.exit(1)


# ---------------------------------------------------------------- train
@cli.command(epilog=examples(
    "convzoo train mnist --data-dir data --epochs 5 --output runs/mnist.h5",
    "convzoo train mnist --data-dir data --epochs 5 --output runs/mnist.h5 --resume",
    "convzoo train cifar10 --model cifar10-vgg --save-best --output runs/cifar10-vgg.h5"))
@click.argument("dataset")
@click.option("--model", "model_name",
              help="Zoo model name (`convzoo models` lists them) [default: the dataset's default model: "
                   + ", ".join(f"{d}: {m}" for d, m in zoo.DEFAULT_MODEL.items()) + "].")
@recipe_options
@click.option("--limit", type=click.IntRange(min=1),
              help="Train on the first N training images only [default: all of them].")
@click.option("--weights", help="VGG16 models: imagenet (downloads), none, or a weights .h5 file "
                               "[default: imagenet]; transfer models: the convzoo checkpoint to start from "
                               "(required); any other model: a checkpoint of the same model, to train on "
                               "from it (a warm start) [default: random initial weights].")
@click.option("--seed", type=int, help="Random seed for weights and shuffling [default: 0].")
@click.option("--class-weight", type=click.Choice(["balanced"]),
              help="balanced: weight the loss by inverse class frequency (for imbalanced classes) "
                   "[default: every image weighs the same].")
@data_dir_option
@click.option("--output", type=click.Path(dir_okay=False),
              help="Checkpoint path, .h5 or .keras; auto: the default name, or the first free -2, -3, "
                   "... beside it if taken [default: runs/MODEL.h5, runs/MODEL-DATASET.h5 for a "
                   "model's second dataset].")
@click.option("--overwrite", is_flag=True, help="Replace an existing checkpoint and run folder.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted run with the same --output from its last completed epoch; "
                   "with a larger --epochs, extend a finished run (a cosine schedule decays anew over "
                   "the added epochs).")
@click.option("--save-best", is_flag=True,
              help="Keep the weights of the epoch with the best validation accuracy (or --monitor), "
                   "not the last.")
@click.option("--early-stop", type=click.IntRange(min=1), metavar="N",
              help="Stop when --monitor has not improved for N epochs, and keep the best epoch's weights "
                   "(also when the run reaches its last epoch first). A cosine schedule still decays over "
                   "the full --epochs [default: off, every epoch runs].")
@click.option("--monitor", type=click.Choice(["val_loss", "val_accuracy"]),
              help="What --early-stop and --save-best follow [default: val_loss with --early-stop, "
                   "else val_accuracy].")
@click.option("--deterministic", is_flag=True,
              help="The same command gives the same history and weights: the seed plus TensorFlow's "
                   "op determinism (recorded in the checkpoint). Without it a seeded run starts the "
                   "same but may drift in the last digits. Measured cost (bench/determinism.py, 2-core "
                   "AVX2 CPU): 0.99x the images/s on mnist-cnn, 1.02x on cifar10-vgg, i.e. none "
                   "beyond noise.")
@click.option("--strict", is_flag=True,
              help="Fail on an unreadable image in an image folder instead of skipping it.")
@click.option("--distribute", type=click.Choice(distributed.KINDS),
              help="Train on several devices: mirrored (this machine's GPUs, or its CPU split in "
                   "--devices parts) or multiworker (the cluster in $TF_CONFIG) [default: one device].")
@click.option("--devices", type=click.IntRange(min=1),
              help="--distribute mirrored: how many GPUs, or logical CPUs on a machine without one "
                   "[default: every GPU, else 2].")
@click.option("--dry-run", is_flag=True,
              help="Print the plan (model, full recipe, data, output) and an estimate from a few timed "
                   "steps, then exit without training or writing anything.")
@click.option("--time-budget", type=click.FloatRange(min=0, min_open=True), metavar="MINUTES",
              help="Stop cleanly after the last epoch that fits in MINUTES; --resume continues "
                   "[default: no budget].")
@click.option("--tensorboard", is_flag=True,
              help="Write TensorBoard logs (per-epoch scalars) to the run folder's tensorboard/.")
@click.option("--tensorboard-every", type=click.IntRange(min=1), metavar="N",
              help="With --tensorboard: also log every N training steps [default: per epoch only].")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress, estimate or per-epoch lines on stderr; errors and the result only.")
def train(dataset, model_name, limit, weights, seed, class_weight, data_dir, output, overwrite, resume,
          save_best, early_stop, monitor, deterministic, strict, distribute, devices, dry_run, time_budget,
          tensorboard, tensorboard_every, quiet, **recipe):
    """Train a zoo model on DATASET and save a checkpoint with its run folder.

    DATASET is a dataset name, or a folder of class folders: imported first under the folder's
    name (and reused on the next run while the folder is unchanged).

    The checkpoint is rewritten after every completed epoch, so an interrupted run keeps its
    last good epoch and continues with --resume. Recipe options default to the model's recipe:
    the help below names the values of each dataset's default model; `convzoo models NAME` shows
    any model's.
    """
    from convzoo import train as training
    from convzoo import watch

    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    if tensorboard_every and not tensorboard:
        raise click.UsageError("--tensorboard-every needs --tensorboard")
    if tensorboard:
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            raise ConvzooError("--tensorboard needs the tensorboard package: pip install tensorboard")
    if time_budget and distribute == "multiworker":
        raise click.UsageError("--time-budget works on one machine only: the workers of --distribute "
                               "multiworker would each decide when to stop")
    if os.path.isdir(dataset) and (os.sep in dataset or dataset not in catalog.names(data_dir)):
        from convzoo.data import imported, store

        dataset, report, message = imported.import_once(dataset, store.data_dir(data_dir))
        err(message)
        if report:
            print_import(dataset, report, echo=err)
    p = training.plan(dataset, model_name, output=output, data_dir=data_dir, seed=seed, limit=limit,
                      overwrite=overwrite, resume=resume, save_best=save_best, weights=weights, strict=strict,
                      distribute=distribute, devices=devices, early_stop=early_stop, monitor=monitor,
                      deterministic=deterministic, class_weight=class_weight, **recipe)
    if dry_run:
        for line in watch.dry_run(p):
            click.echo(line)
        return
    opts = watch.Options(quiet=quiet, time_budget=time_budget, tensorboard=tensorboard,
                         tensorboard_every=tensorboard_every)
    meta = training.train(p, log=(lambda msg: None) if quiet else err, opts=opts)
    if p.non_chief:  # a multi-worker run's other workers: the chief writes the checkpoint
        click.echo("worker done; the chief wrote the checkpoint and run folder")
        return
    best = meta["best"]
    stop = (f"; stopped early at epoch {meta['stopped_early']} of {meta['recipe']['epochs']}"
            if meta.get("stopped_early") else "")
    if time_budget and not stop and meta["epochs_run"] < meta["recipe"]["epochs"]:
        stop = f"; stopped by --time-budget after epoch {meta['epochs_run']} of {meta['recipe']['epochs']}"
    kept = (f"; weights from epoch {meta['weights_epoch']} (best {meta['monitor']})"
            if meta.get("weights_from") == "best epoch" else "")
    click.echo(f"saved {p.output} and {p.run_dir}{os.sep} (config.json, history.csv, curves.png"
               f"{', tensorboard/' if tensorboard else ''}); "
               f"best val_accuracy {best['val_accuracy']:.4f} at epoch {best['epoch']}{stop}{kept}")


# ---------------------------------------------------------------- evaluate / predict
def resolve_checkpoint(name):
    """A checkpoint path, or a bundled model's name (mnist, cifar10, ...) meaning models/<name>.h5."""
    return bundled.resolve(name)


@cli.command(epilog=examples(
    "convzoo evaluate mnist --data-dir data",
    "convzoo evaluate runs/mnist.h5 --data-dir data --report-dir runs/mnist-report",
    "convzoo evaluate runs/mnist.h5 --data-dir data --limit 200 --json"))
@click.argument("checkpoint")
@data_dir_option
@click.option("--limit", type=click.IntRange(min=1),
              help="Score only the first N test images [default: the whole test set].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--report-dir", type=click.Path(file_okay=False),
              help="Write report.html (self-contained) with its PNGs and metrics.json here "
                   "[default: no report, the scores only].")
@click.option("--dataset", help="Score on this dataset's test set [default: the checkpoint's own].")
@click.option("--record", is_flag=True,
              help="Store the result in the checkpoint's metadata (for `convzoo models --results`).")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
@click.option("--tta", is_flag=True,
              help="Average over the test-time views stored in the checkpoint (e.g. mirror+shift1).")
def evaluate(checkpoint, data_dir, limit, as_json, report_dir, dataset, record, tta, quiet):
    """Score CHECKPOINT (a file, or a dataset name for a bundled model) on the test set."""
    from convzoo import evaluate as ev

    path = resolve_checkpoint(checkpoint)
    result = ev.evaluate(path, data_dir, limit, report_dir, dataset, tta=tta, quiet=quiet)
    if tta:
        err(f"test-time augmentation: {result['tta']} ({result['tta_from']})")
    if record:
        if limit or dataset:
            raise ConvzooError("--record stores full test-set results only: drop --limit and --dataset")
        from convzoo import checkpoint as ckpt
        import datetime

        # with --tta the figure is kept apart from the plain one: the table shows both
        ckpt.update_meta(path, **{"test_tta" if tta else "test": {
            k: result[k] for k in ("accuracy", "loss", "n", "dataset", "tta") if k in result} | {
            "date": datetime.date.today().isoformat()}})
    if as_json:
        echo_json(result)
    else:
        click.echo(ev.format_text(result, [r["class"] for r in result["per_class"]]))
        if report_dir:
            click.echo(f"\nreport written to {report_dir}")


@cli.command(epilog=examples(
    "convzoo compare mnist fashion_mnist",
    "convzoo compare models --output compare.png",
    "convzoo compare models/mnist.h5 models/cifar10.h5 --json"))
@click.argument("checkpoints", nargs=-1, required=True, metavar="CHECKPOINT...")
@click.option("--output", type=click.Path(dir_okay=False),
              help="Write the overlaid validation curves to this PNG [default: no picture].")
@click.option("--overwrite", is_flag=True, help="Replace an existing --output file.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per checkpoint.")
def compare(checkpoints, output, overwrite, as_json):
    """Compare runs: epochs, best validation accuracy, test accuracy, time, parameters.

    CHECKPOINT is a .h5/.keras file, a folder (every checkpoint in it), or a dataset name for a
    bundled model. Reads the stored metadata only: no TensorFlow, nothing re-evaluated.
    """
    from convzoo import compare as cmp
    from convzoo.fileio import check_output

    if output:
        output = check_output(output, overwrite)
    rows = cmp.collect([resolve_checkpoint(c) for c in checkpoints])
    if output:
        from convzoo.fileio import save_figure

        save_figure(cmp.figure(rows), output)
    if as_json:
        echo_json(rows)
    else:
        click.echo(cmp.table(rows))
    if output:
        err(f"wrote {output}")


@cli.command(epilog=examples(
    "convzoo export mnist --format tflite --data-dir data",
    "convzoo export runs/mnist.h5 --format onnx --data-dir data",
    "convzoo export runs/mnist.h5 --format savedmodel --output runs/mnist_serving"))
@click.argument("checkpoint")
@click.option("--format", "fmt", required=True, metavar="|".join(exports.FORMATS),
              help=", ".join(exports.TITLES.values()) + ".")
@click.option("--output", type=click.Path(),
              help="Where to write [default: beside the checkpoint: "
                   + ", ".join("X" + s + ("/" if not s.startswith(".") else "") for s in exports.FORMATS.values()) + "].")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@data_dir_option
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Test images for the self-check against the checkpoint.")
@click.option("--quantize", type=click.Choice(["int8"]),
              help="tflite: post-training int8, calibrated on 500 training images [default: float32; "
                   "output X_int8.tflite].")
@click.option("--margin", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="--quantize: accuracy points the export may lose against the checkpoint.")
def export(checkpoint, fmt, output, overwrite, data_dir, limit, quantize, margin):
    """Write CHECKPOINT for serving in a --format (TF Serving, LiteRT, ONNX), checked against it.

    CHECKPOINT is a .h5/.keras file, or a dataset name for a bundled model. The output carries the
    class names and preprocessing, and takes the same 0..255 input.
    """
    from convzoo import export as ex

    result = ex.export(resolve_checkpoint(checkpoint), fmt, output, overwrite, data_dir, limit, log=err,
                       quantize=quantize, margin=margin)
    click.echo(ex.format_text(result))


@cli.command(epilog=examples(
    "convzoo predict data/samples/mnist_9998_5.png --model mnist",
    "convzoo predict data/samples --model fashion_mnist --top-k 1 --json",
    "convzoo predict data/samples/fashion_mnist_9997_Bag_photo.jpg --model fashion_mnist --output preds.csv"))
@click.argument("images", nargs=-1, required=True)
@click.option("--model", "model_path",
              help="A bundled model's name (mnist, fashion_mnist, cifar10, cats_vs_dogs), a checkpoint "
                   "file, or a .tflite from `convzoo export` [default: $CONVZOO_MODEL, else "
                   f"{bundled.DEFAULT}].")
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True,
              help="How many labels per image, most likely first.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.option("--no-litert", is_flag=True,
              help="Run a .h5/.keras checkpoint through TensorFlow, not its LiteRT twin.")
@click.option("--output", type=click.Path(dir_okay=False),
              help="Write one row per image to this .csv or .jsonl file [default: print them].")
@click.option("--overwrite", is_flag=True, help="Replace an existing --output file.")
@click.option("--save-input", type=click.Path(file_okay=False),
              help="Write each preprocessed input (what the model saw) as a PNG in this folder "
                   "[default: none written].")
@click.option("--tta", is_flag=True,
              help="Average over the test-time views stored in the checkpoint (e.g. mirror+shift1).")
def predict(images, model_path, top_k, as_json, no_litert, output, overwrite, save_input, tta):
    """Top-k labels with probabilities for each image (files or folders)."""
    from convzoo import predict as pr

    if output:
        from convzoo import resultfile

        output = resultfile.check(output, overwrite)
    if not model_path:
        model_path, why = bundled.default()
        err(f"using model {model_path} ({why}); choose another with --model NAME or CHECKPOINT "
            f"(bundled: {', '.join(bundled.names()) or 'none found'}) or set ${bundled.ENV_MODEL}")
    results = pr.predict(list(images), resolve_checkpoint(model_path), top_k, log=err,
                         use_twin=not no_litert, save_input=save_input,
                         tta=tta)
    for r in results:
        for w in r.get("warnings", []):
            err(f"warning: {printable(r['file'])}: {printable(w)}")
    if output:
        resultfile.write(results, output)
        err(f"wrote {len(results)} row(s) to {output}")
    elif as_json:
        echo_json(results)
    else:
        for r in results:
            if r["error"]:
                continue
            preds = ", ".join(f"{printable(p['label'])} {p['probability']:.3f}" for p in r["predictions"])
            click.echo(f"{printable(r['file'])}: {preds}")
    failed = [r for r in results if r["error"]]
    for r in failed:
        err(f"error: {printable(r['error'])}")
    if failed:
        sys.exit(1)


# ---------------------------------------------------------------- serve
@cli.command(epilog=examples(
    "convzoo serve --model mnist",
    "convzoo serve --model mnist --model cifar10 --port 8080"))
@click.option("--model", "models", multiple=True,
              help="A bundled model's name, a checkpoint or a .tflite; repeat to serve several "
                   "[default: every bundled model].")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback lets other machines in (no authentication).")
@click.option("--port", type=click.IntRange(0, 65535), default=8501, show_default=True,
              help="TCP port (TF Serving's REST port); 0 picks a free one.")
def serve(models, host, port):
    """TF Serving's REST API and a page to draw or drop an image, for MODELs.

    GET /v1/models/NAME and /metadata, POST /v1/models/NAME:predict with {"instances": [...]} and
    POST /v1/models/NAME:classify-image with an image file; the page is at /.
    """
    from convzoo import serve as srv

    served = srv.load(list(models) or bundled.names(), log=err)
    if not served:
        raise ConvzooError("no models to serve: give --model NAME or CHECKPOINT")
    app = srv.create_app(served, srv.trusted(host, port))
    server = srv.make_server(app, host, port)
    if srv.trusted(host, port) is None:
        err(f"warning: listening on {host}: anyone who can reach this address can use the models "
            "(there is no authentication)")
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"serving {', '.join(served)} on http://{shown}:{server.port}/ (Ctrl-C to stop)")
    sys.stdout.flush()
    try:
        server.serve_forever()
    finally:
        server.server_close()


@cli.command(epilog=examples(
    "convzoo explain data/samples/mnist_9997_4_photo.jpg --model mnist",
    "convzoo explain data/samples/fashion_mnist_9997_Bag_photo.jpg --model fashion_mnist "
    "--output runs/explain"))
@click.argument("images", nargs=-1, required=True)
@click.option("--model", "model_path", required=True,
              help="Checkpoint file, or a dataset name (mnist, cifar10, ...) for a bundled model.")
@click.option("--output", type=click.Path(file_okay=False), default="explain", show_default=True,
              help="Folder for the pictures: one subfolder per image, filters.png once.")
@click.option("--class", "class_name",
              help="Grad-CAM for this class (name or index) [default: the top predicted class].")
@click.option("--overwrite", is_flag=True, help="Write into an existing --output folder.")
def explain(images, model_path, output, class_name, overwrite):
    """Show what the model saw, where it looked (Grad-CAM) and each conv layer's feature maps."""
    from convzoo import explain as ex

    for r in ex.explain(list(images), resolve_checkpoint(model_path), output, class_name, overwrite):
        click.echo(f"{r['file']}: {r['label']} {r['probability']:.3f} -> {r['folder']}{os.sep} "
                   f"({', '.join(r['files'])})")
    click.echo(f"first layer's filters: {os.path.join(output, 'filters.png')}")


@cli.command(epilog=examples(
    "convzoo eject mnist-cnn",
    "convzoo eject mlp --dataset mnist --output runs/mlp_mnist.py"))
@click.argument("model_name", metavar="MODEL")
@click.option("--dataset", help="Dataset for a model that fits several (mlp) [default: its first].")
@click.option("--output", type=click.Path(dir_okay=False), help="Script path [default: ./MODEL.py].")
@click.option("--weights", help="catsdogs-transfer*: the convzoo checkpoint whose conv base it starts "
                                "from (required); vgg16-*: imagenet or a weights file [default: imagenet; "
                                "other models take none].")
@click.option("--overwrite", is_flag=True, help="Replace an existing script.")
def eject(model_name, dataset, output, weights, overwrite):
    """Write MODEL's recipe as one standalone Keras script (data, network, training, save)."""
    from convzoo import eject as ej

    path = ej.eject(model_name, dataset, output, overwrite, weights)
    click.echo(f"wrote {path}; run it with: python {path} --data-dir DATA_DIR")
