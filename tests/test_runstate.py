"""Run state: --early-stop keeps the best epoch's weights; --resume of a stopped run; extending a
finished run; --output auto."""
import csv

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
    opt = train._optimizer(keras, recipe, steps_per_epoch=10, decay_from=2)
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
