import dataclasses

import numpy as np
import pytest

from convzoo import zoo
from convzoo import data as catalog
from convzoo.errors import UnknownName


def test_registry_and_builders_name_the_same_set():
    from convzoo import nets

    assert set(zoo.REGISTRY) == set(nets.BUILDERS)


def test_seed_names_are_in_the_zoo():
    for name, row in {"mnist-cnn": "S3", "fashion-cnn": "S2", "fashion-cnn-scratch": "S1", "mlp": "S6"}.items():
        assert zoo.get_spec(name).source == row


def test_unknown_model_suggests_nearest():
    with pytest.raises(UnknownName, match="did you mean mnist-cnn"):
        zoo.get_spec("mnist-cn")


def test_overrides_only_replace_given_fields():
    r = zoo.get_spec("mnist-cnn").recipe.with_overrides(epochs=1, learning_rate=None)
    assert r.epochs == 1 and r.learning_rate == 1e-4 and r.batch_size == 50


@pytest.mark.parametrize("field", dataclasses.fields(zoo.Recipe), ids=lambda f: f.name)
def test_every_recipe_field_is_declared_once_with_its_option(field):
    """A Recipe field carries its help and says whether it is an option; the train option is the
    one its metadata describes (spelling, type, choices, bounds, default None: the recipe's), and
    takes every entry's value."""
    import click

    from convzoo.cli import train

    m = field.metadata
    assert isinstance(m.get("help"), str) and m["help"], f"{field.name}: declare it with zoo.field(default, help)"
    assert isinstance(m.get("cli"), bool), f"{field.name}: zoo.field(..., cli=False) if it is not an option"
    flag = "--" + field.name.replace("_", "-")
    same = [p for p in train.params if p.name == field.name or flag in p.opts + p.secondary_opts]
    if not m["cli"]:
        assert not same and field.name in zoo.FIXED
        return
    assert len(same) == 1, f"{field.name}: {len(same)} train options"
    p = same[0]
    assert p.opts == [flag] and p.help.startswith(m["help"] + " [default: ")
    assert train.make_context("train", ["mnist"]).params[field.name] is None  # not set: the recipe's
    if field.type is bool:
        assert p.secondary_opts == ["--no-" + flag[2:]] and isinstance(p.type, click.types.BoolParamType)
    elif "choices" in m:
        assert isinstance(p.type, click.Choice) and tuple(p.type.choices) == tuple(m["choices"])
    else:
        bounds = {k: m.get(k) for k in ("min", "max")} | {k: m.get(k, False) for k in ("min_open", "max_open")}
        ranged = isinstance(p.type, (click.IntRange, click.FloatRange))
        assert ranged == any(k in m for k in bounds), f"{field.name}: bounds {bounds}, option type {p.type!r}"
        if ranged:
            assert isinstance(p.type, click.IntRange if field.type is int else click.FloatRange)
            assert {k: getattr(p.type, k) for k in bounds} == bounds
        else:
            assert p.type.name == {int: "integer", float: "float", str: "text"}[field.type]
    for spec in zoo.REGISTRY.values():
        value = getattr(spec.recipe, field.name)
        assert p.type.convert(value, p, None) == value, f"{spec.name}: {field.name}={value!r}"


def test_reproduce_commands_parse_back_to_the_recipe():
    """The results table's reproduce command and the checkpoint's stored repeat command spell each
    field so that train's options read it back unchanged."""
    import shlex

    from convzoo import results
    from convzoo.cli import train
    from convzoo.train import Plan

    changed = {"optimizer": "sgd", "learning_rate": 0.0123, "batch_size": 7, "epochs": 3, "schedule": "linear",
               "validation_split": 0.25, "precision": "mixed_bfloat16", "label_smoothing": 0.1, "ema": 0.999,
               "warmup_epochs": 1.5, "weight_decay": 5e-4, "bn_momentum": 0.9, "tta": "mirror", "cutout": 0.25,
               "momentum": 0.85, "logit_scale": 0.25, "bias_lr": 8.0}
    missing = [f.name for f in zoo.options() if f.type is not bool and f.name not in changed]
    assert not missing, f"give {missing} a changed value in this test"
    spec = zoo.get_spec("mnist-cnn")
    base = dataclasses.asdict(spec.recipe)
    recipe = {f.name: (not base[f.name]) if f.type is bool else changed[f.name] for f in zoo.options()}
    line = results.command({"model": spec.name, "dataset": "mnist", "recipe": {**base, **recipe}}, "m.h5")
    repeat = Plan("mnist", spec.name, spec.recipe.with_overrides(**recipe), "m.h5", "data").command()
    for command in (line, repeat):
        ctx = train.make_context("train", shlex.split(command)[2:])
        assert {k: ctx.params[k] for k in recipe} == recipe, command
        assert "--loop" not in command  # the entry's, not an option


@pytest.mark.parametrize("name", [n for n in zoo.list_models() if "transfer" not in n])
def test_every_entry_builds_counts_and_trains_a_step(name):
    from convzoo import backend

    keras = backend.load()
    spec = zoo.get_spec(name)
    info = catalog.get("cifar10" if spec.datasets == (zoo.ANY,) else spec.datasets[0])
    model = zoo.build_model(name, info.name, info.input_shape, len(info.classes))
    assert model.count_params() == spec.params or not spec.params  # 0: sized to the input
    x = np.random.default_rng(0).integers(0, 256, size=(8, *info.input_shape), dtype=np.uint8)
    y = np.arange(8) % len(info.classes)
    out = np.asarray(model(x[:2], training=False))
    assert out.shape == (2, 1 if spec.head == "sigmoid" else len(info.classes))
    if spec.head == "softmax":
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    if spec.head == "sigmoid":
        loss, y = keras.losses.BinaryCrossentropy(), y.reshape(-1, 1).astype("float32")
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=spec.head == "logits")
    model.compile(optimizer="sgd", loss=loss)
    before = [w.copy() for w in model.get_weights()]
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_transfer_entries_reuse_a_checkpoints_conv_base(tmp_path):
    """S11 without downloads: stage 1 trains only the new head, stage 2 also the last conv block."""
    from conftest import tiny_meta
    from convzoo import checkpoint
    from convzoo.errors import ConvzooError

    src = zoo.build_model("cifar10-vgg", "cifar10", (32, 32, 3), 10)
    checkpoint.save(src, str(tmp_path / "cifar.h5"), {**tiny_meta("cifar10"), "model": "cifar10-vgg"})
    stage1 = zoo.build_model("catsdogs-transfer", "cats_vs_dogs", (150, 150, 3), 2,
                             weights=str(tmp_path / "cifar.h5"))
    assert stage1.output_shape == (None, 1)
    shrink = stage1.get_layer("shrink")  # 150 px down to 50, near the 32 px the base learned on
    assert shrink.pool_size == (3, 3) and shrink.output.shape[1] == 50
    learning = [layer for layer in stage1.layers if layer.trainable and layer.weights]
    assert len(learning) == 2 and all(type(layer).__name__ == "Dense" for layer in learning)
    conv = next(l for l in stage1.layers if l.name.startswith("base_conv2d"))
    original = next(l for l in src.layers if l.name == conv.name.removeprefix("base_"))
    np.testing.assert_array_equal(conv.get_weights()[0], original.get_weights()[0])
    from convzoo.nets import inference_model

    checkpoint.save(inference_model(stage1), str(tmp_path / "s1.h5"), {**tiny_meta("cats_vs_dogs"), "model": "catsdogs-transfer", "head": "sigmoid"})
    stage2 = zoo.build_model("catsdogs-transfer-finetune", "cats_vs_dogs", (150, 150, 3), 2,
                             weights=str(tmp_path / "s1.h5"))
    assert stage2.get_layer("shrink").pool_size == (3, 3)
    trainable = [l.name for l in stage2.layers if l.trainable and l.weights]
    assert any(n.startswith("base_conv2d") for n in trainable)
    assert len([n for n in trainable if n.startswith("base_conv2d")]) == 2  # the last block only
    with pytest.raises(ConvzooError, match="--weights CHECKPOINT"):
        zoo.build_model("catsdogs-transfer", "cats_vs_dogs", (150, 150, 3), 2)


def test_augmentation_acts_in_training_only():
    from convzoo.nets import inference_model

    model = zoo.build_model("catsdogs-cnn-aug", "cats_vs_dogs", (150, 150, 3), 2)
    x = np.random.default_rng(0).integers(0, 256, size=(2, 150, 150, 3), dtype=np.uint8)
    aug = [layer for layer in model.layers if type(layer).__name__.startswith("Random")]
    assert [type(layer).__name__ for layer in aug] == ["RandomRotation", "RandomTranslation", "RandomShear",
                                                        "RandomZoom", "RandomFlip"]
    seen = x.astype("float32")
    for layer in aug:
        np.testing.assert_array_equal(np.asarray(layer(seen, training=False)), seen)
    assert not np.array_equal(np.asarray(aug[0](seen, training=True)), seen)
    np.testing.assert_allclose(np.asarray(model(x, training=False)),
                               np.asarray(inference_model(model)(x, training=False)), rtol=1e-6)
    assert not any(type(layer).__name__.startswith("Random") for layer in inference_model(model).layers)


def test_models_name_shows_row_recipe_and_layers(runner):
    from conftest import invoke

    res = invoke(runner, "models", "mnist-cnn")
    assert res.exit_code == 0, res.output
    out = res.output
    assert out.startswith("mnist-cnn: conv 5x5x32 SAME")
    assert "docs/seeds.md row S3: the MNIST convnet" in out and "Adam at 1e-4, mini-batches of 50" in out
    lines = out.split("recipe, with every default")[1].split("layers for")[0].strip().splitlines()[1:]
    recipe = {line.split()[0]: line.split()[-1] for line in lines}
    assert "  bn_scale          --bn-scale/--no-bn-scale  on" in lines  # a column apart
    assert all(len(line.split()) >= 3 for line in lines if "--" in line), lines
    assert recipe["learning_rate"] == "0.0001" and recipe["batch_size"] == "50" and recipe["epochs"] == "5"
    assert recipe["validation_split"] == "0.2" and recipe["output"] == "runs/mnist-cnn.h5"
    dense = [line for line in out.splitlines() if "(Dense)" in line and "(batch, 1024)" in line]
    assert len(dense) == 1 and dense[0].split()[-1] == "3,212,288"
    assert "total 3,274,634 parameters" in out


def test_models_name_json_and_defaults_marked(runner):
    import json

    from conftest import invoke

    card = json.loads(invoke(runner, "models", "mlp", "--dataset", "mnist", "--json").stdout)
    assert card["seed_row"]["row"] == "S6" and card["recipe"]["batch_size"] == 256
    s = card["summary"]
    assert s["dataset"] == "mnist" and s["params"] == zoo.get_spec("mlp").params
    assert s["layers"][-1]["output_shape"] == [None, 10] and s["layers"][-1]["type"] == "Dense"
    listing = invoke(runner, "models").output.splitlines()
    marked = {line.split()[0] for line in listing if line.split()[1:2] == ["*"]}
    assert marked == set(zoo.DEFAULT_MODEL.values())
    rows = json.loads(invoke(runner, "models", "--json").stdout)
    assert {r["name"]: r["default_for"] for r in rows}["mnist-vgg"] == ["mnist"]
    bad = invoke(runner, "models", "mlp", "--dataset", "cifar10")
    assert bad.exit_code == 1 and "built for fashion_mnist, mnist, not cifar10" in bad.output


@pytest.mark.parametrize("name", zoo.list_models())
def test_every_entry_saves_and_loads_to_the_same_outputs(name, tmp_path):
    """keras-hub's run_model_saving_test for the zoo: each entry built once, saved as training
    saves it (the inference model through checkpoint.save), loaded through the safe loader
    (checkpoint.load): the same weights and the same outputs on a fixed random batch."""
    from conftest import ROOT, tiny_meta
    from convzoo import backend, checkpoint
    from convzoo.nets import inference_model

    backend.load()
    spec = zoo.get_spec(name)
    info = catalog.get("cifar10" if spec.datasets == (zoo.ANY,) else spec.datasets[0])
    # a transfer entry starts from a convzoo checkpoint: the bundled colour model, as train does
    weights = str(ROOT / "models" / "cifar10.h5") if spec.weights == "base" else None
    model = zoo.build_model(name, info.name, info.input_shape, len(info.classes), weights=weights)
    meta = {**tiny_meta(info.name), "model": name, "head": spec.head}
    saved = inference_model(model)
    loaded, got = checkpoint.load(checkpoint.save(saved, str(tmp_path / f"{name}.h5"), meta))
    assert got == meta
    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in saved.layers]
    for a, b in zip(saved.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).integers(0, 256, size=(2, *info.input_shape), dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(loaded(x, training=False)), np.asarray(model(x, training=False)))
