"""The record recipes' fields: whitening, Dirac init, batch norm, schedules, label smoothing, EMA,
cutout, TTA, logit scale and batch-norm shift learning rate, each through build, train, save and load; hostile variants refused by the allowlist."""
import json

import numpy as np
import pytest

from conftest import SAMPLE, invoke, tiny_meta
from convzoo import heads, tricks, tta, zoo
from convzoo.errors import CheckpointError, ConvzooError

TRICKS = ["--label-smoothing", "0.1", "--ema", "0.9", "--warmup-epochs", "0.5", "--schedule", "linear",
          "--weight-decay", "0.01", "--bn-momentum", "0.5", "--no-bn-scale", "--whiten", "--dirac",
          "--tta", "mirror+shift1", "--cutout", "0.25"]


def test_whitening_weights_whiten_patches():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (40, 8, 8, 1)).astype(np.float64)
    images = np.clip(base + np.roll(base, 1, axis=2) * 0.8, 0, 255).astype(np.uint8)  # correlated
    kernel, bias = tricks.whitening_weights(images)
    assert kernel.shape == (2, 2, 1, 8) and bias.shape == (8,)
    x = images / 255.0
    patches = np.stack([x[:, i:7 + i, j:7 + j, 0] for i in range(2) for j in range(2)], -1).reshape(-1, 4)
    out = patches @ kernel.reshape(4, 8)[:, :4] + bias[:4]
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-6)
    cov = out.T @ out / len(out)
    np.testing.assert_allclose(cov, np.diag(np.diag(cov)), atol=1e-3)  # decorrelated
    assert np.all(np.diag(cov) > 0.5) and np.all(np.diag(cov) <= 1.0)  # unit variance, eps aside
    np.testing.assert_allclose(kernel[..., 4:], -kernel[..., :4])


def test_dirac_init_passes_channels_through():
    import keras

    model = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(3, 3, padding="same",
                                                                          use_bias=False)])
    assert tricks.dirac_init(model) == 1
    x = np.random.default_rng(1).normal(size=(1, 6, 6, 2)).astype("float32")
    y = np.asarray(model(x))
    np.testing.assert_allclose(y[..., :2], x, atol=1e-6)


def test_warmup_schedules():
    import keras

    r = zoo.Recipe(learning_rate=1.0, epochs=10, schedule="linear", warmup_epochs=2)
    lr = tricks.schedule(keras, r, 10)  # 100 steps, 20 of warm-up
    at = [float(lr(s)) for s in (0, 9, 19, 60, 99)]
    assert at[0] == pytest.approx(0.05) and at[1] == pytest.approx(0.5) and at[2] == pytest.approx(1.0)
    assert at[3] == pytest.approx(0.5, abs=0.02) and at[4] < 0.02
    cos = tricks.schedule(keras, zoo.Recipe(learning_rate=1.0, epochs=10, schedule="cosine",
                                            warmup_epochs=2), 10)
    assert float(cos(60)) == pytest.approx(0.5, abs=0.03)
    assert isinstance(tricks.schedule(keras, zoo.Recipe(schedule="cosine"), 10),
                      keras.optimizers.schedules.CosineDecay)  # older recipes unchanged


def test_label_smoothing_loss():
    import keras

    y, p = np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]], "float32")
    smooth = float(heads.loss(keras, "softmax", 0.2)(y, p))
    onehot = np.eye(2)[y] * 0.8 + 0.1
    assert smooth == pytest.approx(float(-(onehot * np.log(p)).sum(1).mean()), rel=1e-5)
    assert float(heads.loss(keras, "softmax", 0)(y, p)) < smooth


@pytest.mark.parametrize("bad, message", [
    (["--label-smoothing", "1"], "--label-smoothing"), (["--ema", "1.5"], "--ema"),
    (["--warmup-epochs", "5"], "--warmup-epochs"), (["--tta", "spin"], "--tta 'spin'"),
    (["--tta", "shift9"], "shiftN"), (["--schedule", "steps"], "Invalid value"), (["--cutout", "1"], "--cutout"),
    (["--momentum", "0.9"], "--momentum is for sgd and rmsprop"), (["--momentum", "1"], "Invalid value"),
    (["--optimizer", "sgd", "--nesterov"], "--nesterov needs"),
    (["--optimizer", "rmsprop", "--momentum", "0.9", "--nesterov"], "--nesterov needs"),
    (["--bias-lr", "64"], "--bias-lr 64 needs --optimizer sgd"), (["--logit-scale", "0"], "Invalid value"),
])
def test_bad_recipe_values_are_one_line(runner, bad, message):
    res = invoke(runner, "train", "fashion_mnist", "--model", "fashion-vgg", "--epochs", "2", *bad,
                 "--data-dir", SAMPLE)
    assert res.exit_code in (1, 2) and message in res.output and "Traceback" not in res.output


def test_a_stored_recipe_is_checked_as_the_options_are():
    """A checkpoint's recipe (resume, --weights) skips click's ranges: check() bounds it."""
    with pytest.raises(ConvzooError, match="--cutout 5: the square's side"):
        tricks.check(zoo.Recipe(cutout=5.0), "fashion-vgg")
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ConvzooError, match="--logit-scale .*: must be above 0"):
            tricks.check(zoo.Recipe(logit_scale=bad), "fashion-vgg")
        with pytest.raises(ConvzooError, match="--bias-lr .*: must be above 0"):
            tricks.check(zoo.Recipe(optimizer="sgd", bias_lr=bad), "fashion-vgg")


def test_s1s_loop_takes_ema_too(runner, tmp_path):
    """One loop for every recipe: S1's hand-written recipe averages its weights with --ema as well."""
    from convzoo import checkpoint

    res = invoke(runner, "train", "fashion_mnist", "--model", "fashion-cnn-scratch", "--epochs", "1",
                 "--limit", "100", "--ema", "0.9", "--data-dir", SAMPLE, "--output", "s1.h5", "--quiet")
    assert res.exit_code == 0, res.output
    assert checkpoint.read_meta("s1.h5")["recipe"]["ema"] == 0.9


def test_every_trick_trains_saves_loads_and_gives_the_same_outputs(runner, tmp_path):
    from convzoo import checkpoint
    from convzoo.data import mnist

    res = invoke(runner, "train", "fashion_mnist", "--model", "fashion-vgg", "--epochs", "2", "--limit",
                 "200", "--batch-size", "50", *TRICKS, "--data-dir", SAMPLE, "--output", "m.h5")
    assert res.exit_code == 0, res.output
    assert "whitening layer fitted" in res.output and "identity init in 4 conv layers" in res.output
    model, meta = checkpoint.load("m.h5")
    r = meta["recipe"]
    assert (r["label_smoothing"], r["ema"], r["warmup_epochs"], r["schedule"], r["bn_momentum"],
            r["bn_scale"], r["whiten"], r["dirac"], r["tta"], r["cutout"]) == (
        0.1, 0.9, 0.5, "linear", 0.5, False, True, True, "mirror+shift1", 0.25)
    assert not any(type(la).__name__.startswith("Random") for la in model.layers)  # saved without them
    whiten = model.get_layer("whiten")
    assert not whiten.trainable and model.layers.index(whiten) == 1  # right after Rescaling
    bns = [la for la in model.layers if type(la).__name__ == "BatchNormalization"]
    assert bns and all(la.momentum == 0.5 and not la.scale for la in bns)
    x, y = mnist.load(SAMPLE / "fashion_mnist", "test")
    checkpoint.save(model, tmp_path / "again.h5", meta)
    again, _ = checkpoint.load(tmp_path / "again.h5")
    np.testing.assert_allclose(np.asarray(again(x[:20])), np.asarray(model(x[:20])), atol=1e-6)
    from convzoo import results

    line = results.command(meta, "m.h5")  # the reproduce column names every field
    assert "--label-smoothing 0.1 --ema 0.9" in line and "--no-bn-scale --whiten --dirac" in line

    # --tta: the checkpoint's views, the same figure as averaging the views by hand
    plain = json.loads(invoke(runner, "evaluate", "m.h5", "--data-dir", SAMPLE, "--limit", "40",
                              "--json").stdout)
    res = invoke(runner, "evaluate", "m.h5", "--data-dir", SAMPLE, "--limit", "40", "--tta", "--json")
    with_tta = json.loads(res.stdout)
    assert with_tta["tta"] == "mirror+shift1" and "tta" not in plain
    probs = tta.average(lambda b: np.asarray(model(b)), x[:40], "mirror+shift1")
    assert with_tta["accuracy"] == pytest.approx(float((probs.argmax(1) == y[:40]).mean()))
    res = invoke(runner, "predict", SAMPLE / "samples" / "fashion_mnist_9999_Sandal.png", "--model", "m.h5",
                 "--tta", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)[0]["predictions"]


def test_cutout_greys_one_square_in_training_only():
    from convzoo import backend, nets

    backend.load()
    model = tricks.apply_to_build(zoo.build_model("fashion-cnn", "fashion_mnist", (28, 28, 1), 10),
                                  zoo.Recipe(cutout=0.25))
    names = [type(la).__name__ for la in model.layers]
    assert names.index("RandomErasing") == names.index("Rescaling") - 1  # on the 0..255 pixels
    x = np.zeros((8, 28, 28, 1), np.uint8)
    out = np.asarray(model.get_layer("cutout")(x, training=True))
    assert [int((o == 127.5).sum()) for o in out] == [7 * 7] * 8  # a 7x7 square: 0.25 of 28
    assert ((out == 127.5) | (out == 0)).all()
    np.testing.assert_array_equal(np.asarray(model.get_layer("cutout")(x, training=False)), x)
    assert "RandomErasing" not in [type(la).__name__ for la in nets.inference_model(model).layers]


def test_tta_views_and_weights():
    x = np.arange(2 * 4 * 4 * 1, dtype=np.uint8).reshape(2, 4, 4, 1)
    assert tta.views(x, "none")[0][1] is x
    mirror = tta.views(x, "mirror")
    assert [w for w, _ in mirror] == [0.5, 0.5] and np.array_equal(mirror[1][1], x[:, :, ::-1])
    six = tta.views(x, "mirror+shift1")
    assert len(six) == 6 and sum(w for w, _ in six) == pytest.approx(1.0)
    np.testing.assert_array_equal(six[4][1][:, 1:, 1:], x[:, :-1, :-1])  # moved down-right by 1
    # a model that sees only the mirror-symmetric part is unchanged by mirror TTA
    run = lambda b: b.reshape(len(b), -1)[:, :1].astype(float) + b.reshape(len(b), -1)[:, 3:4]  # noqa: E731
    np.testing.assert_allclose(tta.average(run, x, "mirror"), run(x))


def test_tta_views_of_old_checkpoints():
    assert tta.views_of({"dataset": "cifar10", "recipe": {"augment": True}}) == ("mirror+shift1",
                                                                                  "dataset default")
    assert tta.views_of({"dataset": "mnist", "recipe": {"tta": "none"}}) == ("none", "recipe")


@pytest.mark.parametrize("node, found", [
    # a whitening conv whose initialiser is a registered custom object (code on load)
    ({"class_name": "Conv2D", "module": "keras.layers", "name": "whiten", "config": {
        "kernel_initializer": {"class_name": "Dirac", "module": "evil", "config": {},
                               "registered_name": "evil>Dirac"}}}, "class 'Dirac'"),
    ({"class_name": "Constant", "module": "keras.initializers", "config": {"value": 1},
      "registered_name": "evil>Constant"}, "custom object 'evil>Constant'"),
    ({"class_name": "Activation", "module": "keras.layers", "config": {"activation": "gelu_evil"}},
     "activation 'gelu_evil'"),
    ({"class_name": "Activation", "module": "keras.layers",
      "config": {"activation": {"class_name": "function", "config": "gelu", "module": "os"}}},
     "class 'function'"),
    ({"class_name": "Conv2D", "module": "keras.layers", "config": {"kernel_initializer": "Dirac"}},
     "kernel_initializer"),
    # cutout acts in training only: checkpoints are saved without it, so none may carry one
    ({"class_name": "RandomErasing", "module": "keras.layers", "config": {"factor": [1.0, 1.0]}},
     "class 'RandomErasing'"),
])
def test_hostile_variants_of_the_new_layers_are_refused(node, found):
    from convzoo import checkpoint

    config = {"class_name": "Sequential", "config": {"layers": [node]}}
    with pytest.raises(CheckpointError, match=found.replace("(", r"\(").replace(">", ".")):
        checkpoint.check_config(config, "x.h5")


def test_the_new_layers_pass_the_allowlist_and_load_safely(tmp_path):
    from convzoo import checkpoint

    model = zoo.build_model("cifar10-air", "cifar10", (32, 32, 3), 10, augment=False)
    meta = tiny_meta("cifar10")
    checkpoint.save(model, tmp_path / "air.h5", meta)
    loaded, _ = checkpoint.load(tmp_path / "air.h5")  # safe_mode=True, nothing registered
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype(np.uint8)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-5)


def test_pretrained_entries_refuse_rebuilding_tricks():
    with pytest.raises(ConvzooError, match="--whiten"):
        tricks.check(zoo.Recipe(whiten=True), "vgg16-features")
    with pytest.raises(ConvzooError, match="--logit-scale would rebuild"):
        tricks.check(zoo.Recipe(cutout=0.25), "catsdogs-transfer")
    with pytest.raises(ConvzooError, match="--logit-scale would rebuild"):
        tricks.check(zoo.Recipe(logit_scale=0.5), "transfer")


@pytest.mark.parametrize("head", ["softmax", "sigmoid"])
def test_logit_scale_divides_the_logits_before_the_activation(tmp_path, head):
    """--logit-scale s: the head's Dense becomes linear, then Rescaling(s), then its activation; the
    outputs are the activation of s times the plain model's logits, and the model loads safely."""
    import keras

    from convzoo import checkpoint

    classes = 1 if head == "sigmoid" else 10
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255),
                              keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                              keras.layers.Dense(classes, activation=head)])
    scaled = tricks.apply_to_build(model, zoo.Recipe(logit_scale=0.25))
    assert [type(la).__name__ for la in scaled.layers[-3:]] == ["Dense", "Rescaling", "Activation"]
    assert scaled.layers[-3].get_config()["activation"] == "linear"
    scaled.set_weights(model.get_weights())
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype(np.uint8)
    dense = model.layers[-1]
    logits = np.asarray(keras.Sequential(model.layers[:-1])(x)) @ dense.kernel.numpy() + dense.bias.numpy()
    want = np.asarray(keras.activations.get(head)(0.25 * logits))
    np.testing.assert_allclose(np.asarray(scaled(x)), want, atol=1e-5)
    if head == "softmax":
        checkpoint.save(scaled, tmp_path / "s.h5", tiny_meta("cifar10"))
        loaded, _ = checkpoint.load(tmp_path / "s.h5")  # safe_mode=True, nothing registered
        np.testing.assert_allclose(np.asarray(loaded(x)), want, atol=1e-5)
    assert tricks.apply_to_build(scaled, zoo.Recipe(logit_scale=0.25)) is scaled  # not twice


def test_bias_lr_scales_the_batch_norm_shifts_gradients_only():
    """Under SGD, --bias-lr k moves each batch-norm shift k times as far as the plain run does in
    one step, and every other weight exactly as far."""
    import keras

    from convzoo import heads, loop, train

    def one_step(bias_lr):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(3, 3, use_bias=False),
                                  keras.layers.BatchNormalization(scale=False), keras.layers.Flatten(),
                                  keras.layers.Dense(2, activation="softmax")])
        recipe = zoo.Recipe(optimizer="sgd", learning_rate=0.1, bias_lr=bias_lr)
        before = [v.numpy().copy() for v in model.trainable_variables]
        opt = train.optimizer(keras, recipe, 1)
        step, _ = loop.steps(keras, model, opt, heads.loss(keras, "softmax"), "softmax",
                             grad_scales=tricks.gradient_scales(model, recipe))
        x = np.random.default_rng(1).normal(size=(8, 4, 4, 1)).astype("float32")
        step(x, np.arange(8) % 2)
        return [v.path for v in model.trainable_variables], \
            [v.numpy() - b for v, b in zip(model.trainable_variables, before)]

    names, plain = one_step(1.0)
    _, fast = one_step(64.0)
    assert tricks.gradient_scales(keras.Sequential([keras.Input((2,))]), zoo.Recipe()) is None
    for name, a, b in zip(names, plain, fast):
        if name.endswith("beta"):
            assert np.abs(a).max() > 0
            np.testing.assert_allclose(b, 64 * a, rtol=1e-4)
        else:
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("model, dataset", [("catsdogs-transfer", "cats_vs_dogs"), ("transfer", "cifar10")])
def test_a_transfer_model_keeps_its_bases_batch_norm_and_weights(tmp_path, model, dataset):
    """cifar10-air's batch norm (momentum 0.4, no scale) differs from a transfer recipe's defaults:
    the model is the base's layers as they are, not rebuilt from a config (which lost the weights,
    and failed on RandomShear's config)."""
    from convzoo import checkpoint, train
    from convzoo import data as catalog
    from convzoo.plan import plan

    base = zoo.build_model("cifar10-air", "cifar10", (32, 32, 3), 10, augment=False)
    checkpoint.save(base, tmp_path / "air.h5", {**tiny_meta("cifar10"), "model": "cifar10-air"})
    p = plan(dataset, model, weights=str(tmp_path / "air.h5"), data_dir=str(tmp_path),
             output=str(tmp_path / "t.h5"))
    built = train.build(p, catalog.get(dataset))
    norms = [layer for layer in built.layers if type(layer).__name__ == "BatchNormalization"]
    assert norms and all(n.momentum == 0.4 and not n.scale for n in norms)
    conv = next(layer for layer in built.layers if layer.name.startswith("base_conv2d"))
    source = base.get_layer(conv.name.removeprefix("base_"))
    np.testing.assert_array_equal(conv.get_weights()[0], source.get_weights()[0])


def test_ema_weights_are_the_average_at_every_epoch_end():
    import keras

    from convzoo import train

    opt = train.optimizer(keras, zoo.Recipe(learning_rate=0.1, epochs=2, ema=0.5), 5)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", steps_per_execution=8)
    x = np.random.default_rng(0).normal(size=(40, 3)).astype("float32")
    same = []

    class Check(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            same.append(np.allclose(model.trainable_variables[0].numpy(),
                                    opt._model_variables_moving_average[0].numpy()))

    model.fit(x, (x[:, 0] > 0).astype("int32"), batch_size=8, epochs=2, verbose=0, shuffle=False,
              callbacks=[Check()])
    assert same == [True, True] and int(opt.iterations.numpy()) == 10


@pytest.mark.parametrize("name, momentum, nesterov", [("sgd", 0.9, True), ("sgd", 0.85, False),
                                                      ("rmsprop", 0.5, False), ("sgd", 0.0, False)])
def test_momentum_reaches_the_optimizer(name, momentum, nesterov):
    import keras

    from convzoo import train

    recipe = zoo.Recipe(optimizer=name, momentum=momentum, nesterov=nesterov)
    tricks.check(recipe, "fashion-vgg")
    opt = train.optimizer(keras, recipe, 5)
    assert type(opt).__name__ == {"sgd": "SGD", "rmsprop": "RMSprop"}[name]
    assert opt.momentum == momentum and getattr(opt, "nesterov", False) == nesterov
