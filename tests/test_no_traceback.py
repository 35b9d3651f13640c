"""Every command on a corpus of bad inputs (issue 17): a non-zero exit, one line on stderr, no
traceback; and the last-resort handler that turns a bug into one line saying so."""
import json
import os

import h5py
import pytest
from click.testing import CliRunner

from conftest import tiny_meta
from convzoo import checkpoint
from convzoo.cli import cli

DEEP = 1_200  # folder levels: os.walk overflowed Python's stack here


def _corpus(root):
    """Bad files, each built here: name -> path."""
    bad = {}
    for name, content in {"garbage.h5": os.urandom(4096), "empty.h5": b"", "text.png": b"hello",
                          "garbage.keras": b"PK\x03\x04" + os.urandom(200), "garbage.tflite": os.urandom(64),
                          "garbage.zip": b"PK\x05\x06" + bytes(18), "garbage.tar.gz": os.urandom(100)}.items():
        (root / name).write_bytes(content)
        bad[name] = root / name
    (root / "folder.h5").mkdir()
    bad["folder.h5"] = root / "folder.h5"
    os.mkfifo(root / "fifo.h5")
    bad["fifo.h5"] = root / "fifo.h5"
    os.mkfifo(root / "fifo.zip")
    bad["fifo.zip"] = root / "fifo.zip"
    bad["missing.h5"] = root / "missing.h5"
    with h5py.File(root / "badmeta.h5", "w") as f:  # metadata with a missing and a wrongly typed field
        f.attrs["convzoo"] = json.dumps({"format": 1, "dataset": ["x"], "classes": "ab\x1b[2J"})
    bad["badmeta.h5"] = root / "badmeta.h5"
    deep = root / "deep"
    path = deep
    deep.mkdir()
    for _ in range(DEEP):  # os.makedirs recurses too
        path = path / "d"
        path.mkdir()
    (path / "x.png").write_bytes(b"not a png")
    bad["deep"] = deep
    results = root / "results"
    results.mkdir()
    with h5py.File(results / "a.h5", "w") as f:
        f.attrs["convzoo"] = json.dumps({**tiny_meta(), "model": ["not", "a", "name"], "test": "x"})
    bad["results"] = results
    garbage_data = root / "data" / "mnist"
    garbage_data.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (garbage_data / name).write_bytes(os.urandom(100))
    bad["data"] = root / "data"
    return bad


def _remove_deep(deep):
    """shutil.rmtree recurses: remove the deep tree from the bottom up."""
    path = deep / "/".join(["d"] * DEEP)
    (path / "x.png").unlink()
    while path != deep.parent:
        path.rmdir()
        path = path.parent


def _commands(bad, good_png):
    files = ["garbage.h5", "empty.h5", "garbage.keras", "folder.h5", "fifo.h5", "missing.h5", "badmeta.h5",
             "text.png"]
    runs = [["models", "--results", bad["results"]], ["models", "--dataset", "nope\x1b[31m"],
            ["data", "list", "--data-dir", bad["data"] / "mnist" / "train-images-idx3-ubyte.gz"],
            ["data", "show", "mnist", "--data-dir", bad["data"]], ["data", "show", "nope\n"],
            ["data", "fetch", "nope"],
            ["data", "check", "nope\x1b[31m"], ["data", "check", bad["deep"]],
            ["data", "check", "mnist", "--data-dir", bad["data"]],
            ["eject", "nope\x1b[31m"], ["eject", "mlp", "--dataset", "nope"],
            ["eject", "mnist-cnn", "--output", bad["folder.h5"]],
            ["data", "import", "cats_vs_dogs", bad["fifo.zip"]], ["data", "import", "cats_vs_dogs", bad["deep"]],
            ["data", "import", "cats_vs_dogs", bad["garbage.zip"]],
            ["data", "import", "cats_vs_dogs", bad["garbage.tar.gz"]],
            ["data", "import", "mnist", bad["garbage.zip"]],
            ["train", "mnist", "--data-dir", bad["data"], "--epochs", "1"], ["train", "nope"],
            ["train", "mnist", "--model", "nope"],
            ["predict", bad["deep"], "--model", "mnist"], ["explain", bad["text.png"], "--model", "mnist"], ["predict", good_png, "--model", bad["garbage.tflite"]]]
    for name in files:
        runs += [["evaluate", bad[name]], ["export", bad[name], "--format", "tflite"],
                 ["predict", good_png, "--model", bad[name]], ["compare", bad[name]],
                 ["explain", good_png, "--model", bad[name], "--output", bad["results"].parent / "x"]]
    return runs


def test_every_command_on_bad_inputs_is_one_line(tmp_path):
    from PIL import Image

    bad = _corpus(tmp_path)
    Image.new("L", (28, 28)).save(tmp_path / "good.png")
    runs = _commands(bad, tmp_path / "good.png")
    covered = {r[0] if r[0] != "data" else f"data {r[1]}" for r in runs}
    every = {n for n in cli.commands if n != "data"} | {f"data {n}" for n in cli.commands["data"].commands}
    missing = every - covered - {"serve"}  # serve runs until stopped: its own tests send it bad requests
    assert not missing, f"add bad inputs for {missing}"
    runner = CliRunner()
    try:
        for args in runs:
            res = runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)
            where = " ".join(map(str, args))[-160:]
            assert res.exit_code != 0, (where, res.output)
            assert "Traceback" not in res.output and "this is a bug" not in res.output, (where, res.output)
            assert "\x1b" not in res.output, (where, res.output)
            if res.exit_code != 2:  # click's usage errors keep their usage line
                assert res.stderr.count("\n") == 1 and not res.stdout, (where, res.stderr, res.stdout)
    finally:
        _remove_deep(bad["deep"])


def test_an_unexpected_exception_is_one_line_saying_it_is_a_bug(tmp_path, monkeypatch):
    from convzoo import results

    def broken(folder):
        raise KeyError("boom\x1b]0;title\x07")

    monkeypatch.setattr(results, "collect", broken)
    runner = CliRunner()
    with pytest.raises(KeyError):  # tests run with CONVZOO_RAISE_BUGS=1: a bug fails them
        runner.invoke(cli, ["models", "--results", str(tmp_path)], catch_exceptions=False)
    monkeypatch.delenv("CONVZOO_RAISE_BUGS")
    res = runner.invoke(cli, ["models", "--results", str(tmp_path)], catch_exceptions=False)
    assert res.exit_code == 1
    assert res.stderr.count("\n") == 1 and "\x1b" not in res.stderr
    assert "internal error (KeyError: 'boom\\x1b]0;title\\x07'); this is a bug in convzoo" in res.stderr


def test_file_names_and_class_names_are_printed_escaped(tmp_path):
    """Class names from a checkpoint and file names in a folder carried ESC/OSC, \\r and \\n to the
    terminal and spoofed output lines."""
    from PIL import Image

    from convzoo import zoo

    model = zoo.build_model("mlp", "mnist", (28, 28, 1), 10)
    meta = {**tiny_meta(), "classes": [f"c{i}\x1b[2J\r\nspoof" for i in range(10)]}
    path = checkpoint.save(model, str(tmp_path / "m.h5"), meta)
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("L", (28, 28)).save(folder / "a\x1b]0;x\x07\rb.png")
    res = CliRunner().invoke(cli, ["predict", str(folder), "--model", path, "--top-k", "1"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert res.stdout.count("\n") == 1 and "\x1b" not in res.stdout and "\r" not in res.stdout
    assert "a\\x1b]0;x\\x07\\rb.png: c" in res.stdout and "\\x1b[2J\\r\\nspoof" in res.stdout


def test_nan_weights_give_strict_json_and_an_error(tmp_path):
    """NaN weights made `predict --json` print NaN, which is not JSON."""
    import numpy as np
    from PIL import Image

    from convzoo import zoo

    model = zoo.build_model("mlp", "mnist", (28, 28, 1), 10)
    model.layers[-1].set_weights([np.full(w.shape, np.nan, w.dtype) for w in model.layers[-1].get_weights()])
    path = checkpoint.save(model, str(tmp_path / "nan.h5"), tiny_meta())
    Image.new("L", (28, 28)).save(tmp_path / "x.png")
    res = CliRunner().invoke(cli, ["predict", str(tmp_path / "x.png"), "--model", path, "--json"],
                             catch_exceptions=False)
    assert res.exit_code == 1
    rows = json.loads(res.stdout)  # strict: json.loads would accept NaN, so check the text too
    assert ": NaN" not in res.stdout and rows[0]["predictions"] == []
    assert "not a number" in rows[0]["error"] and res.stderr.count("error: ") == 1


def test_strict_json_turns_nan_into_null():
    from convzoo.text import strict_json

    assert strict_json({"a": [float("nan"), 1.0, float("inf")]}) == ('{"a": [null, 1.0, null]}', 2)
