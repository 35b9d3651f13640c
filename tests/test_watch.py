"""Watching training: progress lines off a terminal, the cost estimate, --dry-run, --time-budget,
TensorBoard logs (convzoo/progress.py, convzoo/watch.py)."""
import csv
import io
import re
import time

import pytest

from conftest import SAMPLE, invoke
from convzoo import progress, watch

LINE = re.compile(r"^epoch (\d)/2: ([\d,]+)/([\d,]+) images \(\d+%\), [\d,]+ img/s(, ETA \S+( \S+)?)?"
                  r"(, run ETA .+)?$")
ESTIMATE = re.compile(r"^estimate: about ([\d.]+) (s|min|h) \(2 epochs of ([\d,]+) images, \d+ steps of \d+", re.M)
RATES = re.compile(r"^estimate: .* of ([\d,]+) images, .* at ~([\d,]+) img/s; ([\d,]+) validation images "
                   r"at ~([\d,]+) img/s", re.M)


def progress_lines(stderr):
    return [line for line in stderr.splitlines() if LINE.match(line)]


@pytest.mark.parametrize("model", ["fashion-cnn", "fashion-cnn-scratch"])  # Keras fit, S1's tape loop
def test_progress_lines_off_a_terminal(runner, tmp_path, monkeypatch, model):
    monkeypatch.setattr(progress, "INTERVAL", 0.0)  # a line at every step instead of every 15 s
    # 600 images: 15 steps of 32, so that fit (8 steps per execution) reports within the epoch
    res = invoke(runner, "train", "fashion_mnist", "--model", model, "--epochs", "2", "--limit", "600",
                 "--data-dir", SAMPLE, "--output", "m.h5")
    assert res.exit_code == 0, res.output
    assert "\r" not in res.stderr  # not a terminal: plain lines, no bar redraws
    lines = progress_lines(res.stderr)
    assert lines, res.stderr
    n_train = int(LINE.match(lines[0]).group(3).replace(",", ""))
    assert n_train == 480  # 600 images less the 20% validation split
    for epoch in ("1", "2"):
        done = [int(LINE.match(x).group(2).replace(",", "")) for x in lines if LINE.match(x).group(1) == epoch]
        assert done and done == sorted(done) and done[-1] < n_train  # the summary line says "done"
    # the run's ETA appears once an epoch has completed, and not before
    assert all("run ETA" not in x for x in lines if x.startswith("epoch 1/2:"))
    assert all("run ETA" in x for x in lines if x.startswith("epoch 2/2:"))
    assert re.search(r"^epoch 1/2 - loss [\d.]+ .* - run ETA \S+", res.stderr, re.M)
    assert re.search(r"^epoch 2/2 - loss [\d.]+ .*s$", res.stderr, re.M)
    assert ESTIMATE.search(res.stderr) and "best val_accuracy" in res.stdout


def read_events(root):
    """{split: {tag: {step: value}}} of the event files under root/<split>/."""
    import tensorflow as tf

    out = {}
    for split in ("train", "validation"):
        tags = out.setdefault(split, {})
        files = list((root / split).glob("events.out.tfevents.*"))
        assert files, f"no event file in {root / split}"
        for path in files:
            for event in tf.compat.v1.train.summary_iterator(str(path)):
                for v in event.summary.value:
                    value = float(tf.make_ndarray(v.tensor)) if v.HasField("tensor") else v.simple_value
                    tags.setdefault(v.tag, {})[event.step] = value
    return out


@pytest.mark.parametrize("model", ["mlp", "fashion-cnn-scratch"])  # the pipeline, S1's NumPy batches
def test_tensorboard_logs(runner, tmp_path, model):
    """The tags Keras' TensorBoard callback wrote when fit ran these recipes, in the same folders."""
    pytest.importorskip("tensorboard", reason="tensorboard not installed (pip install tensorboard)")
    dataset = "fashion_mnist" if model == "fashion-cnn-scratch" else "mnist"
    every = ["--tensorboard-every", "1"] if model == "mlp" else []
    res = invoke(runner, "train", dataset, "--model", model, "--epochs", "2", "--limit", "300",
                 "--data-dir", SAMPLE, "--output", "m.h5", "--tensorboard", *every, "--quiet")
    assert res.exit_code == 0, res.output
    assert res.stderr == ""  # --quiet: nothing but errors on stderr
    scalars = read_events(tmp_path / "m_run" / "tensorboard")
    assert sorted(scalars["train"]["epoch_loss"]) == [0, 1]
    assert sorted(scalars["validation"]["epoch_accuracy"]) == [0, 1]
    history = list(csv.DictReader(open(tmp_path / "m_run" / "history.csv")))
    assert scalars["validation"]["epoch_accuracy"][1] == pytest.approx(float(history[1]["val_accuracy"]))
    assert set(scalars["train"]) >= {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"}
    assert set(scalars["validation"]) >= {"evaluation_loss_vs_iterations", "evaluation_accuracy_vs_iterations"}
    if every:
        assert len(scalars["train"].get("batch_loss", {})) >= 2  # per-step scalars as well
        assert sorted(scalars["train"]["batch_accuracy"]) == sorted(scalars["train"]["batch_loss"])
    else:
        assert "batch_loss" not in scalars["train"]


def test_estimate_within_a_factor_of_two(runner, tmp_path):
    """The timed steps' rates predict a steady epoch (the second: no tracing) within a factor of two.
    Not the run's total: on a fast machine a 2-epoch sample run is mostly one-time costs (tracing,
    the first batches of the data pipeline), which CI measured at 2.7 s against "about 1 s" twice."""
    res = invoke(runner, "train", "mnist", "--model", "mnist-cnn", "--epochs", "2", "--limit", "2500",
                 "--data-dir", SAMPLE, "--output", "m.h5")
    assert res.exit_code == 0, res.output
    m = RATES.search(res.stderr)
    assert m and ESTIMATE.search(res.stderr), res.stderr
    n_train, train_rate, n_val, val_rate = (float(g.replace(",", "")) for g in m.groups())
    per_epoch = n_train / train_rate + n_val / val_rate
    history = list(csv.DictReader(open(tmp_path / "m_run" / "history.csv")))
    measured = float(history[1]["seconds"])  # epoch 2: training and validation, nothing traced
    assert 0.5 <= per_epoch / measured <= 2, (per_epoch, measured, m.group(0))


def test_a_short_run_is_not_timed_longer_than_it_trains(runner, tmp_path):
    """The estimate times at most one epoch's steps (here 2 of 50 images, after one warm-up step)."""
    res = invoke(runner, "train", "fashion_mnist", "--model", "fashion-cnn-scratch", "--epochs", "1",
                 "--limit", "125", "--batch-size", "50", "--data-dir", SAMPLE, "--output", "m.h5")
    assert res.exit_code == 0, res.output
    m = re.search(r"^estimate: .*, (\d+) steps of 50.*timed over (\d+) steps", res.stderr, re.M)
    assert m and 1 <= int(m.group(2)) <= int(m.group(1)) == 2, res.stderr


def test_dry_run_prints_the_plan_and_writes_nothing(runner, tmp_path):
    before = sorted(p for p in tmp_path.rglob("*"))
    res = invoke(runner, "train", "mnist", "--data-dir", SAMPLE, "--limit", "400", "--dry-run")
    assert res.exit_code == 0, res.output
    assert sorted(p for p in tmp_path.rglob("*")) == before
    out = res.stdout
    assert out.startswith("model    mnist-vgg ")
    from convzoo import zoo

    for field in ("optimizer", "learning_rate", "batch_size", "epochs", "loop", "schedule", "augment",
                  "validation_split", "precision"):
        assert f"{field} " in out.splitlines()[1]
    assert "360 training / 40 validation images" in out  # mnist-vgg holds out 10%
    assert "runs/mnist-vgg.h5" in out
    assert re.search(r"^estimate: about [\d.]+ (s|min|h) \(15 epochs of 360 images", out, re.M)
    assert zoo.get_spec("mnist-vgg").recipe.epochs == 15


def test_time_budget_stops_after_the_epoch_that_fits_and_resume_continues(runner, tmp_path, monkeypatch):
    real = watch.Watch.typical_epoch
    monkeypatch.setattr(watch.Watch, "typical_epoch", lambda self: 1e6 if self.walls else None)
    args = ["train", "mnist", "--model", "mlp", "--epochs", "3", "--limit", "300", "--data-dir", SAMPLE,
            "--output", "m.h5"]
    res = invoke(runner, *args, "--time-budget", "30")
    assert res.exit_code == 0, res.output
    assert "stopping after epoch 1 of 3" in res.stderr
    assert "stopped by --time-budget after epoch 1 of 3" in res.stdout
    assert len(list(csv.DictReader(open(tmp_path / "m_run" / "history.csv")))) == 1
    monkeypatch.setattr(watch.Watch, "typical_epoch", real)
    res = invoke(runner, *args, "--resume")
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(tmp_path / "m_run" / "history.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]


def test_time_budget_too_small_for_one_epoch_is_refused_before_writing(runner, tmp_path):
    res = invoke(runner, "train", "mnist", "--model", "mnist-cnn", "--epochs", "2", "--limit", "300",
                 "--data-dir", SAMPLE, "--output", "m.h5", "--time-budget", "0.0001")
    assert res.exit_code == 1 and "one epoch takes about" in res.stderr
    assert not (tmp_path / "m.h5").exists() and not (tmp_path / "m_run").exists()


def test_budget_decision():
    w = watch.Watch(watch.Options(time_budget=1), n_train=100, batch_size=10, epochs=5,
                    started=time.monotonic() - 45)
    w.begin_epoch(0)
    w.mark = time.monotonic() - 20  # the epoch took 20 s: 45 s used of 60, the next would not fit
    assert w.end_epoch(0, {}) == "" and w.stop and "stopping after epoch 1 of 5" in w.stop_message
    w = watch.Watch(watch.Options(time_budget=10), n_train=100, batch_size=10, epochs=5)
    w.begin_epoch(0)
    w.mark = time.monotonic() - 20
    assert w.end_epoch(0, {}).startswith(" - run ETA 1m 2") and not w.stop  # 4 epochs of 20 s left


def test_progress_bar_and_lines():
    out = io.StringIO()
    bar = progress.Progress(1000, label="checking", unit="images", stream=out, tty=True)
    bar.update(500)
    bar.last = 0  # redraw now
    bar.update(600)
    assert "\rchecking [==================>...........] 600/1,000 - " in out.getvalue()
    bar.close()
    assert out.getvalue().endswith("\r")
    out = io.StringIO()
    bar = progress.Progress(1000, label="checking", unit="files", stream=out, tty=False)
    bar.last = -1e9
    bar.update(250)
    assert re.fullmatch(r"checking: 250/1,000 files \(25%\), [\d,]+ files/s, ETA \S+( \S+)?\n", out.getvalue())
    out = io.StringIO()
    assert list(progress.track(range(3), label="x", stream=out, quiet=True)) == [0, 1, 2]
    assert out.getvalue() == ""
    assert (progress.duration(59), progress.duration(605), progress.duration(7500)) == ("59s", "10m 05s", "2h 05m")
    assert (progress.about(40), progress.about(24 * 60), progress.about(9000)) == \
           ("about 40 s", "about 24 min", "about 2.5 h")


def test_estimate_adds_the_one_time_cost_to_every_epoch_left():
    rates = watch.Rates(train=100.0, val=400.0, overhead=3.0, steps=5)
    assert rates.seconds(2, 1000, 400) == pytest.approx(3 + 2 * (10 + 1))
    line = watch.estimate_line(rates, 5, 1000, 400, 50, resumed=3)  # 2 epochs left of 5
    assert line.startswith("estimate: about 25 s (2 more epochs of 1,000 images, 20 steps of 50, at ~100 img/s; ")
