"""The results table of trained checkpoints, built from their stored metadata (h5py only)."""
import glob
import os

from convzoo import checkpoint, zoo
from convzoo.errors import ConvzooError


def collect(folder):
    """One row per .h5 checkpoint in `folder`, sorted by file name."""
    rows = []
    for path in sorted(glob.glob(os.path.join(folder, "*.h5"))):
        meta = checkpoint.read_meta(path)
        spec = zoo.REGISTRY.get(meta["model"])
        recipe = meta.get("recipe", {})
        test = meta.get("test") or {}
        command = (f"convzoo train {meta['dataset']} --model {meta['model']} --seed {meta.get('seed', 0)}"
                   + (f" --limit {meta['limit']}" if meta.get("limit") else "")
                   + (" --save-best" if meta.get("weights_from") == "best epoch" else "")
                   + f" --data-dir DATA --output {os.path.basename(path)}")
        rows.append({
            "file": os.path.basename(path), "dataset": meta["dataset"], "model": meta["model"],
            "source": meta.get("source", ""), "params": meta.get("params") or (spec.params if spec else None),
            "size_mb": round(os.path.getsize(path) / 2**20, 2),
            "test_accuracy": test.get("accuracy"), "test_n": test.get("n"),
            "epochs": meta.get("epochs_run"), "train_minutes": round(meta.get("train_seconds", 0) / 60, 1),
            "batch_size": recipe.get("batch_size"), "command": command,
            "seed_figure": spec.reported if spec else "",
        })
    if not rows:
        raise ConvzooError(f"no .h5 checkpoints in {folder}")
    return rows


def markdown(rows):
    lines = ["| file | dataset | model (row) | parameters | size | test accuracy | epochs | training time "
             "| reproduce | seed figure |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        acc = (f"{100 * r['test_accuracy']:.2f}% (n={r['test_n']:,})" if r["test_accuracy"] is not None
               else "not evaluated (run `convzoo evaluate FILE --record`)")
        lines.append(f"| {r['file']} | {r['dataset']} | {r['model']} ({r['source']}) | {r['params']:,} "
                     f"| {r['size_mb']} MB | {acc} | {r['epochs']} | {r['train_minutes']} min "
                     f"| `{r['command']}` | {r['seed_figure']} |")
    return "\n".join(lines)
