"""Run state: --early-stop keeps the best epoch's weights; --resume of a stopped run; extending a
finished run; --output auto."""
import csv
import os

import numpy as np
import pytest

from conftest import SAMPLE, invoke


def epochs_in(path):
    return [int(r["epoch"]) for r in csv.DictReader(open(path))]


def outputs(model, x):
    return np.asarray(model(x[:64].astype("float32"), training=False))


def record_outputs(monkeypatch, change, probe=None):
    """Wrap Run.end_epoch: `change(run, epoch, logs)` may alter the epoch's logs or the run before
    it is saved; the model's outputs on `probe` images are kept after every epoch."""
    from convzoo import runstate

    real_end, seen = runstate.Run.end_epoch, {}

    def end(self, epoch, logs, seconds):
        real_end(self, epoch, change(self, epoch, logs), seconds)
        if probe is not None:
            seen[epoch + 1] = outputs(self.model, probe)

    monkeypatch.setattr(runstate.Run, "end_epoch", end)
    return seen


@pytest.mark.parametrize("dataset, model", [("mnist", "mlp"), ("fashion_mnist", "fashion-cnn-scratch")])
def test_early_stop_after_the_learning_rate_drops_to_zero(tmp_path, monkeypatch, dataset, model):
    """From epoch 3 on the learning rate is 0, so validation loss cannot improve after epoch 2:
    the run stops at epoch 2 + N and the checkpoint gives epoch 2's outputs (fit and tape loops)."""
    from convzoo import checkpoint, train

    patience = 2

    def freeze_after_two(run, epoch, logs):
        if epoch == 1:
            run.optimizer.learning_rate.assign(0.0)
        return logs

    p = train.plan(dataset, model, output=str(tmp_path / "m.h5"), data_dir=str(SAMPLE), limit=300,
                   epochs=10, early_stop=patience)
    x_probe = train.load_data(p)[2]
    seen = record_outputs(monkeypatch, freeze_after_two, x_probe)
    logs = []
    meta = train.train(p, log=logs.append)
    assert meta["epochs_run"] == 2 + patience and meta["stopped_early"] == 2 + patience
    assert meta["weights_epoch"] == 2 and meta["monitor"] == "val_loss"
    assert epochs_in(tmp_path / "m_run" / "history.csv") == [1, 2, 3, 4]
    assert any("early stop: val_loss has not improved for 2 epochs; keeping epoch 2's weights" in m
               for m in logs)
    saved, _ = checkpoint.load(tmp_path / "m.h5")
    np.testing.assert_allclose(outputs(saved, x_probe), seen[2], rtol=1e-5, atol=1e-6)


def test_best_weights_kept_when_patience_never_fires(tmp_path, monkeypatch):
    """tf-keras #214: the run reaches its last epoch before patience runs out, and the checkpoint
    still holds the best epoch's weights, not the last's. The reported validation loss is raised
    after epoch 2 (training itself goes on), so epoch 2 is the best."""
    from convzoo import checkpoint, train

    def worse_after_two(run, epoch, logs):
        return {**logs, "val_loss": logs["val_loss"] + (epoch >= 2)}

    p = train.plan("mnist", "mlp", output=str(tmp_path / "m.h5"), data_dir=str(SAMPLE), limit=300,
                   epochs=4, early_stop=3)
    x_probe = train.load_data(p)[2]
    seen = record_outputs(monkeypatch, worse_after_two, x_probe)
    meta = train.train(p, log=lambda m: None)
    assert meta["epochs_run"] == 4 and meta["stopped_early"] is None and meta["weights_epoch"] == 2
    saved, _ = checkpoint.load(tmp_path / "m.h5")
    assert not np.allclose(seen[2], seen[4], atol=1e-4)  # training did move on
    np.testing.assert_allclose(outputs(saved, x_probe), seen[2], rtol=1e-5, atol=1e-6)


def test_resume_of_an_early_stopped_run_says_it_already_stopped(runner, tmp_path, monkeypatch):
    def never_better(run, epoch, logs):
        return {**logs, "val_loss": 1.0 + epoch}

    record_outputs(monkeypatch, never_better)
    args = ["train", "mnist", "--model", "mlp", "--limit", "300", "--epochs", "6", "--early-stop", "1",
            "--data-dir", SAMPLE, "--output", "m.h5"]
    res = invoke(runner, *args)
    assert res.exit_code == 0, res.output
    assert "stopped early at epoch 2 of 6; weights from epoch 1 (best val_loss)" in res.output
    res = invoke(runner, *args[:-2], "--output", "m.h5", "--resume")
    assert res.exit_code == 0, res.output
    assert "this run already stopped early at epoch 2" in res.output
    assert "--weights m.h5" in res.output or "--weights " + str(tmp_path / "m.h5") in res.output
    assert epochs_in(tmp_path / "m_run" / "history.csv") == [1, 2]


def test_monitor_needs_early_stop_or_save_best(runner):
    res = invoke(runner, "train", "mnist", "--monitor", "val_loss", "--data-dir", SAMPLE, "--output", "m.h5")
    assert res.exit_code == 1 and "--monitor chooses what --early-stop and --save-best follow" in res.output


def test_resume_with_more_epochs_extends_a_finished_run(runner, tmp_path):
    from convzoo import checkpoint

    args = ["train", "mnist", "--model", "mlp", "--limit", "300", "--data-dir", SAMPLE, "--output", "m.h5"]
    assert invoke(runner, *args, "--epochs", "2").exit_code == 0
    before = checkpoint.read_meta(tmp_path / "m.h5")["history"]
    res = invoke(runner, *args, "--epochs", "4", "--resume")
    assert res.exit_code == 0, res.output
    assert "resuming after epoch 2 of 4" in res.output
    assert epochs_in(tmp_path / "m_run" / "history.csv") == [1, 2, 3, 4]
    meta = checkpoint.read_meta(tmp_path / "m.h5")
    assert meta["epochs_run"] == 4 and meta["recipe"]["epochs"] == 4
    assert meta["history"]["val_loss"][:2] == before["val_loss"]  # the first two rows are kept


def test_an_extended_cosine_schedule_decays_anew_over_the_added_epochs():
    from convzoo import backend, train, zoo

    keras = backend.load()
    recipe = zoo.Recipe(learning_rate=0.1, epochs=4, schedule="cosine")
    opt = train.optimizer(keras, recipe, steps_per_epoch=10, decay_from=2)
    lrs = {}
    for step in (0, 20, 30, 40):
        opt.iterations.assign(step)
        lrs[step] = float(opt.learning_rate)
    assert lrs[0] == pytest.approx(0.1) and lrs[20] == pytest.approx(0.1)
    assert lrs[30] == pytest.approx(0.05, rel=1e-4) and lrs[40] == pytest.approx(0.0, abs=1e-7)


def test_output_auto_picks_a_fresh_name(runner, tmp_path):
    args = ["train", "mnist", "--model", "mlp", "--limit", "300", "--epochs", "1", "--data-dir", SAMPLE]
    assert invoke(runner, *args).exit_code == 0
    res = invoke(runner, *args)
    assert res.exit_code == 1 and "pass --overwrite to replace it, or --output auto to write" in res.output
    assert "runs/mlp-mnist-2.h5" in res.output
    res = invoke(runner, *args, "--output", "auto")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "runs" / "mlp-mnist-2.h5").is_file() and (tmp_path / "runs" / "mlp-mnist-2_run").is_dir()
    assert (tmp_path / "runs" / "mlp-mnist.h5").is_file()


def test_deterministic_runs_repeat_exactly_and_seeds_differ(tmp_path):
    """Three real runs (op determinism is per process): the second is the first's config.json
    `repeat` command, to another --output, and gives the same history and weights, bit for bit;
    another seed gives others. Augmentation and shuffling are on."""
    import json
    import shlex
    import subprocess
    import sys

    from convzoo import checkpoint

    def run(args, name):
        res = subprocess.run([sys.executable, "-m", "convzoo", *args, "--output", str(tmp_path / name)],
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr
        model, meta = checkpoint.load(tmp_path / name)
        assert meta["deterministic"] is True
        history = {k: v for k, v in meta["history"].items() if k != "seconds"}
        return history, model.get_weights()

    args = ["train", "fashion_mnist", "--model", "fashion-cnn", "--augment", "--limit", "300", "--epochs", "2",
            "--deterministic", "--data-dir", str(SAMPLE)]
    h1, w1 = run(args, "a.h5")
    cfg = json.loads((tmp_path / "a_run" / "config.json").read_text())
    repeat = shlex.split(cfg["repeat"])
    assert repeat[:2] == ["convzoo", "train"] and "--learning-rate" in repeat and "--seed" in repeat
    assert cfg["versions"]["tensorflow"] and cfg["versions"]["keras"] and cfg["cpu"]
    out = repeat.index("--output")
    h2, w2 = run(repeat[1:out] + repeat[out + 2:], "b.h5")
    h3, w3 = run(args + ["--seed", "1"], "c.h5")
    assert h1 == h2
    assert all(np.array_equal(a, b) for a, b in zip(w1, w2))
    assert h1 != h3 and not all(np.array_equal(a, c) for a, c in zip(w1, w3))


# ---------------------------------------------------------------- the lock beside --output
TINY = ["train", "mnist", "--model", "mlp", "--limit", "300", "--epochs", "1", "--data-dir", SAMPLE]


def no_data(monkeypatch):
    """Fail the test if training gets as far as loading the data."""
    from convzoo import train

    def refuse(p):
        raise AssertionError("the data was loaded")

    monkeypatch.setattr(train, "load_data", refuse)


def dead_pid():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, timeout=60)
    return int(proc.stdout)


def test_a_second_training_to_one_output_refuses_naming_the_first_pid(runner, tmp_path, monkeypatch):
    """A live process (this one's child) holds m.h5.lock: the second run refuses before its data is
    loaded, with or without --overwrite, and leaves the lock alone."""
    import platform
    import subprocess
    import sys

    first = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        lock = tmp_path / "m.h5.lock"
        lock.write_text(f"{first.pid} {platform.node()}\n")
        no_data(monkeypatch)
        for extra in ([], ["--overwrite"]):
            res = invoke(runner, *TINY, "--output", "m.h5", *extra)
            assert res.exit_code == 1, res.output
            assert f"m.h5 is being trained by PID {first.pid}; wait for that run to end" in res.output
            assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output
        assert lock.read_text() == f"{first.pid} {platform.node()}\n"
        assert not (tmp_path / "m.h5").exists() and not (tmp_path / "m_run").exists()
    finally:
        first.kill()
        first.wait()


def test_a_lock_held_on_another_host_is_refused(runner, tmp_path, monkeypatch):
    (tmp_path / "m.h5.lock").write_text("4242 other-host\n")
    no_data(monkeypatch)
    res = invoke(runner, *TINY, "--output", "m.h5")
    assert res.exit_code == 1 and "m.h5 is being trained by PID 4242 on other-host" in res.output


@pytest.mark.parametrize("content", ["garbage", "link"])
def test_a_lock_that_is_not_ours_is_refused_and_not_followed(runner, tmp_path, monkeypatch, content):
    lock = tmp_path / "m.h5.lock"
    if content == "link":
        lock.symlink_to(tmp_path / "elsewhere")  # dangling: O_EXCL | O_NOFOLLOW must not create it
    else:
        lock.write_text("not a pid\n")
    no_data(monkeypatch)
    res = invoke(runner, *TINY, "--output", "m.h5")
    assert res.exit_code == 1 and "m.h5.lock is not a convzoo lock" in res.output
    assert not (tmp_path / "elsewhere").exists()


def test_a_dead_process_lock_is_taken_over_and_the_lock_removed_at_the_end(runner, tmp_path, monkeypatch):
    import platform

    from convzoo import runstate

    pid, seen = dead_pid(), []
    lock = tmp_path / "m.h5.lock"
    lock.write_text(f"{pid} {platform.node()}\n")
    record_outputs(monkeypatch, lambda run, epoch, logs: seen.append(lock.read_text()) or logs)
    res = invoke(runner, *TINY, "--output", "m.h5")
    assert res.exit_code == 0, res.output
    assert f"took over {lock}: PID {pid}, which held it, is no longer running" in res.output
    assert seen == [f"{runstate.os.getpid()} {platform.node()}\n"]  # held during the run
    assert not lock.exists() and (tmp_path / "m.h5").is_file()


def test_the_lock_is_removed_on_errors_and_ctrl_c(runner, tmp_path, monkeypatch):
    from conftest import interrupt_after_epoch

    res = invoke(runner, "train", "mnist", "--model", "mnist-cnn", "--epochs", "2", "--limit", "300",
                 "--optimizer", "sgd", "--learning-rate", "1e12", "--data-dir", SAMPLE, "--output", "d.h5")
    assert res.exit_code == 1 and "training diverged" in res.output
    assert not (tmp_path / "d.h5.lock").exists()
    interrupt_after_epoch(monkeypatch, 0)
    res = invoke(runner, *TINY, "--epochs", "3", "--output", "c.h5")
    assert res.exit_code == 130 and "holds epoch 1" in res.output
    assert not (tmp_path / "c.h5.lock").exists()


def test_sigterm_removes_the_lock(tmp_path):
    """A real `convzoo train` stopped by SIGTERM after its first epoch: exit 130, no lock left."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cmd = [sys.executable, "-m", "convzoo", "train", "mnist", "--model", "mlp", "--limit", "300",
           "--epochs", "200", "--data-dir", str(SAMPLE), "--output", str(tmp_path / "t.h5")]
    from conftest import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's convzoo, whatever is installed
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    history, deadline = tmp_path / "t_run" / "history.csv", time.time() + 300
    while time.time() < deadline and proc.poll() is None and not history.exists():
        time.sleep(0.05)
    assert (tmp_path / "t.h5.lock").exists()
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, err
    assert not (tmp_path / "t.h5.lock").exists() and not os.path.lexists(tmp_path / "t.h5.lock")


# ---------------------------------------------------------------- links are not followed when writing
def other_run(tmp_path):
    """Another run's folder, whose files must survive."""
    other = tmp_path / "other_run"
    other.mkdir()
    for name in ("config.json", "history.csv", "curves.png", "state.npz"):
        (other / name).write_text("theirs")
    return other


@pytest.mark.parametrize("extra", [[], ["--overwrite"]])
@pytest.mark.parametrize("target", ["folder", "dangling"])
def test_a_linked_run_folder_is_refused_before_the_data_is_loaded(runner, tmp_path, monkeypatch, extra, target):
    other = other_run(tmp_path)
    (tmp_path / "m_run").symlink_to(other if target == "folder" else tmp_path / "gone")
    no_data(monkeypatch)
    res = invoke(runner, *TINY, "--output", "m.h5", *extra)
    assert res.exit_code == 1, res.output
    assert "m_run is a symbolic link; convzoo does not write through links" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert all((other / n).read_text() == "theirs" for n in os.listdir(other))
    assert not (tmp_path / "gone").exists() and not (tmp_path / "m.h5.lock").exists()


@pytest.mark.parametrize("extra", [[], ["--overwrite"]])
@pytest.mark.parametrize("target", ["file", "dangling"])
def test_a_linked_output_is_refused_before_the_data_is_loaded(runner, tmp_path, monkeypatch, extra, target):
    theirs = tmp_path / "theirs.h5"
    if target == "file":
        theirs.write_text("theirs")
    (tmp_path / "m.h5").symlink_to(theirs)
    no_data(monkeypatch)
    res = invoke(runner, *TINY, "--output", "m.h5", *extra)
    assert res.exit_code == 1 and "--output " in res.output and "m.h5 is a symbolic link" in res.output
    assert (theirs.read_text() == "theirs") if target == "file" else not theirs.exists()


def test_resume_into_a_linked_run_folder_is_refused(runner, tmp_path):
    other = other_run(tmp_path)
    (tmp_path / "m_run").symlink_to(other)
    res = invoke(runner, *TINY, "--output", "m.h5", "--resume")
    assert res.exit_code == 1 and "m_run is a symbolic link" in res.output


def test_a_run_folder_swapped_for_a_link_during_the_run_is_not_followed(runner, tmp_path, monkeypatch):
    """After epoch 1 the run folder is moved away and a link to another run put in its place: the
    next write refuses, with one line, and the other run's files are untouched."""
    other = other_run(tmp_path)

    def swap(run, epoch, logs):
        if epoch == 1:
            os.rename(tmp_path / "m_run", tmp_path / "moved_run")
            (tmp_path / "m_run").symlink_to(other)
        return logs

    record_outputs(monkeypatch, swap)
    res = invoke(runner, *TINY, "--epochs", "3", "--output", "m.h5")
    assert res.exit_code == 1, res.output
    assert "run folder " in res.output and "m_run is a symbolic link" in res.output
    assert all((other / n).read_text() == "theirs" for n in os.listdir(other))
    assert sorted(os.listdir(other)) == ["config.json", "curves.png", "history.csv", "state.npz"]


def test_links_inside_the_run_folder_are_replaced_not_followed(runner, tmp_path):
    """history.csv, config.json, curves.png and state.npz planted as links to files elsewhere: the
    run writes its own files in their place and the files elsewhere keep their bytes."""
    other = other_run(tmp_path)
    (tmp_path / "m_run").mkdir()
    for name in os.listdir(other):
        (tmp_path / "m_run" / name).symlink_to(other / name)
    res = invoke(runner, *TINY, "--output", "m.h5", "--overwrite")
    assert res.exit_code == 0, res.output
    assert all((other / n).read_text() == "theirs" for n in os.listdir(other))
    assert not any((tmp_path / "m_run" / n).is_symlink() for n in os.listdir(other))


def test_a_temp_file_swapped_for_a_link_is_not_written_through(tmp_path, monkeypatch):
    from convzoo import fileio
    from convzoo.errors import ConvzooError

    theirs = tmp_path / "theirs.txt"
    theirs.write_text("theirs")
    real_mkstemp = fileio.tempfile.mkstemp

    def mkstemp_then_swap(**kwargs):
        fd, tmp = real_mkstemp(**kwargs)
        os.remove(tmp)
        os.symlink(theirs, tmp)
        return fd, tmp

    monkeypatch.setattr(fileio.tempfile, "mkstemp", mkstemp_then_swap)
    with pytest.raises(ConvzooError, match="the temp file became a link"):
        fileio.write_text(tmp_path / "history.csv", "mine")
    with pytest.raises(ConvzooError, match="the temp file became a link"):
        with fileio.atomic_path(tmp_path / "m.h5") as tmp:
            pass  # a writer that opens by name (Keras, h5py) would have followed it; it is not installed
    assert theirs.read_text() == "theirs" and not (tmp_path / "history.csv").exists()
    assert not os.path.lexists(tmp_path / "m.h5") and not [f for f in os.listdir(tmp_path) if ".tmp" in f]
