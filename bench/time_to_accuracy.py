"""Time to accuracy: per training run, the minutes of training until its validation accuracy first
reached each target of its dataset (last round's and the record issue's), and where it ended.

    python bench/time_to_accuracy.py RUN [RUN ...] [--json] [--no-peak]

RUN is a checkpoint (.h5: its stored history, and test figures recorded by `convzoo evaluate
--record [--tta]`) or a run folder (X_run/ with history.csv: a run still going). Minutes are the
summed epoch times `convzoo train` logged (training and validation, not start-up), on this machine,
printed with its CPU flags and a measured matmul peak so a second machine can be compared.
Validation accuracy is the held-out part of the training set; the untouched test figure is the
checkpoint's recorded one.
"""
import argparse
import csv
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, ROOT)

import machine  # noqa: E402  (bench/machine.py: no TensorFlow import)

# last round's target and issue 13's (CIFAR-10 also 90%, the issue's time-to-accuracy mark)
TARGETS = {"cifar10": (0.85, 0.90, 0.94), "fashion_mnist": (0.93, 0.95), "mnist": (0.994, 0.9975),
           "cats_vs_dogs": (0.85, 0.90)}


def _history_csv(folder):
    with open(os.path.join(folder, "history.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) if r[k] not in ("", None) else None for r in rows]
            for k in ("epoch", "val_accuracy", "seconds")}


def load(path):
    """(name, dataset, history, meta or {}) from a checkpoint or a run folder."""
    if os.path.isdir(path):
        cfg_path = os.path.join(path, "config.json")
        cfg = json.load(open(cfg_path)) if os.path.isfile(cfg_path) else {}
        ckpt = path[:-len("_run")] + ".h5" if path.rstrip("/").endswith("_run") else None
        meta = {}
        if ckpt and os.path.isfile(ckpt):
            from convzoo import checkpoint

            meta = checkpoint.read_meta(ckpt)
        return (cfg.get("model") or meta.get("model") or os.path.basename(path.rstrip("/")),
                cfg.get("dataset") or meta.get("dataset"), _history_csv(path), meta)
    from convzoo import checkpoint

    meta = checkpoint.read_meta(path)
    return meta["model"], meta["dataset"], meta["history"], meta


def row(path):
    name, dataset, h, meta = load(path)
    seconds = [s or 0.0 for s in h["seconds"]]
    acc = h["val_accuracy"]
    reached = {}
    for target in TARGETS.get(dataset, (0.9,)):
        total = 0.0
        reached[f"{100 * target:g}%"] = None
        for s, a in zip(seconds, acc):
            total += s
            if a is not None and a >= target:
                reached[f"{100 * target:g}%"] = round(total / 60, 1)
                break
    recipe = meta.get("recipe") or {}
    epochs_planned = recipe.get("epochs")
    n_train = meta.get("train_images")
    done = len(acc)
    return {
        "run": os.path.basename(path.rstrip("/")), "model": name, "dataset": dataset,
        "epochs": done, "epochs_planned": epochs_planned,
        "minutes": round(sum(seconds) / 60, 1),
        "minutes_per_epoch": round(sum(seconds) / 60 / max(done, 1), 2),
        "images_per_s": round(n_train * done / sum(seconds), 1) if n_train and sum(seconds) else None,
        "minutes_to_val": reached,
        "final_val_accuracy": acc[-1] if acc else None,
        "best_val_accuracy": max((a for a in acc if a is not None), default=None),
        "test_accuracy": (meta.get("test") or {}).get("accuracy"),
        "test_accuracy_tta": (meta.get("test_tta") or {}).get("accuracy"),
    }


def pct(v):
    return "-" if v is None else f"{100 * v:.2f}%"


def markdown(rows):
    out = ["| run | model | epochs | min/epoch | images/s | minutes to validation accuracy | final val "
           "| best val | test | test --tta |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        going = r["epochs_planned"] and r["epochs"] < r["epochs_planned"]  # a run still training
        reached = ", ".join(f"{t}: {('not yet' if going else 'not reached') if m is None else f'{m} min'}"
                            for t, m in r["minutes_to_val"].items())
        epochs = f"{r['epochs']}" + (f"/{r['epochs_planned']}" if r["epochs_planned"] else "")
        out.append(f"| {r['run']} | {r['model']} | {epochs} | {r['minutes_per_epoch']} | "
                   f"{r['images_per_s'] or '-'} | {reached} | {pct(r['final_val_accuracy'])} | "
                   f"{pct(r['best_val_accuracy'])} | {pct(r['test_accuracy'])} | "
                   f"{pct(r['test_accuracy_tta'])} |")
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="Checkpoints (.h5) or run folders (X_run/).")
    ap.add_argument("--json", action="store_true", help="Print one JSON object.")
    ap.add_argument("--no-peak", action="store_true", help="Skip the matmul peak (a few seconds).")
    args = ap.parse_args(argv)
    rows = [row(p) for p in args.runs]
    desc = machine.describe(None if args.no_peak else machine.matmul_peak())
    if args.json:
        print(json.dumps({"machine": desc, "runs": rows}, indent=2))
        return
    print("\n".join(machine.lines(desc)))
    print()
    print(markdown(rows))


if __name__ == "__main__":
    main()
