"""Matplotlib figures (Agg backend) from plain arrays: curves, image grids, confusion matrices.

Text that comes from files (class names, model names) is drawn as plain text: no mathtext, no TeX,
so a `$` in a folder name cannot break or restyle a figure.
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from convzoo.results import best_epoch  # noqa: E402

PLAIN = {"parse_math": False, "usetex": False}


def curves(history, model=None, dataset=None):
    """Loss and accuracy per epoch, train vs validation, side by side (as the notes plot them), with
    the best validation epoch marked and named in the title."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.3))
    n = len(history["loss"])
    epochs = np.arange(1, n + 1)
    best = best_epoch(history)
    dots = "o-" if n <= 30 else "-"  # markers on every epoch of a long run blur the line
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, _floats(history[metric]), dots, label=f"train {metric}")
        if any(v is not None for v in history.get(f"val_{metric}") or []):
            val = _floats(history[f"val_{metric}"])
            ax.plot(epochs, val, dots.replace("o", "s"), label=f"validation {metric}")
            if best:
                ax.axvline(best[0], color="gray", linestyle=":", linewidth=1)
                ax.plot([best[0]], [val[best[0] - 1]], marker="*", markersize=16, color="crimson",
                        linestyle="none", label=f"best epoch ({best[0]})", zorder=5)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        if n <= 20:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(0.5, n + 0.5)
        ax.legend()
        ax.grid(alpha=0.3)
    head = " on ".join(str(s) for s in (model, dataset) if s) or "training"
    tail = (f"best validation accuracy {best[1]:.4f} at epoch {best[0]} of {n}" if best
            else f"{n} epoch{'s' if n != 1 else ''}, no validation")
    fig.suptitle(f"{head}: {tail}", **PLAIN)
    fig.tight_layout()
    return fig


def _floats(values):
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def image_grid(images, titles, columns=8, title=None):
    """A grid of images (uint8, HxW or HxWxC) with a caption under each."""
    n = max(len(images), 1)
    columns = min(columns, n)
    rows = (n + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, caption in zip(axes.flat, images, titles):
        img = np.asarray(img)
        if img.ndim == 3 and img.shape[-1] == 1:
            img = img[..., 0]
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
        ax.set_title(caption, fontsize=8, **PLAIN)
    if title:
        fig.suptitle(title, **PLAIN)
    fig.tight_layout()
    return fig


def _label(name, width=16):
    return name if len(name) <= width else name[:width - 1] + "…"


def confusion_matrix(cm, class_names, title=None):
    """Counts and the row-normalised matrix (each true class's share of predictions) side by side;
    rows = true class, columns = predicted class (S5). Cells stay about half an inch square, so
    2 and 10 classes read alike."""
    cm = np.asarray(cm)
    k = len(class_names)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
    side = 1.4 + 0.55 * max(k, 3)
    fig, axes = plt.subplots(1, 2, figsize=(2 * side + 1.2, side + 1.0))
    labels = [_label(str(c)) for c in class_names]
    font = 9 if k <= 6 else 8
    for ax, values, caption in ((axes[0], cm, "counts"), (axes[1], share, "% of each true class (recall on the diagonal)")):
        ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if values is share else max(values.max(), 1))
        ax.set_xticks(range(k), labels, rotation=45 if k > 2 else 0, ha="right" if k > 2 else "center",
                      fontsize=font, **PLAIN)
        ax.set_yticks(range(k), labels, fontsize=font, **PLAIN)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(caption, fontsize=10)
        top = values.max() if values.size else 0
        for i in range(k):
            for j in range(k):
                text = f"{100 * values[i, j]:.1f}" if values is share else f"{values[i, j]:,}"
                ax.text(j, i, text, ha="center", va="center", fontsize=font,
                        color="white" if values[i, j] > top / 2 else "black")
    if title:
        fig.suptitle(title, **PLAIN)
    fig.tight_layout()
    return fig


def compare(runs):
    """Validation accuracy and loss of several runs overlaid, one colour each, the best epochs
    starred; `runs` holds (label, row) pairs as convzoo.compare makes them."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4 + 0.22 * ((len(runs) + 1) // 2)), layout="constrained")
    longest = 1
    for label, r in runs:
        colour = None
        for ax, metric in zip(axes, ("val_accuracy", "val_loss")):
            values = _floats(r.get(metric) or [])
            if not np.isfinite(values).any():
                continue
            longest = max(longest, len(values))
            line, = ax.plot(np.arange(1, len(values) + 1), values, "o-" if len(values) <= 30 else "-",
                            markersize=4, color=colour, label=f"{label} ({r.get('model')})")
            colour = line.get_color()
            if metric == "val_accuracy" and r.get("best_epoch"):
                ax.plot([r["best_epoch"]], [values[r["best_epoch"] - 1]], marker="*", markersize=14,
                        color=colour, markeredgecolor="black", linestyle="none", zorder=5)
    for ax, name in zip(axes, ("validation accuracy", "validation loss")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        if longest <= 20:
            ax.set_xticks(range(1, longest + 1))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    handles = {line.get_label(): line for ax in axes for line in ax.get_lines()
               if not line.get_label().startswith("_")}
    if handles:  # one legend under both panels: it covers no curve, however many runs
        legend = fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                            ncol=2 if len(handles) > 1 else 1, fontsize=8)
        for text in legend.get_texts():
            text.set(**PLAIN)
    datasets = ", ".join(sorted({str(r.get("dataset")) for _, r in runs}))
    fig.suptitle(f"{len(runs)} run{'s' if len(runs) != 1 else ''} on {datasets}: validation curves "
                 "(star: best epoch)", **PLAIN)
    return fig
