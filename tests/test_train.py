"""End to end: train on real images (the shipped sample, or ../shared when present), save,
reload, evaluate and predict through the CLI."""
import csv
import json

import numpy as np
import pytest

from conftest import SAMPLE, invoke
from convzoo import zoo

SAMPLES = SAMPLE / "samples"


GRAY = [n for n in zoo.list_models() if set(zoo.get_spec(n).datasets) <= {"mnist", "fashion_mnist"}]


@pytest.mark.parametrize("name", GRAY)  # the colour models: tests/test_colour.py, on real images
def test_every_model_trains_saves_loads_and_predicts(runner, name, tmp_path):
    from convzoo import checkpoint

    dataset = zoo.get_spec(name).datasets[0]
    warmup = ["--warmup-epochs", "0.5"] if zoo.get_spec(name).recipe.warmup_epochs else []  # below 1 epoch
    res = invoke(runner, "train", dataset, "--model", name, "--epochs", "1", "--limit", "300",
                 "--data-dir", SAMPLE, "--output", "m.h5", *warmup)
    assert res.exit_code == 0, res.output
    assert "best val_accuracy" in res.output and "epoch 1/1" in res.output
    run = tmp_path / "m_run"
    rows = list(csv.DictReader(open(run / "history.csv")))
    assert len(rows) == 1 and set(rows[0]) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert json.loads((run / "config.json").read_text())["model"] == name
    assert (run / "curves.png").stat().st_size > 1000
    meta = checkpoint.read_meta(tmp_path / "m.h5")
    assert meta["dataset"] == dataset and meta["model"] == name and meta["epochs_run"] == 1
    assert len(meta["classes"]) == 10 and meta["train_images"] + meta["val_images"] == 300
    assert abs(meta["val_images"] - 300 * zoo.get_spec(name).recipe.validation_split) <= 5
    res = invoke(runner, "predict", SAMPLES / f"{dataset}_9999_{'6' if dataset == 'mnist' else 'Sandal'}.png",
                 "--model", "m.h5", "--json", "--top-k", "10")
    out = json.loads(res.stdout)
    assert res.exit_code == 0 and out[0]["error"] is None and len(out[0]["predictions"]) == 10
    probs = [p["probability"] for p in out[0]["predictions"]]
    assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 1e-4
    assert {p["label"] for p in out[0]["predictions"]} == set(meta["classes"])


def test_reloaded_model_gives_the_same_outputs(tmp_path):
    from convzoo import checkpoint
    from convzoo.data import mnist

    x, _ = mnist.load(SAMPLE / "mnist", "test")
    model = zoo.build_model("fashion-cnn", "mnist", (28, 28, 1), 10)
    checkpoint.save(model, tmp_path / "a.h5", {"dataset": "mnist", "x": 1})
    checkpoint.save(model, tmp_path / "a.keras", {"dataset": "mnist", "x": 1})
    for path in ("a.h5", "a.keras"):
        loaded, meta = checkpoint.load(tmp_path / path)
        assert meta == {"dataset": "mnist", "x": 1}
        np.testing.assert_allclose(np.asarray(loaded(x[:50])), np.asarray(model(x[:50])), atol=1e-6)


def test_h5_save_is_quiet_and_atomic(tmp_path, capfd):
    from convzoo import checkpoint

    model = zoo.build_model("mlp", "mnist", (28, 28, 1), 10)
    checkpoint.save(model, tmp_path / "m.h5", {"dataset": "mnist"})
    captured = capfd.readouterr()
    assert "legacy" not in captured.err + captured.out
    assert [p.name for p in tmp_path.iterdir()] == ["m.h5"]  # no temp file left behind


def test_tape_loop_trains_s1(runner, tmp_path):
    res = invoke(runner, "train", "fashion_mnist", "--model", "fashion-cnn-scratch", "--epochs", "2",
                 "--limit", "1000", "--data-dir", SAMPLE, "--output", "s1.h5")
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(tmp_path / "s1_run" / "history.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[1]["loss"]) < float(rows[0]["loss"])  # plain SGD lr 0.01 learns
    res = invoke(runner, "train", "fashion_mnist", "--model", "fashion-cnn-scratch", "--optimizer", "adam",
                 "--data-dir", SAMPLE, "--output", "s1b.h5")
    assert res.exit_code == 1 and "hand-written plain-SGD loop" in res.output


def test_keras_output_format(runner, tmp_path):
    res = invoke(runner, "train", "mnist", "--model", "mlp", "--epochs", "1", "--limit", "300",
                 "--data-dir", SAMPLE, "--output", "m.keras")
    assert res.exit_code == 0, res.output
    res = invoke(runner, "evaluate", "m.keras", "--data-dir", SAMPLE, "--json")
    assert json.loads(res.stdout)["n"] == 500


def test_evaluate_report_and_predict_errors(runner, tmp_path):
    invoke(runner, "train", "mnist", "--model", "mlp", "--epochs", "2", "--limit", "1000",
           "--data-dir", SAMPLE, "--output", "m.h5")
    res = invoke(runner, "evaluate", "m.h5", "--data-dir", SAMPLE, "--report-dir", "rep")
    assert res.exit_code == 0 and "confusion matrix" in res.output
    for f in ("confusion_matrix.png", "misclassified.png", "metrics.json"):
        assert (tmp_path / "rep" / f).stat().st_size > 100
    res = invoke(runner, "evaluate", "m.h5", "--data-dir", SAMPLE, "--json", "--limit", "100")
    out = json.loads(res.stdout)
    assert set(out) >= {"accuracy", "loss", "n", "per_class", "confusion_matrix"} and out["n"] == 100
    assert np.array(out["confusion_matrix"]).sum() == 100
    # one unreadable file gets its own error entry; the rest are predicted; exit status 1
    (tmp_path / "broken.png").write_bytes(b"not an image")
    res = runner.invoke(__import__("convzoo.cli").cli.cli,
                        ["predict", str(SAMPLES / "mnist_9996_3.png"), "broken.png", "--model", "m.h5", "--json"])
    assert res.exit_code == 1
    out = json.loads(res.stdout)
    assert out[0]["error"] is None and out[0]["predictions"]
    assert out[1]["predictions"] == [] and "broken.png" in out[1]["error"]


def test_wrong_dataset_for_checkpoint(tmp_path):
    from convzoo import data as catalog
    from convzoo.errors import CheckpointError
    from convzoo.evaluate import check_fits

    meta = {"dataset": "cifar10", "input_shape": [32, 32, 3], "classes": list("abcdefghij")}
    with pytest.raises(CheckpointError, match="cifar10 model .* cannot be evaluated on mnist"):
        check_fits(meta, catalog.get("mnist"), "c.h5")


@pytest.mark.shared("mnist")
def test_real_mnist_quick_run_beats_90_percent(runner, shared_datasets, tmp_path):
    res = invoke(runner, "train", "mnist", "--epochs", "1", "--limit", "4000",
                 "--data-dir", shared_datasets, "--output", "m.h5")
    assert res.exit_code == 0, res.output
    out = json.loads(invoke(runner, "evaluate", "m.h5", "--data-dir", shared_datasets, "--json").stdout)
    assert out["n"] == 10000 and out["accuracy"] > 0.90


def test_weights_warm_start_from_own_checkpoint(runner, tmp_path):
    """--weights CHECKPOINT on a plain zoo model starts from that checkpoint's weights; a checkpoint
    of another model is refused with one line."""
    from convzoo import backend, checkpoint, nets

    res = invoke(runner, "train", "mnist", "--model", "mnist-vgg", "--epochs", "1", "--limit", "300",
                 "--data-dir", SAMPLE, "--output", "a.h5")
    assert res.exit_code == 0, res.output
    backend.load()
    fresh = zoo.build_model("mnist-vgg", "mnist", (28, 28, 1), 10)  # with its augmentation layers
    nets.warm_start(fresh, tmp_path / "a.h5")
    saved, _ = checkpoint.load(tmp_path / "a.h5")
    batch = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1)).astype("uint8")
    assert np.allclose(fresh(batch, training=False), saved(batch, training=False), atol=1e-6)
    res = invoke(runner, "train", "mnist", "--model", "mnist-vgg", "--epochs", "1", "--limit", "300",
                 "--data-dir", SAMPLE, "--output", "b.h5", "--weights", "a.h5")
    assert res.exit_code == 0, res.output
    res = invoke(runner, "train", "mnist", "--model", "mnist-cnn", "--epochs", "1", "--limit", "300",
                 "--data-dir", SAMPLE, "--output", "c.h5", "--weights", "a.h5")
    assert res.exit_code == 1 and "a checkpoint of mnist-vgg, not mnist-cnn" in res.output
    assert not (tmp_path / "c.h5").exists()


def test_mixed_bfloat16_trains_and_saves_a_float32_checkpoint(runner, tmp_path):
    """bfloat16 compute learns as float32 does (same run otherwise) and the checkpoint is float32."""
    from convzoo import checkpoint

    acc = {}
    for precision in ("float32", "mixed_bfloat16"):
        res = invoke(runner, "train", "mnist", "--model", "mnist-cnn", "--epochs", "1", "--learning-rate",
                     "1e-3", "--data-dir", SAMPLE, "--output", f"{precision}.h5", "--precision", precision)
        assert res.exit_code == 0, res.output
        res = invoke(runner, "evaluate", f"{precision}.h5", "--data-dir", SAMPLE, "--json")
        acc[precision] = json.loads(res.stdout)["accuracy"]
    assert acc["float32"] > 0.8 and abs(acc["mixed_bfloat16"] - acc["float32"]) < 0.05, acc
    model, meta = checkpoint.load(tmp_path / "mixed_bfloat16.h5")
    assert meta["recipe"]["precision"] == "mixed_bfloat16"
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    res = invoke(runner, "train", "mnist", "--model", "mnist-cnn", "--output", "mixed_bfloat16.h5",
                 "--resume", "--data-dir", SAMPLE, "--precision", "float32")
    assert res.exit_code == 1 and "precision mixed_bfloat16, not float32" in res.output


@pytest.mark.parametrize("head, units", [("softmax", 3), ("logits", 3), ("sigmoid", 1)])
def test_fit_and_the_custom_loop_score_accuracy_alike(head, units):
    """Keras' metrics=["accuracy"] (what fit reported when it ran the recipes) and loop.steps (the
    custom loop) both count heads.accuracy: the same answer on the same outputs, for every head."""
    import keras

    from convzoo import heads, loop

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype("float32")
    y = heads.targets(rng.integers(0, 2 if head == "sigmoid" else 3, 64), head)
    act = {"softmax": "softmax", "logits": None, "sigmoid": "sigmoid"}[head]
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(units, activation=act)])
    model.compile(keras.optimizers.SGD(0.0), loss=heads.loss(keras, head), metrics=["accuracy"])
    fit_acc = model.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)["accuracy"]
    _, val_batch = loop.steps(keras, model, keras.optimizers.SGD(0.0), heads.loss(keras, head), head)
    loss_sum, right, n = val_batch(x, y).numpy()
    assert n == 64 and right / n == pytest.approx(fit_acc)
    assert 0 < right < 64  # a real check: some right, some wrong


@pytest.mark.parametrize("head, k", [("softmax", 3), ("sigmoid", 2)])
def test_the_custom_loop_weights_classes_and_averages_as_keras_fit_does(head, k):
    """--class-weight balanced and --ema: an epoch of loop.custom gives the loss, accuracy and final
    (averaged) weights Keras fit gives with class_weight and use_ema, on the same batches."""
    import types

    import keras

    from convzoo import heads, loop, train, watch

    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 4)).astype("float32")
    y = heads.targets(np.r_[np.zeros(30, int), rng.integers(0, k, 18)], head)  # unbalanced
    weights = train.balanced_weights(y, k)
    # 5 steps per epoch for the averaging, 3 taken: only the end-of-training overwrite averages
    recipe = zoo.Recipe(optimizer="sgd", learning_rate=0.5, epochs=1, ema=0.5)

    def fresh():
        keras.utils.set_random_seed(0)
        act = "sigmoid" if head == "sigmoid" else "softmax"
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(heads.units(head, k), activation=act)])

    fit_model = fresh()
    fit_model.compile(train.optimizer(keras, recipe, 5), loss=heads.loss(keras, head), metrics=["accuracy"])
    logs = fit_model.fit(x, y, batch_size=16, shuffle=False, class_weight=weights, verbose=0).history

    model, seen = fresh(), {}
    run = types.SimpleNamespace(
        model=model, optimizer=train.optimizer(keras, recipe, 5), spec=types.SimpleNamespace(head=head),
        stop=types.SimpleNamespace(check=lambda: None), stopped_early=None, epochs_left=lambda: range(1),
        watch=watch.Watch(watch.Options(quiet=True), 48, 16, 1),
        end_epoch=lambda epoch, row, seconds: seen.update(row))
    run.optimizer.build(model.trainable_variables)
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 48, 16)]
    loop.custom(keras, run, heads.loss(keras, head), lambda epoch: batches, lambda: batches,
                [weights[c] for c in range(k)])
    assert seen["loss"] == pytest.approx(logs["loss"][0], rel=1e-5)
    assert seen["accuracy"] == pytest.approx(logs["accuracy"][0], rel=1e-5)
    for a, b in zip(model.get_weights(), fit_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_s1_batches_as_a_dataset_are_s1s_batches():
    """Under --distribute S1's recipe is fed by train.pipeline in its own order (tape_order): the
    same batches, epoch by epoch, as its NumPy batches on one device."""
    import types

    from convzoo import train

    x = np.arange(50 * 4, dtype=np.uint8).reshape(50, 2, 2, 1)
    y = np.arange(50) % 10
    run = types.SimpleNamespace(data=(x, y, x[:5], y[:5]),
                                p=types.SimpleNamespace(seed=3, recipe=types.SimpleNamespace(batch_size=8)))
    train_batches, _ = train.tape_batches(run)
    for epoch in (0, 4):
        want = list(train_batches(epoch))
        got = list(train.pipeline(x, y, 8, order=train.tape_order(3, epoch, 50)))
        assert len(got) == len(want) == 7
        for (xw, yw), (xg, yg) in zip(want, got):
            np.testing.assert_array_equal(xg.numpy(), xw)
            np.testing.assert_array_equal(yg.numpy(), yw)
