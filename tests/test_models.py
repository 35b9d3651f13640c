"""The bundled release models in models/: they load, name the right class for the project-made
samples in data/samples, and keep their recorded accuracy on real test images."""
import json
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLE, invoke

BUNDLED = sorted((ROOT / "models").glob("*.h5"))
SAMPLES = SAMPLE / "samples"


def _safe(label):
    return label.replace("/", "-").replace(" ", "_")


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_bundled_model_reads_the_shipped_samples(runner, path):
    from convzoo import checkpoint

    meta = checkpoint.read_meta(path)
    files = sorted(SAMPLES.glob(f"{meta['dataset']}_*"))
    if not files:
        pytest.skip(f"no shipped samples for {meta['dataset']}")
    res = invoke(runner, "predict", *files, "--model", meta["dataset"], "--json", "--top-k", "1")
    assert res.exit_code == 0
    right = {"plain": [], "photo": []}
    for r in json.loads(res.output):
        stem = Path(r["file"]).stem
        expected = stem.removesuffix("_photo").split("_", 2 if meta["dataset"] == "mnist" else 3)[-1]
        right["photo" if stem.endswith("_photo") else "plain"].append(
            _safe(r["predictions"][0]["label"]) == expected)
    # the test images as they are: all right; their photo-like renderings: 3 of 4 at least
    # (measured on 1,000 renderings: bench/photos.py)
    assert all(right["plain"]) and sum(right["photo"]) >= len(right["photo"]) - 1, right


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_bundled_model_metadata_and_size(path):
    from convzoo import checkpoint

    meta = checkpoint.read_meta(path)
    assert path.stem == meta["dataset"] and path.stat().st_size <= 15 * 2**20
    assert meta["test"]["n"] > 0 and meta["classes"] and meta["preprocess"]


@pytest.mark.parametrize("path", [p for p in BUNDLED if p.stem in ("mnist", "fashion_mnist")],
                         ids=lambda p: p.name)
def test_bundled_model_on_real_test_images(runner, path, shared_datasets):
    from convzoo import checkpoint

    recorded = checkpoint.read_meta(path)["test"]["accuracy"]
    out = json.loads(invoke(runner, "evaluate", path, "--data-dir", shared_datasets, "--json",
                            "--limit", "2000").output)
    assert out["n"] == 2000 and out["accuracy"] >= recorded - 0.01
