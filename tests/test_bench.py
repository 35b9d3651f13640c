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


def test_time_to_accuracy_reads_a_run_folder(tmp_path):
    run = tmp_path / "air_run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "cifar10-air", "dataset": "cifar10"}))
    (run / "history.csv").write_text("epoch,loss,accuracy,val_loss,val_accuracy,seconds\n"
                                     "1,1,0.5,1,0.80,60\n2,1,0.9,1,0.91,120\n3,1,0.9,1,0.93,60\n")
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "time_to_accuracy.py"), str(run), "--json",
                          "--no-peak"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout)["runs"][0]
    assert r["minutes_to_val"] == {"85%": 3.0, "90%": 3.0, "94%": None} and r["final_val_accuracy"] == 0.93
    assert r["minutes"] == 4.0 and r["epochs"] == 3
    table = subprocess.run([sys.executable, str(ROOT / "bench" / "time_to_accuracy.py"), str(run), "--no-peak"],
                           capture_output=True, text=True, timeout=300).stdout
    assert "94%: not reached |" in table  # no planned epochs left to run: not "not yet"
