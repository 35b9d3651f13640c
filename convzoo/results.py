"""The results table of trained checkpoints, built from their stored metadata (h5py only)."""
import dataclasses
import glob
import os
import shlex

from convzoo import checkpoint, zoo
from convzoo.errors import ConvzooError

def best_epoch(history):
    """(epoch, val_accuracy) of the best validation epoch (1-based; the first of equals), or None."""
    vals = (history or {}).get("val_accuracy") or []
    scored = [(v, -i) for i, v in enumerate(vals) if isinstance(v, (int, float))]
    if not scored:
        return None
    v, i = max(scored)
    return 1 - i, float(v)


def command(meta, filename):
    """The `convzoo train` command that reproduces a checkpoint: the one it stored, else one with
    the options that differ from its zoo recipe; a run started from another checkpoint is preceded
    by that one's."""
    spec = zoo.REGISTRY.get(meta["model"])
    recipe, default = meta.get("recipe") or {}, (dataclasses.asdict(spec.recipe) if spec else {})
    opts = ""
    for f in sorted(zoo.options(), key=lambda f: f.type is bool):  # the values first, then the flags
        k = f.name
        if k not in recipe or recipe[k] == default.get(k):
            continue
        value = recipe[k]
        opts += (f" {zoo.flag(k, value)}" if f.type is bool else
                 f" {zoo.flag(k)} {value:g}" if isinstance(value, float) else f" {zoo.flag(k)} {value}")
    origin = meta.get("started_from")
    if isinstance(meta.get("repeat"), str):  # the run stored its command, every option spelled out
        line = _portable(meta["repeat"], filename)
    else:
        line = (f"convzoo train {meta['dataset']} --model {meta['model']} --seed {meta.get('seed', 0)}"
                + (f" --limit {meta['limit']}" if meta.get("limit") else "") + opts
                + (f" --weights {origin['file']}" if origin else "")
                + (" --save-best" if meta.get("weights_from") == "best epoch" else "")
                + f" --data-dir DATA --output {filename}")
    return (command(origin, origin["file"]) + " && " if origin else "") + line


def _portable(repeat, filename):
    """A run's stored command (every option spelled out) with this machine's paths replaced: the
    data folder by DATA, the output by `filename`, a --weights file by its name; no --overwrite."""
    args, out = shlex.split(repeat), []
    for i, arg in enumerate(args):
        before = args[i - 1] if i else ""
        if arg == "--overwrite":
            continue
        out.append("DATA" if before == "--data-dir" else filename if before == "--output"
                   else os.path.basename(arg) if before == "--weights" else arg)
    return shlex.join(out)


def _chain(meta):
    """(epochs, seconds) over a checkpoint and the checkpoints it started from."""
    epochs, seconds = [meta.get("epochs_run") or 0], meta.get("train_seconds") or 0
    origin = meta.get("started_from")
    while origin:
        epochs.insert(0, origin.get("epochs_run") or 0)
        seconds += origin.get("train_seconds") or 0
        origin = origin.get("started_from")
    return "+".join(map(str, epochs)), seconds


def collect(folder):
    """One row per .h5 checkpoint in `folder`, sorted by file name."""
    rows = []
    for path in sorted(glob.glob(os.path.join(folder, "*.h5"))):
        meta = checkpoint.read_meta(path)
        try:
            rows.append(_row(path, meta))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            field = f"field {e}" if isinstance(e, KeyError) else f"a field of the wrong type ({e})"
            raise ConvzooError(f"{path}: convzoo metadata lacks {field}; "
                               "re-save the checkpoint with convzoo") from None
    if not rows:
        raise ConvzooError(f"no .h5 checkpoints in {folder}")
    return rows


def _row(path, meta):
    """One results row from a checkpoint's metadata; strings made printable."""
    from convzoo.text import printable

    for field in ("model", "dataset"):
        if not isinstance(meta[field], str):
            raise TypeError(f"'{field}' is not a string")
    for field in ("recipe", "test", "test_tta", "history", "started_from"):
        if meta.get(field) is not None and not isinstance(meta[field], dict):
            raise TypeError(f"'{field}' is not an object")
    numbers = {"params": meta.get("params"), "seed": meta.get("seed"), "epochs_run": meta.get("epochs_run"),
               "train_seconds": meta.get("train_seconds"), **{f"test.{k}": (meta.get("test") or {}).get(k)
                                                             for k in ("accuracy", "n")},
               "test_tta.accuracy": (meta.get("test_tta") or {}).get("accuracy"),
               "recipe.batch_size": (meta.get("recipe") or {}).get("batch_size")}
    for field, value in numbers.items():
        if value is not None and (type(value) not in (int, float)):  # noqa: E721 -- not bool
            raise TypeError(f"'{field}' is not a number")
    spec = zoo.REGISTRY.get(meta["model"])
    recipe = meta.get("recipe", {})
    test, tta = meta.get("test") or {}, meta.get("test_tta") or {}
    epochs, seconds = _chain(meta)
    best = best_epoch(meta.get("history"))
    row = {
        "file": os.path.basename(path), "dataset": meta["dataset"], "model": meta["model"],
        "source": meta.get("source", ""), "params": meta.get("params") or (spec.params if spec else None),
        "size_mb": round(os.path.getsize(path) / 2**20, 2),
        "test_accuracy": test.get("accuracy"), "test_n": test.get("n"),
        "best_val_accuracy": best and best[1], "best_epoch": best and best[0],
        "tta_accuracy": tta.get("accuracy"), "tta_views": tta.get("tta"),
        "epochs": epochs, "train_minutes": round(seconds / 60, 1),
        "batch_size": recipe.get("batch_size"), "command": command(meta, os.path.basename(path)),
        "repeat": meta.get("repeat"),  # the exact command the run stored, every option spelled out
        "seed_figure": spec.reported if spec else "",
    }
    return {k: printable(v) if isinstance(v, str) else v for k, v in row.items()}


def _count(n):
    return f"{n:,}" if isinstance(n, (int, float)) else "?"


def markdown(rows):
    lines = ["| file | dataset | model (row) | parameters | size | test accuracy | epochs | training time "
             "| reproduce | seed figure |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["test_accuracy"] is not None:
            acc = f"{100 * r['test_accuracy']:.2f}% (n={_count(r['test_n'])})"
        elif r["best_val_accuracy"] is not None:
            acc = (f"not evaluated; best validation {100 * r['best_val_accuracy']:.2f}% at epoch "
                   f"{r['best_epoch']} (`convzoo evaluate FILE --record` adds the test score)")
        else:
            acc = "not evaluated (run `convzoo evaluate FILE --record`)"
        if r.get("tta_accuracy") is not None:  # `convzoo evaluate FILE --tta --record`
            acc += f"; {100 * r['tta_accuracy']:.2f}% with --tta ({r['tta_views']})"
        lines.append(f"| {r['file']} | {r['dataset']} | {r['model']} ({r['source']}) | {_count(r['params'])} "
                     f"| {r['size_mb']} MB | {acc} | {r['epochs']} | {r['train_minutes']} min "
                     f"| `{r['command']}` | {r['seed_figure']} |")
    return "\n".join(lines)
