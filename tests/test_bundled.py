"""Bundled models by name, and predict's default model."""
import pytest

from conftest import SAMPLE, invoke

from convzoo import bundled

PHOTO = SAMPLE / "samples" / "mnist_9999_6_photo.jpg"


def test_bundled_names_resolve_to_the_shipped_files():
    assert {"mnist", "fashion_mnist", "cifar10", "cats_vs_dogs"} <= set(bundled.names())
    assert bundled.resolve("mnist").endswith("mnist.h5")
    assert bundled.resolve("some/run.h5") == "some/run.h5"  # a path stays a path


def test_default_model_is_cifar10_unless_the_environment_says(monkeypatch):
    assert bundled.default() == ("cifar10", "the default")
    monkeypatch.setenv("CONVZOO_MODEL", "mnist")
    assert bundled.default() == ("mnist", "$CONVZOO_MODEL")


def test_predict_without_model_says_which_and_how_to_choose(runner, monkeypatch):
    monkeypatch.setenv("CONVZOO_MODEL", "mnist")
    res = invoke(runner, "predict", PHOTO, "--top-k", "1")
    assert res.exit_code == 0, res.output
    assert "using model mnist ($CONVZOO_MODEL); choose another with --model" in res.stderr
    label, prob = res.stdout.strip().rsplit(": ", 1)[1].split()
    assert label == "6" and 0.5 < float(prob) <= 1, res.stdout


@pytest.mark.parametrize("name", ["mnsit", "cifar"])
def test_unknown_bundled_name_suggests(runner, name):
    res = invoke(runner, "predict", PHOTO, "--model", name)
    assert res.exit_code == 1 and "unknown bundled model" in res.output and "did you mean" in res.output
