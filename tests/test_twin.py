"""LiteRT twins: the bundled ones equal their .h5 on the golden images, a user checkpoint's twin is
made once into the cache (never beside the file), and a twin runs without TensorFlow."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, SAMPLE
from test_models import _real_test_images

BUNDLED = sorted((ROOT / "models").glob("*.h5"))
PHOTO = SAMPLE / "samples" / "mnist_9999_6_photo.jpg"
pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed")


def _golden(dataset, shared, tmp_path):
    """The shipped samples of the dataset, else real test images (4 per class) when the shared
    datasets are there; any image is a fair input for comparing two runs of one model."""
    files = sorted((SAMPLE / "samples").glob(f"{dataset}_*"))
    if not files and shared.is_dir():
        files = [f for f, _ in _real_test_images(dataset, shared, tmp_path, per_class=4)]
    return files or sorted((SAMPLE / "samples").glob("*"))


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_bundled_twin_equals_the_h5_on_golden_images(path, tmp_path):
    from conftest import SHARED
    from convzoo import predict, twin

    assert path.with_suffix(".tflite").is_file(), f"{path.stem}: run convzoo export {path.stem} --format tflite"
    runner = twin.find(str(path))
    assert runner is not None, "the shipped twin was made from another version of the .h5"
    files = _golden(runner.meta["dataset"], SHARED, tmp_path)
    fast = predict.predict(files, str(path), top_k=100)
    slow = predict.predict(files, str(path), top_k=100, use_twin=False)
    assert len(fast) == len(files) >= 8
    for a, b in zip(fast, slow):
        pa = {p["label"]: p["probability"] for p in a["predictions"]}
        pb = {p["label"]: p["probability"] for p in b["predictions"]}
        assert pa.keys() == pb.keys()
        assert max(abs(pa[k] - pb[k]) for k in pa) <= 1e-4, (a["file"], pa, pb)


def test_stale_bundled_twin_is_not_used(tmp_path, monkeypatch):
    from convzoo import checkpoint, twin

    models = tmp_path / "models"
    models.mkdir()
    for f in ("mnist.h5", "mnist.tflite"):
        shutil.copy(ROOT / "models" / f, models / f)
    monkeypatch.setenv("CONVZOO_MODELS", str(models))
    assert twin.find(str(models / "mnist.h5")) is not None
    checkpoint.update_meta(models / "mnist.h5", note="changed after the export")
    assert twin.find(str(models / "mnist.h5")) is None


def _predict_in_subprocess(model, tmp_path):
    code = ("import json, sys; from convzoo import predict; "
            f"r = predict.predict([{str(PHOTO)!r}], {str(model)!r}, log=lambda m: print(m, file=sys.stderr)); "
            "print(json.dumps([r, 'tensorflow' in sys.modules]))")
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    result, tf_loaded = json.loads(out.stdout)
    return result, tf_loaded, out.stderr


@pytest.mark.slow
def test_user_checkpoint_twin_is_cached_then_runs_without_tensorflow(tmp_path):
    user = tmp_path / "mine"
    user.mkdir()
    shutil.copy(ROOT / "models" / "mnist.h5", user / "my.h5")
    first, tf_first, said = _predict_in_subprocess(user / "my.h5", tmp_path)
    assert tf_first and "wrote the LiteRT twin" in said
    cached = list((tmp_path / "cache" / "convzoo" / "twins").glob("*.tflite"))
    assert len(cached) == 1 and os.listdir(user) == ["my.h5"]  # nothing beside the user's file
    second, tf_second, _ = _predict_in_subprocess(user / "my.h5", tmp_path)
    assert not tf_second
    assert first[0]["predictions"][0]["label"] == second[0]["predictions"][0]["label"] == "6"
    assert np.allclose([p["probability"] for p in first[0]["predictions"]],
                       [p["probability"] for p in second[0]["predictions"]], atol=1e-4)
