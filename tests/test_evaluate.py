import numpy as np

from convzoo import evaluate
from convzoo.predict import probabilities


def test_confusion_and_per_class():
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    cm = evaluate.confusion_matrix(y, pred, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    rows = evaluate.per_class(cm, ["a", "b", "c"])
    assert rows[1] == {"class": "b", "precision": round(2 / 3, 4), "recall": 1.0, "f1": 0.8, "support": 2}
    assert rows[2]["precision"] == 1.0 and rows[2]["recall"] == 0.5


def test_score_object_and_loss():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    res = evaluate.score(probs, np.array([0, 1, 1]), ["cats", "dogs"])
    assert set(res) == {"accuracy", "loss", "balanced_accuracy", "macro_f1", "n", "per_class",
                        "confusion_matrix"}
    assert res["balanced_accuracy"] == 0.75  # recall 1 for cats, 1/2 for dogs
    assert res["accuracy"] == round(2 / 3, 6) and res["n"] == 3
    assert abs(res["loss"] - (-np.log([0.9, 0.8, 0.4]).mean())) < 1e-6
    text = evaluate.format_text({**res, "checkpoint": "m.h5", "dataset": "cats_vs_dogs"}, ["cats", "dogs"])
    assert "confusion matrix" in text and "dogs" in text


def test_heads_to_probabilities():
    p = probabilities(np.array([[0.0, np.log(3.0)]]), "logits")
    np.testing.assert_allclose(p, [[0.25, 0.75]])
    np.testing.assert_allclose(probabilities(np.array([[0.7]]), "sigmoid"), [[0.3, 0.7]])
