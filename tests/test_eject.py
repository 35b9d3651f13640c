"""convzoo eject: a standalone Keras script per zoo model that trains and saves an .h5 convzoo reads."""
import json
import re
import subprocess
import sys

import pytest

from conftest import ROOT, SAMPLE, invoke
from convzoo import zoo


def _args(name):
    spec = zoo.get_spec(name)
    args = ["--dataset", "cifar10"] if spec.datasets[0] == zoo.ANY else []
    return args + (["--weights", ROOT / "models" / "cifar10.h5"] if spec.weights == "base" else [])


@pytest.mark.parametrize("name", zoo.list_models())
def test_every_script_compiles_and_is_short(runner, tmp_path, name):
    res = invoke(runner, "eject", name, "--output", "s.py", *_args(name))
    assert res.exit_code == 0, res.output
    text = (tmp_path / "s.py").read_text()
    compile(text, "s.py", "exec")
    assert len(text.splitlines()) <= 150
    assert not re.search(r"^\s*(import|from)\s+convzoo", text, re.M)  # plain Keras and numpy only
    assert ("tf.GradientTape" in text) == (zoo.get_spec(name).recipe.loop == "tape")


def test_refuses_to_overwrite_and_unknown_names(runner, tmp_path):
    (tmp_path / "s.py").write_text("mine")
    res = invoke(runner, "eject", "mlp", "--output", "s.py")
    assert res.exit_code == 1 and "--overwrite" in res.output and (tmp_path / "s.py").read_text() == "mine"
    res = invoke(runner, "eject", "mnist-cnnn")
    assert res.exit_code == 1 and "did you mean mnist-cnn" in res.output
    res = invoke(runner, "eject", "mlp", "--dataset", "cifar10")
    assert res.exit_code == 1 and "not cifar10" in res.output


@pytest.mark.parametrize("name,dataset", [("fashion-cnn-scratch", "fashion_mnist"), ("mlp", "mnist")])
def test_script_trains_one_epoch_and_convzoo_evaluates_it(runner, tmp_path, name, dataset):
    invoke(runner, "eject", name, "--dataset", dataset, "--output", "s.py")
    subprocess.run([sys.executable, "s.py", "--data-dir", str(SAMPLE), "--epochs", "1", "--output", "m.h5"],
                   check=True, cwd=tmp_path, timeout=600, capture_output=True)
    res = invoke(runner, "evaluate", "m.h5", "--data-dir", SAMPLE, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    # one epoch of the sample: well above chance (0.10), which the plain SGD of S1 reaches slowly
    assert out["dataset"] == dataset and out["n"] == 500 and out["accuracy"] > 0.2


def test_script_splits_validation_as_convzoo_does(runner, tmp_path):
    """The ejected script holds convzoo's own split (data/store.py), not a copy that could drift."""
    import numpy as np

    from convzoo.data import store

    invoke(runner, "eject", "mlp", "--dataset", "mnist", "--output", "s.py")
    text = (tmp_path / "s.py").read_text()
    source = text[text.index("def split_indices("):text.index("x_all, y_all = load('train')")]
    scope = {"np": np}
    exec(source, scope)
    y = np.random.default_rng(1).integers(0, 10, 1000)
    for got, want in zip(scope["split_indices"](y, 0.2), store.stratified_split(y, 0.2)):
        np.testing.assert_array_equal(got, want)
