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

# class names and file names are text, not TeX: no figure here starts mathtext on "$5"
plt.rcParams["text.parse_math"] = False


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


def _gray_or_rgb(img):
    img = np.asarray(img)
    return img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img


def _tiles(n, columns, size=1.9, caption=0.5, top=0.4, layout="constrained"):
    """n axes without ticks, `columns` to a row, each size x (size + caption) inches."""
    columns = max(1, min(columns, n))
    rows = (max(n, 1) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, (size + caption) * rows + top),
                             squeeze=False, layout=layout)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def top_losses(images, true, pred, probs, indices, columns=8, title=None):
    """fastai's plot_top_losses: each tile titled true / predicted, probability of the prediction /
    test index."""
    fig, axes = _tiles(len(images), columns)
    for ax, img, t, p, q, i in zip(axes.flat, images, true, pred, probs, indices):
        img = _gray_or_rgb(img)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
        ax.set_title(f"{t} / {p}\n{q:.2f} / #{i}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def input_image(img, title):
    """One model input at its own pixel size, drawn large with visible pixels."""
    img = _gray_or_rgb(img)
    fig, ax = plt.subplots(figsize=(3.2, 3.4))
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    ax.axis("off")
    ax.set_title(title, fontsize=8)
    return fig


def overlay(ax, img, cam):
    """The image in gray or colour with the heat map in jet on top."""
    img = _gray_or_rgb(img)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
    ax.imshow(cam, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    ax.axis("off")


def gradcam_pair(img, cam, title):
    """The input, and the input under its Grad-CAM heat map."""
    fig, axes = plt.subplots(1, 2, figsize=(6, 3.3))
    img2 = _gray_or_rgb(img)
    axes[0].imshow(img2, cmap="gray" if img2.ndim == 2 else None, vmin=0, vmax=255)
    axes[0].axis("off")
    axes[0].set_title("input", fontsize=9)
    overlay(axes[1], img, cam)
    axes[1].set_title("where the model looked", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def gradcam_grid(images, cams, captions, columns=6, title=None):
    """Grad-CAM overlays with a caption over each."""
    fig, axes = _tiles(len(images), columns)
    for ax, img, cam, caption in zip(axes.flat, images, cams, captions):
        if img is None:
            continue
        overlay(ax, img, cam)
        ax.set_title(caption, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def feature_grid(fmap, title, max_maps=64):
    """A conv layer's output channels (HxWxC) as small gray images, each scaled to its own range."""
    fmap = np.asarray(fmap, np.float32)
    k = min(fmap.shape[-1], max_maps)
    fig, axes = _tiles(k, 16, 0.75, caption=0, top=0.5, layout=None)
    for i, ax in enumerate(axes.flat[:k]):
        ax.imshow(fmap[..., i], cmap="viridis", interpolation="nearest")
    shown = "" if k == fmap.shape[-1] else f" (first {k})"
    fig.suptitle(title + shown, fontsize=9)
    return fig


def filters(kernel, title, max_filters=64):
    """A conv kernel (kh, kw, in, out): colour patches for 3 input channels, else gray (first channel)."""
    kernel = np.asarray(kernel, np.float32)
    k = min(kernel.shape[3], max_filters)
    fig, axes = _tiles(k, 16, 0.6, caption=0, top=0.5, layout=None)
    for i, ax in enumerate(axes.flat[:k]):
        w = kernel[..., i]
        if w.shape[-1] == 3:
            lo, hi = w.min(), w.max()
            ax.imshow((w - lo) / (hi - lo) if hi > lo else np.zeros_like(w), interpolation="nearest")
        else:
            ax.imshow(w[..., 0], cmap="gray", interpolation="nearest")
    fig.suptitle(title, fontsize=9)
    return fig


def reliability(confidence, correct, bins=10):
    """Reliability diagram: accuracy against confidence per bin, with the expected calibration error.
    Returns (figure, ece)."""
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    acc, conf, count = np.zeros(bins), np.zeros(bins), np.zeros(bins)
    for b in range(bins):
        m = which == b
        count[b] = m.sum()
        if count[b]:
            acc[b], conf[b] = correct[m].mean(), confidence[m].mean()
    ece = float((count / max(len(confidence), 1) * np.abs(acc - conf)).sum())
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    centres = (edges[:-1] + edges[1:]) / 2
    ax.bar(centres, acc, width=1 / bins, edgecolor="black", alpha=0.7, label="accuracy in bin")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    for x_, a, n in zip(centres, acc, count):
        if n:
            ax.text(x_, a + 0.01, str(int(n)), ha="center", fontsize=6)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("confidence (probability of the predicted class)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability: ECE {ece:.3f} (numbers: images per bin)", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig, ece
