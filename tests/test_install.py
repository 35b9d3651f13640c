"""A regular (non-editable) install finds the bundled models: build a wheel, install it in a fresh
venv, predict with `--model mnist` from a folder that is not the checkout."""
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT, SAMPLE

SHIPPED = ("pyproject.toml", "README.md", "convzoo")


def _copy_source(dest):
    """The files a wheel is built from (a copy, so the build leaves nothing in the checkout)."""
    for name in SHIPPED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dest / name)
    (dest / "models").mkdir()
    for f in (ROOT / "models").iterdir():
        if f.suffix in (".h5", ".tflite") or f.name == "README.md":
            shutil.copy(f, dest / "models" / f.name)


def _clean_env():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CONVZOO_MODELS", "CONVZOO_MODEL")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


@pytest.mark.slow
def test_wheel_install_predicts_with_a_bundled_model(tmp_path):
    src, dist, venv = tmp_path / "src", tmp_path / "dist", tmp_path / "venv"
    src.mkdir()
    _copy_source(src)
    env = _clean_env()
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "--no-index", "-q", "-w", str(dist), str(src)],
                           capture_output=True, text=True, env=env, timeout=600)
    if build.returncode and "setuptools" in build.stderr and "No module" in build.stderr:
        pytest.skip("setuptools is not installed (needed to build the wheel offline)")
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(dist.glob("convzoo-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        assert "convzoo/models/mnist.h5" in z.namelist()
    # --without-pip: the system pip (seen through --system-site-packages) installs into the venv
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
                   check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, env=env, timeout=300)
    where = subprocess.run([str(py), "-c", "import convzoo.bundled as b; print(b.models_dir())"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, check=True, timeout=60)
    assert where.stdout.strip().startswith(str(venv)), where.stdout
    photo = SAMPLE / "samples" / "mnist_9999_6_photo.jpg"
    res = subprocess.run([str(venv / "bin" / "convzoo"), "predict", str(photo), "--model", "mnist",
                          "--top-k", "1"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    label, prob = res.stdout.strip().rsplit(": ", 1)[1].split()
    assert label == "6" and 0.5 < float(prob) <= 1, res.stdout
