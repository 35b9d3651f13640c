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


@pytest.mark.parametrize("name", zoo.list_models())
def test_every_entry_builds_counts_and_trains_a_step(name):
    from convzoo import backend

    keras = backend.load()
    spec = zoo.get_spec(name)
    info = catalog.get(spec.datasets[0])
    model = zoo.build_model(name, info.name, info.input_shape, len(info.classes))
    assert model.count_params() == spec.params
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
