"""Test-set evaluation: accuracy, loss, per-class precision/recall/F1 and the confusion matrix (S5)."""
import os

import numpy as np

from convzoo.errors import CheckpointError


def confusion_matrix(y_true, y_pred, k):
    """Rows = true class, columns = predicted class."""
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def per_class(cm, class_names):
    rows = []
    for i, name in enumerate(class_names):
        tp = cm[i, i]
        predicted, actual = cm[:, i].sum(), cm[i, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"class": name, "precision": round(float(precision), 4),
                     "recall": round(float(recall), 4), "f1": round(float(f1), 4),
                     "support": int(actual)})
    return rows


def cross_entropy(probs, y):
    p = np.clip(probs[np.arange(len(y)), np.asarray(y, int)], 1e-7, 1.0)
    return float(-np.log(p).mean())


def score(probs, y, class_names):
    """The result object `convzoo evaluate --json` prints. Balanced accuracy is the mean recall over
    the classes with test images; macro F1 the mean F1 over the same classes."""
    pred = probs.argmax(axis=1)
    cm = confusion_matrix(y, pred, len(class_names))
    rows = per_class(cm, class_names)
    present = [r for r in rows if r["support"]]
    return {"accuracy": round(float((pred == y).mean()), 6), "loss": round(cross_entropy(probs, y), 6),
            "balanced_accuracy": round(float(np.mean([r["recall"] for r in present])), 6) if present else 0.0,
            "macro_f1": round(float(np.mean([r["f1"] for r in present])), 6) if present else 0.0,
            "n": int(len(y)), "per_class": rows, "confusion_matrix": cm.tolist()}


def check_fits(meta, dataset_info, path):
    """A checkpoint used with data of another shape or class count: a clear error naming both."""
    if tuple(meta["input_shape"]) != tuple(dataset_info.input_shape) or \
            len(meta["classes"]) != len(dataset_info.classes):
        raise CheckpointError(
            f"{path} is a {meta['dataset']} model (input {tuple(meta['input_shape'])}, "
            f"{len(meta['classes'])} classes) and cannot be evaluated on {dataset_info.name} "
            f"(input {tuple(dataset_info.input_shape)}, {len(dataset_info.classes)} classes)")


def evaluate(path, data_dir=None, limit=None, report_dir=None, dataset=None, tta=False, quiet=False):
    """Score a checkpoint on its dataset's untouched test split; optionally write report.html and its PNGs."""
    from convzoo import checkpoint
    from convzoo import data as catalog
    from convzoo.data import store
    from convzoo import tta as views
    from convzoo.predict import run_model
    from convzoo.progress import Progress

    meta = checkpoint.read_meta(path, need=checkpoint.USE_FIELDS)
    root = store.data_dir(data_dir)
    info = catalog.get(dataset or meta["dataset"], root)
    check_fits(meta, info, path)
    x, y = store.load(info.name, root, "test")
    x, y = store.subset(x, y, limit, info)  # the same per-class subset train --limit takes
    missing = [c for c, n in zip(info.classes, np.bincount(np.asarray(y, int), minlength=len(info.classes)))
               if n == 0]
    if missing:
        import warnings

        warnings.warn(f"{len(missing)} of {len(info.classes)} classes have no test images"
                      f"{' in this --limit subset' if limit else ''} ({', '.join(missing[:5])}"
                      f"{', ...' if len(missing) > 5 else ''}): their recall and F1 are not measured",
                      stacklevel=2)
    model, meta = checkpoint.load(path)
    if tta:
        probs = views.probabilities(model, x, meta)
    else:
        bar = Progress(len(y), label=f"evaluating on {info.name} test", unit="images", quiet=quiet)
        probs = run_model(model, x, meta["head"], progress=bar)
    result = score(probs, np.asarray(y, int), meta["classes"])
    result["dataset"], result["checkpoint"] = info.name, os.fspath(path)
    if tta:  # which views were averaged (--tta), and whether the recipe stored them
        result["tta"], result["tta_from"] = views.views_of(meta)
    if report_dir:
        write_report(report_dir, result, x, y, probs, meta, model)
    return result


def write_report(report_dir, result, x, y, probs, meta, model):
    """report.html with its PNGs and metrics.json (convzoo/report.py)."""
    from convzoo import report

    return report.write(report_dir, result, x, y, probs, meta, model)


def format_text(result, classes):
    """The human-readable report; names from the checkpoint made printable."""
    from convzoo.text import printable

    classes = [printable(c) for c in classes]
    result = {**result, "checkpoint": printable(result["checkpoint"]),
              "per_class": [{**r, "class": printable(r["class"])} for r in result["per_class"]]}
    lines = [f"{result['checkpoint']} on {result['dataset']} test set ({result['n']} images)",
             f"accuracy {result['accuracy']:.4f}  loss {result['loss']:.4f}",
             f"balanced accuracy {result['balanced_accuracy']:.4f}  macro F1 {result['macro_f1']:.4f}", "",
             f"{'class':>14} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>7}"]
    for r in result["per_class"]:
        lines.append(f"{r['class'][:14]:>14} {r['precision']:9.4f} {r['recall']:7.4f} "
                     f"{r['f1']:7.4f} {r['support']:7d}")
    width = max(5, max(len(str(v)) for row in result["confusion_matrix"] for v in row) + 1)
    short = [c[:width - 1] for c in classes]
    lines += ["", "confusion matrix (rows: true, columns: predicted)",
              " " * 14 + "".join(f"{c:>{width}}" for c in short)]
    for name, row in zip(classes, result["confusion_matrix"]):
        lines.append(f"{name[:13]:>13} " + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)
