"""convzoo export (issue 7): SavedModel, LiteRT and ONNX round trips checked against the .h5, and
predict with a .tflite on the LiteRT interpreter without TensorFlow.

The bundled models/mnist.h5 is exported once per format, self-checked on the repo's data/ sample."""
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, SAMPLE, invoke

MODEL = ROOT / "models" / "mnist.h5"
SAMPLES = sorted((SAMPLE / "samples").glob("*.png"))
NEEDS = {"tflite": ["ai_edge_litert"], "onnx": ["onnx", "onnxruntime", "tf2onnx"], "savedmodel": []}
OUTPUT = {"tflite": "m.tflite", "onnx": "m.onnx", "savedmodel": "m_savedmodel"}


def _need(fmt):
    for name in NEEDS[fmt]:
        pytest.importorskip(name, reason=f"{name} not installed (pip install -e '.[export]')")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """export(fmt) -> (folder, CLI output): m.h5 exported beside itself, once per format."""
    from click.testing import CliRunner

    folder = tmp_path_factory.mktemp("export")
    shutil.copy(MODEL, folder / "m.h5")
    done = {}

    def export(fmt):
        _need(fmt)
        if fmt not in done:
            res = invoke(CliRunner(), "export", folder / "m.h5", "--format", fmt, "--data-dir", SAMPLE)
            assert res.exit_code == 0, res.output
            done[fmt] = res.output
        return folder, done[fmt]

    return export


def _stored_meta(path, fmt):
    if fmt == "tflite":
        from convzoo import litert

        return litert.read_meta(path.read_bytes(), path)
    if fmt == "onnx":
        import onnx

        return json.loads({p.key: p.value for p in onnx.load(path).metadata_props}["convzoo"])
    return json.loads((path / "convzoo.json").read_text())


@pytest.mark.parametrize("fmt", ["tflite", "onnx", "savedmodel"])
def test_export_round_trip(exported, fmt):
    folder, out = exported(fmt)
    path = folder / OUTPUT[fmt]  # the default output: beside the checkpoint
    assert path.exists() and "input float32 (n, 28, 28, 1) holding 0..255" in out
    check = re.search(r"self-check on 500 mnist test images: accuracy \S+ ([\d.]+), h5 ([\d.]+); "
                      r"top-1 agreement ([\d.]+)%; max \|probability difference\| (\S+)", out)
    assert check, out
    acc, acc_h5, agreement, diff = map(float, check.groups())
    assert diff <= 1e-4 and agreement >= 99.8 and abs(acc - acc_h5) <= 0.002 and acc_h5 > 0.95
    meta = _stored_meta(path, fmt)
    assert meta["classes"] == [str(i) for i in range(10)] and meta["preprocess"]["fit"] == "digit"
    assert meta["export"]["format"] == fmt and meta["head"] == "softmax"
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]  # no temp files left


def test_tflite_predict_matches_h5(exported):
    from convzoo import predict as pr

    folder, _ = exported("tflite")
    files = [str(p) for p in SAMPLES]
    lite = pr.predict(files, folder / "m.tflite", top_k=1)
    keras = pr.predict(files, MODEL, top_k=1)
    assert [r["predictions"][0]["label"] for r in lite] == [r["predictions"][0]["label"] for r in keras]
    for a, b in zip(lite, keras):
        assert abs(a["predictions"][0]["probability"] - b["predictions"][0]["probability"]) < 1e-4
    digits = [r for r in lite if "/mnist_" in r["file"]]
    assert digits and all(r["file"].split("_")[-1][0] == r["predictions"][0]["label"] for r in digits)


def test_tflite_predict_never_imports_tensorflow(exported):
    folder, _ = exported("tflite")
    code = ("import json, sys; from convzoo.cli import cli\n"
            "try: cli(['predict', %r, '--model', %r, '--json'], standalone_mode=False)\n"
            "except SystemExit: pass\n"
            "print('TF', 'tensorflow' in sys.modules, 'keras' in sys.modules)"
            ) % (str(SAMPLE / "samples" / "mnist_9998_5.png"), str(folder / "m.tflite"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rows, flags = out.stdout.strip().splitlines()
    assert flags == "TF False False"
    assert json.loads(rows)[0]["predictions"][0]["label"] == "5"
    assert out.stderr == ""  # LiteRT's "Created XNNPACK delegate" line is silenced


def test_runner_falls_back_to_one_image_at_a_time(exported, monkeypatch):
    from convzoo import litert
    from convzoo.data import mnist

    folder, _ = exported("tflite")
    x, _ = mnist.load(SAMPLE / "mnist", "test")
    batched = litert.Runner(folder / "m.tflite")(x[:5])
    runner = litert.Runner(folder / "m.tflite")

    def refuse(*args, **kwargs):
        raise RuntimeError("cannot resize")

    monkeypatch.setattr(runner.interpreter, "resize_tensor_input", refuse)
    np.testing.assert_allclose(runner(x[:5]), batched, atol=1e-6)


def test_refuses_to_overwrite(exported, runner, tmp_path):
    folder, _ = exported("tflite")
    before = (folder / "m.tflite").read_bytes()
    res = invoke(runner, "export", folder / "m.h5", "--format", "tflite")
    assert res.exit_code == 1 and "already exists; pass --overwrite" in res.output
    assert (folder / "m.tflite").read_bytes() == before
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    res = invoke(runner, "export", MODEL, "--format", "savedmodel", "--output", "notes", "--overwrite")
    assert res.exit_code == 1 and "is a folder but not a SavedModel" in res.output
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"


def test_overwrite_without_data_skips_the_check(exported, runner):
    folder, _ = exported("tflite")
    res = invoke(runner, "export", folder / "m.h5", "--format", "tflite", "--overwrite")
    assert res.exit_code == 0, res.output
    assert "self-check skipped (mnist not found" in res.output
    assert "tflite" in res.output and (folder / "m.tflite").stat().st_size > 1_000_000


def test_failed_self_check_writes_nothing(runner, tmp_path, monkeypatch):
    _need("tflite")
    monkeypatch.setattr("convzoo.export.TOLERANCE", 0.0)  # LiteRT differs from TF by about 1e-6
    res = invoke(runner, "export", MODEL, "--format", "tflite", "--output", "m.tflite", "--data-dir", SAMPLE,
                 "--limit", "50")
    assert res.exit_code == 1
    assert "differs from the checkpoint by up to" in res.output and "nothing written" in res.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["nothere.h5", "--format", "tflite"], "nothere.h5: no such checkpoint file"),
    (["mnist", "--format", "tflit"], "unknown export format 'tflit'; did you mean tflite"),
    (["mnist", "--format", "pickle"], "unknown export format 'pickle'; choose from onnx, savedmodel, tflite"),
    (["mnist", "--format", "tflite", "--output", "m.onnx"], "must end in .tflite"),
])
def test_user_errors_are_one_line(runner, args, message):
    res = invoke(runner, "export", *args)
    assert res.exit_code == 1 and message in res.output
    assert "Traceback" not in res.output and res.output.strip().count("\n") == 0


def test_bad_tflite_files_are_one_line_errors(exported, runner, tmp_path):
    folder, _ = exported("tflite")
    (tmp_path / "junk.tflite").write_bytes(b"not a model at all")
    # the same model with its metadata entry renamed: a .tflite convzoo did not write
    (tmp_path / "bare.tflite").write_bytes((folder / "m.tflite").read_bytes().replace(b"convzoo", b"convzax"))
    sample = SAMPLE / "samples" / "mnist_9998_5.png"
    for name, message in [("junk.tflite", "not a LiteRT (.tflite) model"),
                          ("bare.tflite", "a .tflite without convzoo metadata"),
                          ("none.tflite", "none.tflite: no such model file")]:
        res = invoke(runner, "predict", sample, "--model", name)
        assert res.exit_code == 1 and message in res.output, res.output
        assert res.output.strip().count("\n") == 0


def test_missing_litert_names_the_package(exported, runner, monkeypatch):
    folder, _ = exported("tflite")
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.schema_py_generated", None)
    res = invoke(runner, "predict", SAMPLE / "samples" / "mnist_9998_5.png", "--model", folder / "m.tflite")
    assert res.exit_code == 1 and "pip install ai-edge-litert" in res.output
    res = invoke(runner, "export", MODEL, "--format", "tflite", "--output", "x.tflite")
    assert res.exit_code == 1 and "pip install ai-edge-litert" in res.output


def test_export_help_does_not_import_tensorflow():
    code = ("import sys; from convzoo.cli import cli\n"
            "try: cli(['export', '--help'], standalone_mode=False)\n"
            "except SystemExit: pass\n"
            "print('TF', 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--format savedmodel|tflite|onnx" in out.stdout and out.stdout.strip().endswith("TF False")
