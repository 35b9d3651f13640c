"""Grad-CAM, feature maps and `convzoo explain` on tiny models."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from convzoo import explain  # noqa: E402

SIZE = 20
REGION = (slice(2, 6), slice(13, 17))  # the square that decides the class
ELSEWHERE = [(13, 2), (13, 13), (2, 2), (8, 8)]


CROSS = np.array([[0, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1], [0, 1, 1, 0]], np.uint8) * 255
RING = np.array([[1, 1, 1, 1], [1, 0, 0, 1], [1, 0, 0, 1], [1, 1, 1, 1]], np.uint8) * 255


def _images(n, rng):
    """Class 1 iff a cross is drawn at REGION; every image has a ring drawn elsewhere, so brightness
    alone does not decide."""
    x = rng.integers(0, 30, (n, SIZE, SIZE, 1)).astype(np.uint8)
    y = rng.integers(0, 2, n)
    for img, label in zip(x, y):
        r, c = ELSEWHERE[rng.integers(len(ELSEWHERE))]
        img[r:r + 4, c:c + 4, 0] = RING
        if label:
            img[REGION][..., 0] = CROSS
    return x, y


def _fit(head):
    keras.utils.set_random_seed(0)
    x, y = _images(600, np.random.default_rng(0))
    out = keras.layers.Dense(1 if head == "sigmoid" else 2, activation=None if head == "logits" else head)
    model = keras.Sequential([keras.Input((SIZE, SIZE, 1)), keras.layers.Rescaling(1 / 255),
                              keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
                              keras.layers.MaxPooling2D(2),
                              keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), out])
    loss = {"softmax": "sparse_categorical_crossentropy", "sigmoid": "binary_crossentropy",
            "logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)}[head]
    model.compile(keras.optimizers.Adam(3e-3), loss)
    model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    return model


@pytest.mark.parametrize("head", ["softmax", "sigmoid", "logits"])
def test_gradcam_peaks_on_the_deciding_region(head):
    model = _fit(head)
    x, y = _images(40, np.random.default_rng(1))
    pred = explain.forward(model, x.astype(np.float32))[0].numpy()
    pred = (pred[:, 0] > 0).astype(int) if head == "sigmoid" else pred.argmax(1)
    assert (pred == y).mean() > 0.95  # the model learnt the rule
    hits = 0
    ones = np.flatnonzero(y == 1)
    for i in ones:
        cam, c, p = explain.gradcam(model, x[i], head)
        assert c == 1 and 0 <= p <= 1 and cam.shape == (SIZE, SIZE)
        r, col = np.unravel_index(np.argmax(cam), cam.shape)
        hits += 1 <= r <= 6 and 12 <= col <= 17  # within a pixel of the deciding square
    assert hits >= 0.9 * len(ones)


def test_feature_maps_and_filters_of_each_conv_layer():
    model = _fit("softmax")
    x, _ = _images(1, np.random.default_rng(2))
    maps = explain.feature_maps(model, x[0])
    assert [m.shape for _, m in maps] == [(20, 20, 8), (10, 10, 8)]
    name, kernel = explain.first_filters(model)
    assert kernel.shape == (3, 3, 1, 8)


def test_explain_command_on_a_photo(runner, tmp_path):
    from conftest import ROOT, invoke

    photo = ROOT / "data" / "samples" / "mnist_9997_4_photo.jpg"
    res = invoke(runner, "explain", photo, "--model", "mnist", "--output", "out")
    assert res.exit_code == 0 and ": 4 " in res.output
    folder = tmp_path / "out" / "mnist_9997_4_photo"
    names = sorted(p.name for p in folder.iterdir())
    # one feature picture per conv layer, numbered in order (the bundled mnist-air: its frozen
    # whitening conv, then six 3x3 convs)
    feats = [n for n in names if n.startswith("features_")]
    assert [n[:12] for n in feats] == [f"features_{i:02d}_" for i in range(1, len(feats) + 1)]
    assert len(feats) >= 2 and all("conv2d" in n or "whiten" in n for n in feats), feats
    assert {"input.png", "gradcam.png"} <= set(names)
    assert (tmp_path / "out" / "filters.png").stat().st_size > 1000
    res = invoke(runner, "explain", photo, "--model", "mnist", "--output", "out")
    assert res.exit_code == 1 and "--overwrite" in res.output
    res = invoke(runner, "explain", photo, "--model", "mnist", "--output", "out2", "--class", "seven")
    assert res.exit_code == 1 and "unknown class 'seven'" in res.output
    res = invoke(runner, "explain", photo, "--model", "mnist", "--output", "out3", "--class", "7",
                 "--overwrite")
    assert res.exit_code == 0


def test_a_logit_scale_head_gives_its_scaled_logits_not_probabilities():
    """--logit-scale's head (Dense linear - Rescaling - Activation softmax): forward() returns the
    scaled logits, as it does a softmax Dense's pre-activation, so Grad-CAM does not fade."""
    from convzoo import heads, tricks, zoo

    model = _fit("softmax")
    scaled = tricks.apply_to_build(model, zoo.Recipe(logit_scale=0.5))
    scaled.set_weights(model.get_weights())
    x, _ = _images(8, np.random.default_rng(1))
    plain = explain.forward(model, x.astype(np.float32))[0].numpy()
    logits = explain.forward(scaled, x.astype(np.float32))[0].numpy()
    np.testing.assert_allclose(logits, 0.5 * plain, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(heads.probabilities(logits, "softmax", activated=False),
                               np.asarray(scaled(x)), atol=1e-5)
    cam, c, p = explain.gradcam(scaled, x[0], "softmax")
    assert cam.shape == (SIZE, SIZE) and cam.max() > 0 and 0 <= p <= 1
