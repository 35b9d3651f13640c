"""report.html and its parts: top losses from every confused pair, hints, calibration, escaping."""
import json

import numpy as np
import pytest

from convzoo import report


def _fixture_probs():
    """3 classes; every one of the 6 (true, predicted) pairs occurs, one pair 40 times."""
    rng = np.random.default_rng(0)
    y, pred = [], []
    for t in range(3):
        y += [t] * 30
        pred += [t] * 30
        for p in range(3):
            if p != t:
                n = 40 if (t, p) == (0, 1) else 1 + t + p
                y += [t] * n
                pred += [p] * n
    y, pred = np.array(y), np.array(pred)
    probs = rng.uniform(0.0, 0.2, (len(y), 3))
    probs[np.arange(len(y)), pred] = rng.uniform(0.5, 1.0, len(y))
    return probs / probs.sum(1, keepdims=True), y


def test_top_losses_come_from_every_confused_pair():
    probs, y = _fixture_probs()
    pred = probs.argmax(1)
    chosen = report.top_losses(probs, y, max_tiles=12)
    pairs = {(int(y[i]), int(pred[i])) for i in chosen}
    assert pairs == {(t, p) for t in range(3) for p in range(3) if t != p}
    assert all(pred[i] != y[i] for i in chosen) and len(set(chosen)) == 12
    # the first round holds the worst mistake of each pair
    loss = report.losses(probs, y)
    first = chosen[:6]
    for i in first:
        same = np.flatnonzero((y == y[i]) & (pred == pred[i]))
        assert loss[i] == loss[same].max()
    # never fewer tiles than pairs
    assert len(report.top_losses(probs, y, max_tiles=2)) == 6


def test_most_confused_sorted():
    probs, y = _fixture_probs()
    from convzoo.evaluate import confusion_matrix

    pairs = report.most_confused(confusion_matrix(y, probs.argmax(1), 3), ["a", "b", "c"])
    assert pairs[0][:3] == ("a", "b", 40) and len(pairs) == 6
    assert [p[2] for p in pairs] == sorted((p[2] for p in pairs), reverse=True)


def test_calibration_error():
    probs = np.array([[0.9, 0.1]] * 10)
    y = np.array([0] * 9 + [1])
    assert report.calibration(probs, y) == pytest.approx(0.0)
    y = np.array([0] * 5 + [1] * 5)
    assert report.calibration(probs, y) == pytest.approx(0.4)


def test_hints_name_over_fitting_and_a_preferred_class():
    result = {"accuracy": 0.72, "n": 1000, "confusion_matrix": [[455, 45], [230, 270]],
              "per_class": [{"class": "cats", "recall": 0.91, "support": 500},
                            {"class": "dogs", "recall": 0.54, "support": 500}]}
    history = {"loss": [0.7, 0.6, 0.5, 0.4, 0.3, 0.2], "val_loss": [0.7, 0.6, 0.55, 0.6, 0.7, 0.8],
               "accuracy": [0.5, 0.6, 0.7, 0.8, 0.9, 0.95], "val_accuracy": [0.5, 0.6, 0.7, 0.71, 0.7, 0.7]}
    text = " ".join(report.hints(result, history, ["cats", "dogs"], 0.01, 0.7))
    assert "lowest at epoch 3" in text and "over-fitting" in text
    assert "cats recall 0.91, dogs recall 0.54: the model prefers cats" in text


def test_report_escapes_class_names(tmp_path):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Rescaling(1 / 255),
                              keras.layers.Conv2D(2, 3, activation="relu"), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    classes = ["<script>alert(1)</script>", r"$\frac{1}{$", "a&b"]  # a TeX fragment matplotlib would reject
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 8, 8, 1)).astype(np.uint8)
    y = np.arange(30) % 3
    from convzoo.evaluate import score
    from convzoo.predict import run_model

    probs = run_model(model, x, "softmax")
    result = dict(score(probs, y, classes), dataset="test", checkpoint="m.h5")
    meta = {"model": "tiny", "classes": classes, "head": "softmax",
            "history": {"loss": [1.0, 0.9], "val_loss": [1.1, 1.0], "accuracy": [0.3, 0.4],
                        "val_accuracy": [0.3, 0.35]}}
    path = report.write(tmp_path / "rep", result, x, y, probs, meta, model)
    page = open(path, encoding="utf-8").read()
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a&amp;b" in page and 'id=accuracy>' in page
    for f in ("curves.png", "confusion_matrix.png", "misclassified.png", "reliability.png", "gradcam.png"):
        assert (tmp_path / "rep" / f).stat().st_size > 1000
    assert "src=\"http" not in page and page.count("data:image/png;base64,") == 5
    saved = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert saved["accuracy"] == result["accuracy"] and "calibration_error" in saved
