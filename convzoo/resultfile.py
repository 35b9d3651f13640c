"""`convzoo predict --output results.csv|results.jsonl`: one row per image, written atomically."""
import csv
import io
import json
import os

from convzoo.errors import ConvzooError
from convzoo.fileio import atomic_path, check_output

SUFFIXES = (".csv", ".jsonl")


def check(path, overwrite):
    """The absolute output path, refused before any work if it exists (without overwrite) or has
    another suffix."""
    if not os.fspath(path).lower().endswith(SUFFIXES):
        raise ConvzooError(f"--output must end in .csv or .jsonl: {path}")
    return check_output(path, overwrite)


def csv_text(results, top_k):
    """file, label_1, probability_1, ... label_k, probability_k, error."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", *[f"{c}_{i}" for i in range(1, top_k + 1) for c in ("label", "probability")], "error"])
    for r in results:
        cells = [v for p in r["predictions"] for v in (p["label"], f"{p['probability']:.6f}")]
        w.writerow([r["file"], *cells, *[""] * (2 * top_k - len(cells)), r["error"] or ""])
    return buf.getvalue()


def jsonl_text(results):
    """One JSON object per line: {"file", "predictions": [{"label", "probability"}], "error"}."""
    return "".join(json.dumps(r) + "\n" for r in results)


def write(results, path):
    """Write the rows to `path` (checked by `check`) through a temp file beside it."""
    k = max([len(r["predictions"]) for r in results] + [1])  # top-k, or fewer classes
    text = csv_text(results, k) if path.lower().endswith(".csv") else jsonl_text(results)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    return path
