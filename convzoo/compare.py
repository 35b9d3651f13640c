"""Several runs side by side: a table from their checkpoints' metadata and their validation curves
overlaid in one figure. h5py and matplotlib only: no TensorFlow."""
import glob
import os

from convzoo import checkpoint, results, zoo
from convzoo.progress import span
from convzoo.errors import ConvzooError

MAX_RUNS = 20  # one figure stays readable; more is a folder to sort, not a comparison


def expand(paths):
    """Checkpoint files; a folder stands for the .h5 and .keras files in it."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(glob.glob(os.path.join(p, "*.h5")) + glob.glob(os.path.join(p, "*.keras")))
            if not found:
                raise ConvzooError(f"{p}: no .h5 or .keras checkpoints in this folder")
            out += found
        else:
            out.append(p)
    if len(out) > MAX_RUNS:
        raise ConvzooError(f"{len(out)} checkpoints given; compare at most {MAX_RUNS} at once")
    return out


def row(path):
    """What `convzoo compare` shows of one checkpoint."""
    meta = checkpoint.read_meta(path)
    spec = zoo.REGISTRY.get(meta.get("model"))
    history = meta.get("history") or {}
    epoch, acc = results.best_epoch(history) or (None, None)
    test = meta.get("test") or {}
    return {
        "file": os.fspath(path), "model": meta.get("model"), "dataset": meta.get("dataset"),
        "epochs": meta.get("epochs_run", len(history.get("loss") or [])),
        "best_val_accuracy": acc, "best_epoch": epoch,
        "test_accuracy": test.get("accuracy"), "test_n": test.get("n"),
        "train_seconds": meta.get("train_seconds"),
        "params": meta.get("params") or (spec.params if spec and spec.params else None),
        "started_from": (meta.get("started_from") or {}).get("file"),
        "val_accuracy": history.get("val_accuracy") or [], "val_loss": history.get("val_loss") or [],
    }


def collect(paths):
    return [row(p) for p in expand(paths)]


def duration(seconds):
    return "-" if seconds is None else span(seconds, minute_digits=1)


def labels(rows):
    """Short, distinct names for the legend and the table: file names, with folders if they clash."""
    names = [os.path.basename(r["file"]) for r in rows]
    return names if len(set(names)) == len(names) else [r["file"] for r in rows]


def table(rows):
    """A fixed-width table, one line per checkpoint."""
    head = ("run", "model", "dataset", "epochs", "best val acc", "at epoch", "test acc", "time", "params")
    lines = []
    for name, r in zip(labels(rows), rows):
        val = f"{r['best_val_accuracy']:.4f}" if r["best_val_accuracy"] is not None else "-"
        test = (f"{r['test_accuracy']:.4f} (n={r['test_n']:,})" if r["test_accuracy"] is not None
                else "not recorded")
        lines.append((name, r["model"] or "?", r["dataset"] or "?", str(r["epochs"]), val, str(r["best_epoch"] or "-"), test,
                      duration(r["train_seconds"]), f"{r['params']:,}" if r["params"] else "-"))
    widths = [max(len(x[i]) for x in [head, *lines]) for i in range(len(head))]
    right = {3, 4, 5, 6, 7, 8}
    fmt = lambda cells: "  ".join(c.rjust(w) if i in right else c.ljust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([fmt(head), *map(fmt, lines)])


def figure(rows):
    """Validation accuracy and loss per epoch of every run, overlaid, each best epoch marked."""
    from convzoo import plots

    return plots.compare(list(zip(labels(rows), rows)))
