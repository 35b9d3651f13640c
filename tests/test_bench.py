import json
import subprocess
import sys

from conftest import ROOT


def test_benchmark_runs_on_a_tiny_setting():
    """Only that it runs and reports every figure; timings are the benchmark's, not the tests'."""
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--tiny", "--json"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads(out.stdout)
    for key in ("matmul_peak_gflops", "s3_train_convzoo_images_per_s", "s3_train_plain_keras_images_per_s",
                "s3_train_convzoo_vs_plain_keras", "s8_train_convzoo_images_per_s",
                "s8_train_plain_keras_images_per_s", "cats_decode_resize_images_per_s",
                "cats_augment_images_per_s", "cats_s9_train_step_images_per_s", "help_seconds",
                "predict_one_cold_seconds", "predict_folder_images_per_s"):
        assert rows[key] > 0, key
    assert "s3_train_pytorch_images_per_s" in rows  # None when torch is not installed
