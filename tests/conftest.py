import os
import tarfile
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


def pytest_collection_modifyitems(items):
    """Real-data tests, in one place: a test that takes `shared_datasets` or has a `shared` mark
    needs ../shared/datasets, and each entry its marks name (`@pytest.mark.shared("mnist")`);
    it is skipped, with one reason, when one is missing."""
    for item in items:
        names = [n for mark in item.iter_markers("shared") for n in mark.args]
        if not names and "shared_datasets" not in item.fixturenames:
            continue
        missing = [n for n in names if not (SHARED / n).exists()] if SHARED.is_dir() else [""]
        if missing:
            where = "/".join(("../shared/datasets", missing[0])).rstrip("/")
            item.add_marker(pytest.mark.skip(reason=f"{where} not found"))


@pytest.fixture
def shared_datasets():
    """../shared/datasets (the collection hook has skipped the test if what it needs is missing)."""
    return SHARED


def cifar10_jpg(**per_split):
    """The first N images of each class of ../shared/datasets/cifar10-jpg.tar.gz, in archive order,
    per split: cifar10_jpg(train=30, test=10) -> {"train/airplane/0000.jpg": bytes, ...}."""
    taken, files = {}, {}
    with tarfile.open(SHARED / "cifar10-jpg.tar.gz") as tar:
        for m in tar:
            parts = m.name.split("/")
            if not m.isfile() or len(parts) != 3 or taken.get(tuple(parts[:2]), 0) >= per_split.get(parts[0], 0):
                continue
            taken[tuple(parts[:2])] = taken.get(tuple(parts[:2]), 0) + 1
            files[m.name] = tar.extractfile(m).read()
            if len(files) == 10 * sum(per_split.values()):  # ten classes
                break
    return files


def write_files(folder, files):
    """{"relative/path": bytes} written under `folder`; returns `folder`."""
    for name, data in files.items():
        path = Path(folder) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return Path(folder)


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


def one_line(err):
    """The error's message, asserted to be one non-empty line."""
    text = str(err)
    assert "\n" not in text and text
    return text


def good_model():
    """A small zoo model (mlp for MNIST) to save as a good checkpoint."""
    from convzoo import zoo

    return zoo.build_model("mlp", "mnist", (28, 28, 1), 10)


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
