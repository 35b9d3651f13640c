"""`convzoo models NAME`: one zoo entry in full: its seed row, recipe with every default, and the
layers Keras builds for a dataset (built, never trained)."""
import dataclasses
import re
import textwrap

from convzoo import bundled, zoo
from convzoo import data as catalog
from convzoo.errors import ConvzooError
from convzoo.seeds import SEEDS

MARKS = {"": "", "+": "convzoo's improved design on this row's idea",
         "*": "this row's method on a base convzoo trains itself (no download)"}
TRANSFER_BASE = "cifar10"  # the bundled model whose conv base the transfer entries show by default


def seed_row(source):
    """(row id, what the mark means, the row) for a source such as S3, S3+ or S11*; row None if the
    source names no seed row."""
    m = re.fullmatch(r"(S\d+)([+*]?)", source or "")
    if not m or m.group(1) not in SEEDS:
        return source, "", None
    return m.group(1), MARKS[m.group(2)], SEEDS[m.group(1)]


def default_for(name):
    return [d for d, m in zoo.DEFAULT_MODEL.items() if m == name]


def describe(name, dataset=None, summary=True):
    """Everything about one entry, as a dict; with summary, the Keras layers for `dataset` (default:
    the entry's first)."""
    spec = zoo.get_spec(name)
    dataset = dataset or (TRANSFER_BASE if spec.datasets == (zoo.ANY,) else spec.datasets[0])
    catalog.get(dataset)
    if not spec.fits(dataset):
        raise ConvzooError(f"{name} is built for {', '.join(spec.datasets)}, not {dataset}")
    row_id, mark, row = seed_row(spec.source)
    out = {"name": name, "datasets": list(spec.datasets), "default_for": default_for(name),
           "description": spec.description, "source": spec.source,
           "seed_row": None if row is None else {"row": row_id, "mark": mark, **row},
           "head": spec.head, "reported": spec.reported,
           "recipe": dataclasses.asdict(spec.recipe), "train_defaults": train_defaults(name, dataset)}
    if summary:
        out["summary"] = layers(name, dataset)
    return out


def train_defaults(name, dataset):
    """The `convzoo train` settings outside the recipe, as this entry gets them."""
    from convzoo.train import default_output

    spec = zoo.get_spec(name)
    weights = ("imagenet (downloads; none or a local file also work)" if spec.weights == "imagenet"
               else "the bundled model of the same colour (models/cifar10.h5 for RGB, "
                    "models/fashion_mnist.h5 for gray), or --weights CHECKPOINT" if spec.bundled_base
               else "required: a transfer checkpoint (stage 1)" if spec.weights == "base" and "finetune" in name
               else "required: a convzoo checkpoint (e.g. models/cifar10.h5)" if spec.weights == "base"
               else "none (random initial weights)")
    return {"seed": 0, "output": default_output(name, dataset), "weights": weights}


def layers(name, dataset):
    """The model Keras builds for `dataset`: per layer its name, type, output shape and parameters."""
    import numpy as np

    from convzoo import backend

    backend.load()
    info = catalog.get(dataset)
    weights, note = None, ""
    spec = zoo.get_spec(name)
    if spec.weights == "base":
        weights = bundled.path(TRANSFER_BASE)
        note = (f"with the conv base of the bundled {TRANSFER_BASE} model; another --weights "
                "checkpoint gives another base")
    elif spec.weights == "imagenet":
        note = "VGG16 built without its ImageNet weights (nothing downloaded); the shapes and counts are the same"
    model = zoo.build_model(name, dataset, info.input_shape, len(info.classes), weights=weights)
    rows = []
    for layer in model.layers:
        trainable = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
        rows.append({"name": layer.name, "type": type(layer).__name__,
                     "output_shape": list(layer.output.shape), "params": int(layer.count_params()),
                     "trainable_params": trainable})
    total = int(model.count_params())
    trainable = sum(r["trainable_params"] for r in rows)
    return {"dataset": dataset, "input_shape": list(info.input_shape), "classes": len(info.classes),
            "layers": rows, "params": total, "trainable_params": trainable, "note": note}


def format_text(d, options=()):
    """The human-readable card; `options` are train's option names, to show which flag sets what."""
    wrap = lambda text, indent: textwrap.fill(text, 100, initial_indent=indent,  # noqa: E731
                                              subsequent_indent=indent + "  ")
    lines = [wrap(f"{d['name']}: {d['description']}", "")]
    lines.append(f"datasets: {', '.join(d['datasets'])}" + (
        f"; the default model of {', '.join(d['default_for'])} (`convzoo train "
        f"{d['default_for'][0]}` without --model)" if d["default_for"] else ""))
    row = d["seed_row"]
    lines.append("")
    if row:
        mark = f" ({row['mark']})" if row["mark"] else ""
        lines += [wrap(f"source: {d['source']}{mark}; docs/seeds.md row {row['row']}: {row['system']} "
                       f"(notes {row['notes']})", ""),
                  wrap(f"architecture: {row['architecture']}", "  "), wrap(f"recipe: {row['recipe']}", "  "),
                  wrap(f"figure: {row['figure']}", "  ")]
    else:
        lines.append(f"source: {d['source']}")
    if d["reported"]:
        lines.append(wrap(f"reported: {d['reported']}", ""))
    lines += ["", "recipe, with every default (set by the train option shown; the others are fixed by the entry):"]
    rows = []
    for key, value in {**d["recipe"], **d["train_defaults"]}.items():
        flag = key.replace("_", "-")
        flag = (f"--{flag}/--no-{flag}" if isinstance(value, bool) and flag in options else
                f"--{flag}" if flag in options else "")
        shown = ("on" if value else "off") if isinstance(value, bool) else (
            f"{value:g}" if isinstance(value, float) else str(value))
        rows.append((key, flag, shown))
    rows.append(("head", "", d["head"]))
    width = max(len(flag) for _, flag, _ in rows) + 2  # --bn-scale/--no-bn-scale is 24 characters
    lines += [f"  {key:<18}{flag:<{width}}{shown}" for key, flag, shown in rows]
    s = d.get("summary")
    if s:
        shape = "x".join(map(str, s["input_shape"]))
        lines += ["", f"layers for {s['dataset']} ({shape} input, {s['classes']} classes), built, not trained:"]
        table = [("layer (type)", "output shape", "params")] + [
            (f"{r['name']} ({r['type']})", str(tuple(r["output_shape"])).replace("None", "batch"),
             f"{r['params']:,}" + ("" if r["trainable_params"] == r["params"] else
                                   f" ({r['trainable_params']:,} trainable)"))
            for r in s["layers"]]
        w = [max(len(t[i]) for t in table) for i in range(3)]
        lines += [f"  {a:<{w[0]}}  {b:<{w[1]}}  {c:>{w[2]}}" for a, b, c in table]
        lines.append(f"  total {s['params']:,} parameters, {s['trainable_params']:,} trainable, "
                     f"{s['params'] - s['trainable_params']:,} frozen")
        if s["note"]:
            lines.append(f"  ({s['note']})")
    return "\n".join(lines)
