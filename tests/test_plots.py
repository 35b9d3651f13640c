"""The figures a learner reads: titles, integer epochs, the best epoch marked, both matrices."""
import numpy as np
import pytest

from convzoo import plots, results
from convzoo.fileio import save_figure


def history(val):
    n = len(val)
    return {"epoch": list(range(1, n + 1)), "loss": list(np.linspace(1, 0.2, n)),
            "accuracy": list(np.linspace(0.5, 0.9, n)), "val_loss": list(np.linspace(1, 0.3, n)),
            "val_accuracy": val}


def test_curves_title_ticks_and_best_marker(tmp_path):
    fig = plots.curves(history([0.6, 0.8, 0.75]), "mnist-vgg", "mnist")
    assert fig._suptitle.get_text() == "mnist-vgg on mnist: best validation accuracy 0.8000 at epoch 2 of 3"
    for ax in fig.axes:
        ticks = ax.get_xticks()
        assert list(ticks) == [1, 2, 3]
        best = [line for line in ax.get_lines() if line.get_label() == "best epoch (2)"]
        assert len(best) == 1 and list(best[0].get_xdata()) == [2]
    save_figure(fig, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 10_000


def test_curves_without_validation_and_long_runs():
    fig = plots.curves({"loss": [1.0] * 60, "accuracy": [0.5] * 60, "val_loss": [None] * 60,
                        "val_accuracy": [None] * 60}, "mlp", "mnist")
    assert fig._suptitle.get_text() == "mlp on mnist: 60 epochs, no validation"
    assert all(float(t).is_integer() for ax in fig.axes for t in ax.get_xticks())
    assert results.best_epoch({"val_accuracy": [None, 0.5, 0.7, 0.7]}) == (3, 0.7)


@pytest.mark.parametrize("k", [2, 10])
def test_confusion_matrix_counts_and_row_shares(k, tmp_path):
    cm = np.full((k, k), 2) + np.diag(np.full(k, 96))
    fig = plots.confusion_matrix(cm, [f"class {i}" for i in range(k)], "m on d: n=1, accuracy 1%")
    counts, shares = fig.axes
    assert fig._suptitle.get_text() == "m on d: n=1, accuracy 1%"
    cell = {t.get_text() for t in shares.texts}
    assert f"{100 * (96 + 2) / (96 + 2 * k):.1f}" in cell  # each row sums to 100%
    assert "98" in {t.get_text() for t in counts.texts}
    width, height = fig.get_size_inches()
    assert 1.5 < width / height < 3 and width / (2 * k) <= 2 and width / (2 * k) >= 0.3
    save_figure(fig, tmp_path / "cm.png")


def test_class_names_from_files_are_plain_text(tmp_path):
    # mathtext would fail to parse this name (and TeX would run); it must be drawn as written
    names = [r"$\frac{$", "price $5", "a_b^2"]
    fig = plots.confusion_matrix(np.eye(3, dtype=int), names, r"$\bad$ on x")
    save_figure(fig, tmp_path / "cm.png")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == names
    grid = plots.image_grid([np.zeros((4, 4), np.uint8)], [r"$\frac{$"], title=r"$\frac{$")
    save_figure(grid, tmp_path / "grid.png")
