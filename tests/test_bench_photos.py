"""bench/photos.py: predict's accuracy on photo-like renderings, a bench tool (it was data/photos.py)."""
import json
import os
import subprocess
import sys

from conftest import ROOT, SAMPLE


def test_photo_benchmark_runs_on_the_sample(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "photos.py"), "--model", str(ROOT / "models" / "mnist.h5"),
                          "--data-dir", str(SAMPLE), "--count", "20"],
                         capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout)
    assert r["dataset"] == "mnist" and r["n"] == 20
    assert 0 <= r["photo_accuracy"] <= 1 and r["test_png_accuracy"] > 0.5


def test_renderings_are_seeded_jpegs(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import numpy as np

        import photos
    finally:
        sys.path.remove(str(ROOT / "bench"))
    x = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
    a = photos.render_set(x, np.array([0, 1, 2]), list("abc"), tmp_path / "a", 3, seed=5)
    b = photos.render_set(x, np.array([0, 1, 2]), list("abc"), tmp_path / "b", 3, seed=5)
    assert [os.path.basename(p) for p, _ in a] == ["0000_a.jpg", "0001_b.jpg", "0002_c.jpg"]
    assert all(open(p, "rb").read() == open(q, "rb").read() for (p, _), (q, _) in zip(a, b))
