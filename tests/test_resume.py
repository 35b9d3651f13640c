"""Crash-safe training: Ctrl-C, SIGKILL, --resume, NaN, --save-best."""
import csv
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import SAMPLE, interrupt_after_epoch, invoke


def epochs_in(path):
    return [int(r["epoch"]) for r in csv.DictReader(open(path))]


def test_ctrl_c_then_resume_gives_a_gapless_history(runner, tmp_path, monkeypatch):
    from convzoo import train

    real_end = interrupt_after_epoch(monkeypatch, 1)
    res = invoke(runner, "train", "mnist", "--model", "mlp", "--epochs", "4", "--limit", "600",
                 "--data-dir", SAMPLE, "--output", "m.h5")
    assert res.exit_code == 130
    assert "interrupted" in res.output and "holds epoch 2" in res.output and "--resume" in res.output
    assert epochs_in(tmp_path / "m_run" / "history.csv") == [1, 2]
    monkeypatch.setattr(train.Run, "end_epoch", real_end)

    res = invoke(runner, "train", "mnist", "--model", "mlp", "--epochs", "1", "--resume",
                 "--data-dir", SAMPLE, "--output", "m.h5")
    assert res.exit_code == 1 and "has already run 2 epochs; give --epochs 2 or more" in res.output
    res = invoke(runner, "train", "mnist", "--model", "mlp", "--seed", "3", "--resume",
                 "--data-dir", SAMPLE, "--output", "m.h5")
    assert res.exit_code == 1 and "stored run, which has seed 0, not 3" in res.output
    res = invoke(runner, "train", "mnist", "--model", "mlp", "--resume", "--data-dir", SAMPLE, "--output", "m.h5")
    assert res.exit_code == 0, res.output
    assert "resuming after epoch 2 of 4" in res.output
    assert epochs_in(tmp_path / "m_run" / "history.csv") == [1, 2, 3, 4]
    from convzoo import checkpoint

    assert checkpoint.read_meta(tmp_path / "m.h5")["history"]["epoch"] == [1, 2, 3, 4]


def test_resume_without_a_run_says_so(runner):
    res = invoke(runner, "train", "mnist", "--resume", "--output", "none.h5")
    assert res.exit_code == 1 and "nothing to resume" in res.output


def test_nan_loss_stops_with_a_clear_message_and_no_bad_file(runner, tmp_path):
    res = invoke(runner, "train", "mnist", "--model", "mnist-cnn", "--epochs", "3", "--limit", "300",
                 "--optimizer", "sgd", "--learning-rate", "1e12", "--data-dir", SAMPLE, "--output", "m.h5")
    assert res.exit_code == 1 and "training diverged" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "m.h5").exists()


def test_nan_after_good_epochs_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from convzoo import checkpoint, train

    p = train.plan("mnist", "mlp", output=str(tmp_path / "m.h5"), data_dir=str(SAMPLE), limit=600, epochs=3)
    real_end = train.Run.end_epoch

    def poison(self, epoch, logs, seconds):
        return real_end(self, epoch, {**logs, "loss": float("nan")} if epoch == 2 else logs, seconds)

    monkeypatch.setattr(train.Run, "end_epoch", poison)
    with pytest.raises(train.Diverged, match="loss is nan in epoch 3"):
        train.train(p, log=lambda m: None)
    assert checkpoint.read_meta(tmp_path / "m.h5")["epochs_run"] == 2


def test_save_best_keeps_the_best_epoch(runner, tmp_path):
    from convzoo import checkpoint

    res = invoke(runner, "train", "mnist", "--model", "mlp", "--epochs", "3", "--limit", "600",
                 "--save-best", "--data-dir", SAMPLE, "--output", "m.h5")
    assert res.exit_code == 0, res.output
    meta = checkpoint.read_meta(tmp_path / "m.h5")
    assert meta["weights_from"] == "best epoch" and meta["epochs_run"] == 3
    assert meta["best"]["val_accuracy"] == max(meta["history"]["val_accuracy"])


@pytest.mark.shared("mnist")
def test_sigkill_after_an_epoch_then_resume(shared_datasets, tmp_path):
    """A real `convzoo train` killed with SIGKILL mid-run leaves a loadable checkpoint or none."""
    from convzoo import checkpoint

    cmd = [sys.executable, "-m", "convzoo", "train", "mnist", "--model", "mnist-cnn", "--limit", "3000",
           "--epochs", "4", "--data-dir", str(shared_datasets), "--output", str(tmp_path / "k.h5")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = tmp_path / "k_run" / "history.csv"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if history.exists() and len(epochs_in(history)) >= 1:
            break
        time.sleep(0.05)
    time.sleep(0.3)  # land somewhere inside the second epoch (or its save)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]  # temp files never replace good ones
    if (tmp_path / "k.h5").exists():
        checkpoint.load(tmp_path / "k.h5")
    res = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert epochs_in(history) == [1, 2, 3, 4]
    model, meta = checkpoint.load(tmp_path / "k.h5")
    assert meta["epochs_run"] == 4


def test_full_disk_and_unwritable_folder_are_found_before_training(runner, monkeypatch):
    import collections

    usage = collections.namedtuple("usage", "total used free")
    with monkeypatch.context() as m:
        m.setattr("convzoo.fileio.shutil.disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
        res = invoke(runner, "train", "mnist", "--data-dir", SAMPLE, "--output", "m.h5")
    assert res.exit_code == 1 and "not enough disk space" in res.output and "epoch" not in res.output
    with monkeypatch.context() as m:
        m.setattr("convzoo.fileio._writable", lambda folder: False)  # root may write anywhere
        res = invoke(runner, "train", "mnist", "--data-dir", SAMPLE, "--output", "out/m.h5")
    assert res.exit_code == 1 and "permission denied" in res.output and "epoch" not in res.output
    open("afile", "w").close()
    res = invoke(runner, "train", "mnist", "--data-dir", SAMPLE, "--output", "afile/m.h5")
    assert res.exit_code == 1 and "afile is a file, not a folder" in res.output
