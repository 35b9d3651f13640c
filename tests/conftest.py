import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
SAMPLE = ROOT / "data"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """User state goes to a temp dir: no test reads or writes ~/.convzoo."""
    monkeypatch.setenv("CONVZOO_DATA", str(tmp_path / "convzoo-data"))
    monkeypatch.setenv("CONVZOO_RAISE_BUGS", "1")  # the CLI's last-resort handler re-raises: bugs fail tests
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # LiteRT twins of user checkpoints
    monkeypatch.delenv("CONVZOO_MODEL", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def shared_datasets():
    if not (SHARED / "mnist").is_dir():
        pytest.skip("../shared/datasets not found")
    return SHARED


@pytest.fixture
def sample_data():
    """The small real MNIST / Fashion-MNIST sample the repo ships in data/."""
    return SAMPLE


@pytest.fixture
def runner():
    from click.testing import CliRunner

    return CliRunner()


def invoke(runner, *args):
    from convzoo.cli import cli

    return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)


def tiny_meta(dataset="mnist"):
    from convzoo import data as catalog

    info = catalog.get(dataset)
    return {"format": 1, "model": "mlp", "dataset": dataset, "classes": list(info.classes),
            "input_shape": list(info.input_shape), "preprocess": info.preprocess, "head": "softmax"}


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def interrupt_after_epoch(monkeypatch, stop_epoch):
    """Make training raise Ctrl-C right after epoch `stop_epoch` (0-based) is saved; returns the
    real Run.end_epoch, to put back."""
    from convzoo import train

    real_end = train.Run.end_epoch

    def end_then_interrupt(self, epoch, logs, seconds):
        real_end(self, epoch, logs, seconds)
        if epoch == stop_epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(train.Run, "end_epoch", end_then_interrupt)
    return real_end
