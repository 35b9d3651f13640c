"""The evaluation report: report.html (one self-contained page, images inlined) and its PNGs.

Everything here is computed from the test-set probabilities; the page's hints are derived from the
same numbers, never written by hand.
"""
import base64
import html
import io
import json
import os

import numpy as np

from convzoo.fileio import atomic_path, write_text


def losses(probs, y):
    """Per-image cross-entropy of the true class."""
    return -np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))


def most_confused(cm, classes):
    """[(true, predicted, count, share of the true class)] for every off-diagonal cell > 0, most first."""
    cm = np.asarray(cm)
    rows = cm.sum(axis=1)
    pairs = [(classes[i], classes[j], int(cm[i, j]), float(cm[i, j] / rows[i]))
             for i in range(len(classes)) for j in range(len(classes)) if i != j and cm[i, j]]
    return sorted(pairs, key=lambda p: (-p[2], p[0], p[1]))


def top_losses(probs, y, max_tiles=48):
    """Indices of wrong predictions for the top-losses grid, taken round-robin from every confused
    (true, predicted) pair: the worst of each pair first, so no pair hides behind a bigger one."""
    pred = probs.argmax(axis=1)
    loss = losses(probs, y)
    by_pair = {}
    for i in np.flatnonzero(pred != y):
        by_pair.setdefault((int(y[i]), int(pred[i])), []).append(int(i))
    queues = [sorted(v, key=lambda i: -loss[i]) for v in by_pair.values()]
    queues.sort(key=lambda q: -loss[q[0]])
    max_tiles = max(max_tiles, len(queues))  # at least one tile for every pair
    out, depth = [], 0
    while len(out) < max_tiles and any(depth < len(q) for q in queues):
        out += [q[depth] for q in queues if depth < len(q)][:max_tiles - len(out)]
        depth += 1
    return out


def calibration(probs, y, bins=10):
    """Expected calibration error over equal-width confidence bins."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    which = np.clip(np.digitize(conf, np.linspace(0, 1, bins + 1)[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def hints(result, history, classes, ece, mean_conf):
    """Plain-language observations from the numbers: a list of strings."""
    out = []
    loss, val = history.get("loss") or [], history.get("val_loss") or []
    if len(val) >= 3 and len(loss) == len(val):
        best = int(np.argmin(val))
        if best < len(val) - 1 and val[-1] > val[best] * 1.1 and loss[-1] < loss[best]:
            out.append(f"Validation loss is lowest at epoch {best + 1} ({val[best]:.3f}) and rises to "
                       f"{val[-1]:.3f} by epoch {len(val)} while training loss keeps falling "
                       f"({loss[best]:.3f} to {loss[-1]:.3f}): over-fitting. Try --augment, more dropout, "
                       "or stop earlier (--save-best keeps the best epoch).")
    acc, vacc = history.get("accuracy") or [], history.get("val_accuracy") or []
    if len(vacc) >= 3 and vacc[-1] >= max(vacc) - 1e-9 and vacc[-1] > vacc[-3] + 0.005:
        out.append(f"Validation accuracy was still rising at the last epoch ({vacc[-3]:.3f} to "
                   f"{vacc[-1]:.3f} over the last two): more --epochs would probably help.")
    if acc and vacc and acc[-1] - vacc[-1] > 0.05:
        out.append(f"Training accuracy {acc[-1]:.3f} is well above validation accuracy {vacc[-1]:.3f}: "
                   "the model fits the training images better than new ones.")
    if acc and vacc and acc[-1] < 0.9 and vacc[-1] >= acc[-1] - 0.01:
        out.append(f"Training accuracy {acc[-1]:.3f} is no better than validation {vacc[-1]:.3f}: the "
                   "model under-fits (augmentation and dropout make training harder); a bigger model "
                   "or a longer run can do better.")
    if vacc and result["n"]:
        gap = max(vacc) - result["accuracy"]
        if abs(gap) > 0.03:
            out.append(f"Test accuracy {result['accuracy']:.3f} differs from the best validation "
                       f"accuracy {max(vacc):.3f} by {abs(gap):.3f}: the validation images are "
                       f"{'easier than' if gap > 0 else 'harder than'} the test set, or too few.")
    rec = [(r["class"], r["recall"], r["support"]) for r in result["per_class"] if r["support"]]
    if len(rec) == 2:
        (a, ra, _), (b, rb, _) = rec
        if abs(ra - rb) > 0.1:
            hi, lo = (a, b) if ra > rb else (b, a)
            out.append(f"{a} recall {ra:.2f}, {b} recall {rb:.2f}: the model prefers {hi}; many {lo} "
                       f"are taken for {hi}.")
    elif len(rec) > 2:
        worst = min(rec, key=lambda r: r[1])
        best = max(rec, key=lambda r: r[1])
        if best[1] - worst[1] > 0.1:
            out.append(f"Recall ranges from {worst[1]:.2f} ({worst[0]}) to {best[1]:.2f} ({best[0]}): "
                       f"{worst[0]} is the hardest class.")
        cm = np.asarray(result["confusion_matrix"])
        ratio = cm.sum(axis=0) / np.maximum(cm.sum(axis=1), 1)
        j = int(np.argmax(ratio))
        if ratio[j] > 1.2:
            out.append(f"{classes[j]} is predicted {int(cm[:, j].sum())} times for {int(cm[j].sum())} "
                       f"{classes[j]} images: the model leans towards answering {classes[j]}.")
    pairs = most_confused(result["confusion_matrix"], classes)
    if pairs:
        t, p, n, share = pairs[0]
        back = next((q[2] for q in pairs if q[0] == p and q[1] == t), 0)
        out.append(f"The most common mistake: {t} taken for {p} ({n} times, {share:.1%} of the {t} "
                   f"images; {back} the other way round).")
    if ece > 0.05:
        side = "over-confident" if mean_conf > result["accuracy"] else "under-confident"
        out.append(f"Expected calibration error {ece:.3f}: the model is {side} (mean confidence "
                   f"{mean_conf:.3f}, accuracy {result['accuracy']:.3f}); read its probabilities as "
                   "rankings rather than chances.")
    elif result["n"]:
        out.append(f"Expected calibration error {ece:.3f}: the probabilities are close to chances (mean "
                   f"confidence {mean_conf:.3f}, accuracy {result['accuracy']:.3f}).")
    return out


def _png(fig):
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _write_bytes(path, data):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def _img(data, alt):
    return (f'<img alt="{html.escape(alt)}" src="data:image/png;base64,'
            f'{base64.b64encode(data).decode("ascii")}">')


def gradcam_examples(model, x, y, probs, head, classes, n=6):
    """(figure or None, note): Grad-CAM overlays of the most confident correct image of up to n classes
    and of the n worst mistakes."""
    from convzoo import explain, plots

    if not explain.conv_blocks(model):
        return None, "this model has no convolutional layer, so there is no Grad-CAM map"
    pred = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    # the most confident right answers, taking the classes in turn
    queues = []
    for c in range(len(classes)):
        idx = np.flatnonzero((pred == y) & (y == c))
        queues.append(list(idx[np.argsort(-conf[idx])]))
    right = [int(q[d]) for d in range(n) for q in queues if d < len(q)][:n]
    wrong = top_losses(probs, y, max_tiles=n)[:n]
    images, cams, captions = [], [], []
    columns = max(len(right), len(wrong), 1)
    for i in right + [None] * (columns - len(right)) + wrong:
        if i is None:  # keeps the mistakes on their own row
            images.append(None), cams.append(None), captions.append("")
            continue
        cam, k, p = explain.gradcam(model, x[i], head)
        images.append(x[i])
        cams.append(cam)
        mark = "right" if i in right else f"true {classes[y[i]]}"
        captions.append(f"{classes[k]} {p:.2f}\n{mark} / #{i}")
    if not right and not wrong:
        return None, "no test images"
    fig = plots.gradcam_grid(images, cams, captions, columns=columns,
                             title="Grad-CAM for the predicted class: first row right, second row wrong")
    return fig, ""


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
.headline{display:flex;gap:2em;flex-wrap:wrap;margin:1em 0}.metric{background:#f3f6fa;padding:.6em 1em;
border-radius:6px}.metric b{display:block;font-size:1.6em}.hints li{margin:.3em 0}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;
text-align:right}th{background:#f6f6f6}img{max-width:100%;height:auto;display:block;margin:.5em 0}
.note{color:#666;font-size:.9em}
"""


def write(report_dir, result, x, y, probs, meta, model):
    """Write report.html and the PNGs beside it; returns the report path."""
    from convzoo import plots

    classes = list(meta["classes"])
    y = np.asarray(y, int)
    pred = probs.argmax(axis=1)
    conf = probs.max(axis=1) if len(probs) else np.zeros(0)
    os.makedirs(report_dir, exist_ok=True)
    figures = {}  # file name -> png bytes

    history = meta.get("history") or {}
    if history.get("loss"):
        figures["curves.png"] = _png(plots.curves(history, meta.get("model"), result["dataset"]))
    cm = np.asarray(result["confusion_matrix"])
    figures["confusion_matrix.png"] = _png(plots.confusion_matrix(
        cm, classes, f"{meta.get('model') or 'model'} on {result['dataset']} test set: n={result['n']:,}, "
                     f"accuracy {100 * result['accuracy']:.2f}%"))
    chosen = top_losses(probs, y)
    n_wrong = int((pred != y).sum())
    pairs = most_confused(cm, classes)
    figures["misclassified.png"] = _png(plots.top_losses(
        [x[i] for i in chosen], [classes[y[i]] for i in chosen], [classes[pred[i]] for i in chosen],
        [float(probs[i, pred[i]]) for i in chosen], chosen,
        title=f"top losses: {len(chosen)} of {n_wrong} mistakes, from all {len(pairs)} confused pairs "
              "(true / predicted, probability / test index)"))
    fig, ece = plots.reliability(conf, pred == y)
    figures["reliability.png"] = _png(fig)
    cam_fig, cam_note = gradcam_examples(model, x, y, probs, meta["head"], classes)
    if cam_fig is not None:
        figures["gradcam.png"] = _png(cam_fig)
    for name, data in figures.items():
        _write_bytes(os.path.join(report_dir, name), data)

    result = dict(result, calibration_error=round(ece, 6),
                  most_confused=[{"true": t, "predicted": p, "count": n, "share": round(s, 4)}
                                 for t, p, n, s in pairs])
    from convzoo.text import strict_json

    write_text(os.path.join(report_dir, "metrics.json"), strict_json(result, indent=2)[0] + "\n")  # no NaN
    tips = hints(result, history, classes, ece, float(conf.mean()) if len(conf) else 0.0)

    e = html.escape
    name = meta.get("model", "?")
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8>"
             f"<meta name=viewport content='width=device-width,initial-scale=1'>"
             f"<title>convzoo report: {e(name)} on {e(result['dataset'])}</title><style>{CSS}</style>"
             "</head><body>",
             f"<h1>{e(name)} on the {e(result['dataset'])} test set</h1>",
             f"<p class=note>checkpoint {e(str(result['checkpoint']))}; {result['n']} test images; "
             f"trained {e(str(meta.get('epochs_run', '?')))} epochs on {e(str(meta.get('train_images', '?')))} "
             f"images ({e(str(meta.get('date', '')))})</p>",
             "<div class=headline>",
             f"<div class=metric>accuracy<b id=accuracy>{result['accuracy']:.4f}</b></div>",
             f"<div class=metric>loss (cross-entropy)<b id=loss>{result['loss']:.4f}</b></div>",
             f"<div class=metric>mistakes<b>{n_wrong} of {result['n']}</b></div>",
             f"<div class=metric>calibration error (ECE)<b>{ece:.3f}</b></div></div>",
             "<h2>What the numbers say</h2><ul class=hints>",
             *[f"<li>{e(t)}</li>" for t in tips], "</ul>"]
    if "curves.png" in figures:
        parts += ["<h2>Training curves</h2><p class=note>Loss and accuracy per epoch on the training "
                  "images and the validation images held out from them.</p>",
                  _img(figures["curves.png"], "training curves")]
    parts += ["<h2>Per class</h2><p class=note>Precision: of the images the model called this class, "
              "the share that were. Recall: of the images of this class, the share it found.</p>",
              "<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>images</th></tr>",
              *[f"<tr><th>{e(r['class'])}</th><td>{r['precision']:.3f}</td><td>{r['recall']:.3f}</td>"
                f"<td>{r['f1']:.3f}</td><td>{r['support']}</td></tr>" for r in result["per_class"]],
              "</table>",
              "<h2>Confusion matrix</h2><p class=note>Rows: the true class; columns: what the model "
              "said. Left: image counts; right: each row as a share of its true class (recall on "
              "the diagonal).</p>", _img(figures["confusion_matrix.png"], "confusion matrix"),
              "<h2>Most confused pairs</h2>"]
    if pairs:
        parts += ["<table><tr><th>true</th><th>predicted as</th><th>images</th><th>share of true class</th></tr>",
                  *[f"<tr><th>{e(t)}</th><td>{e(p)}</td><td>{n}</td><td>{s:.1%}</td></tr>"
                    for t, p, n, s in pairs[:15]], "</table>"]
        if len(pairs) > 15:
            parts.append(f"<p class=note>and {len(pairs) - 15} more pairs (all in metrics.json).</p>")
    else:
        parts.append("<p>No mistakes.</p>")
    parts += ["<h2>Top losses</h2><p class=note>The mistakes the model was surest of, taken in turn from "
              "every confused pair. Each tile: true / predicted class, the probability it gave the "
              "predicted class, the image's index in the test set.</p>",
              _img(figures["misclassified.png"], "top losses")]
    parts.append("<h2>Where the model looked (Grad-CAM)</h2>")
    if "gradcam.png" in figures:
        parts += ["<p class=note>Red: the regions of the last conv layer that raised the score of the "
                  "predicted class most. First row: the most confident right answers; second row: the "
                  "worst mistakes. Try <code>convzoo explain IMAGE --model M</code> on your own "
                  "images.</p>", _img(figures["gradcam.png"], "Grad-CAM overlays")]
    else:
        parts.append(f"<p class=note>{e(cam_note)}</p>")
    parts += ["<h2>Calibration</h2><p class=note>Test images grouped by the probability the model gave "
              "its answer; each bar is how often it was right in that group. Bars on the diagonal: the "
              "probabilities can be read as chances. ECE is the average gap, weighted by images.</p>",
              _img(figures["reliability.png"], "reliability diagram"),
              "<p class=note>Written by convzoo evaluate; the PNGs and metrics.json beside this page hold "
              "the same figures and numbers.</p></body></html>"]
    path = os.path.join(report_dir, "report.html")
    write_text(path, "\n".join(parts) + "\n")
    return path
