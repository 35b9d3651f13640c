"""convzoo compare and `models --results`: tables and the overlaid curves, from metadata alone."""
import json
import subprocess
import sys

import h5py
from PIL import Image

from conftest import invoke, tiny_meta


def fake_checkpoint(path, model="mlp", val=(0.5, 0.9, 0.8), test=None, seconds=75.0):
    """An .h5 holding only convzoo metadata: what compare and the results table read."""
    n = len(val)
    meta = {**tiny_meta(), "model": model, "epochs_run": n, "train_seconds": seconds, "params": 79_510,
            "history": {"epoch": list(range(1, n + 1)), "loss": [1.0] * n, "accuracy": [0.5] * n,
                        "val_loss": [1 - v for v in val], "val_accuracy": list(val), "seconds": [1] * n}}
    if test:
        meta["test"] = test
    with h5py.File(path, "w") as f:
        f.attrs["convzoo"] = json.dumps(meta)
    return path


def test_compare_table_json_and_picture(runner, tmp_path):
    a = fake_checkpoint(tmp_path / "a.h5", val=(0.5, 0.9, 0.8))
    b = fake_checkpoint(tmp_path / "b.h5", model="mnist-cnn", val=(0.6, 0.7, 0.95, 0.94),
                        test={"accuracy": 0.9412, "n": 500, "dataset": "mnist"}, seconds=4000)
    res = invoke(runner, "compare", a, b, "--output", "cmp.png")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split()[:5] == ["run", "model", "dataset", "epochs", "best"]
    assert lines[1].split() == ["a.h5", "mlp", "mnist", "3", "0.9000", "2", "not", "recorded", "75", "s",
                                "79,510"]
    assert lines[2].split()[:8] == ["b.h5", "mnist-cnn", "mnist", "4", "0.9500", "3", "0.9412", "(n=500)"]
    assert "66.7 min" in lines[2]
    with Image.open(tmp_path / "cmp.png") as im:
        assert im.width > 800 and im.height > 400
    rows = json.loads(invoke(runner, "compare", tmp_path, "--json").stdout)  # a folder: every checkpoint
    assert [(r["file"][-4:], r["best_epoch"], r["best_val_accuracy"], r["test_accuracy"]) for r in rows] == \
        [("a.h5", 2, 0.9, None), ("b.h5", 3, 0.95, 0.9412)]
    again = invoke(runner, "compare", a, "--output", "cmp.png")
    assert again.exit_code == 1 and "already exists; pass --overwrite" in again.output


def test_compare_bad_input_is_one_line(runner, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    for args, message in [(["nothere.h5"], "no such checkpoint file"), ([tmp_path / "empty"], "no .h5 or .keras"),
                          ([tmp_path / "junk.h5"], "not a Keras checkpoint")]:
        res = invoke(runner, "compare", *args)
        assert res.exit_code == 1 and message in res.output and res.output.strip().count("\n") == 0


def test_compare_and_results_do_not_import_tensorflow(tmp_path):
    fake_checkpoint(tmp_path / "a.h5")
    code = ("import sys; from convzoo.cli import cli\n"
            "for args in (['compare', %r, '--output', %r], ['models', '--results', %r]):\n"
            "    try: cli(args, standalone_mode=False)\n"
            "    except SystemExit: pass\n"
            "print('TF', 'tensorflow' in sys.modules, 'keras' in sys.modules)") % (
        str(tmp_path / "a.h5"), str(tmp_path / "c.png"), str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("TF False False") and (tmp_path / "c.png").exists()


def test_results_table_shows_best_validation_for_runs_never_evaluated(runner, tmp_path):
    fake_checkpoint(tmp_path / "a.h5", val=(0.5, 0.9, 0.8))
    fake_checkpoint(tmp_path / "b.h5", test={"accuracy": 0.9412, "n": 500, "dataset": "mnist"})
    text = invoke(runner, "models", "--results", tmp_path).output
    a, b = [line for line in text.splitlines() if line.startswith("| a.h5") or line.startswith("| b.h5")]
    assert "not evaluated; best validation 90.00% at epoch 2" in a
    assert "94.12% (n=500)" in b
    rows = json.loads(invoke(runner, "models", "--results", tmp_path, "--json").stdout)
    assert rows[0]["best_val_accuracy"] == 0.9 and rows[0]["best_epoch"] == 2


def test_results_reproduce_column_has_no_machine_paths():
    """A run that stored its command (every option) shows it with DATA, the file's own name and
    the --weights file's name, and after the chain of the checkpoint it started from."""
    from convzoo import results

    origin = {"file": "base.h5", "model": "mlp", "dataset": "mnist", "seed": 0, "recipe": {}}
    meta = {"model": "mlp", "dataset": "mnist", "started_from": origin,
            "repeat": "convzoo train mnist --model mlp --epochs 3 --seed 0 --weights /home/me/runs/base.h5 "
                      "--data-dir '/home/me/my data' --output /home/me/runs/m.h5 --overwrite"}
    assert results.command(meta, "m.h5") == (
        "convzoo train mnist --model mlp --seed 0 --data-dir DATA --output base.h5 && "
        "convzoo train mnist --model mlp --epochs 3 --seed 0 --weights base.h5 --data-dir DATA --output m.h5")
