"""export --quantize int8: calibrated on training images, checked on accuracy against the .h5,
refused beyond the margin; predict runs the result."""
import numpy as np
import pytest

from conftest import SAMPLE, invoke

pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed")
PHOTO = SAMPLE / "samples" / "mnist_9996_3.png"


@pytest.mark.slow
def test_int8_export_reports_both_accuracies_and_predict_runs_it(runner, sample_data, tmp_path):
    res = invoke(runner, "export", "mnist", "--format", "tflite", "--quantize", "int8", "--data-dir", sample_data,
                 "--limit", "200", "--output", "m8.tflite")
    assert res.exit_code == 0, res.output
    assert "accuracy int8 " in res.stdout and "float (h5)" in res.stdout and "margin 1" in res.stdout
    size8, size32 = (tmp_path / "m8.tflite").stat().st_size, (SAMPLE.parent / "models" / "mnist.tflite").stat().st_size
    assert size8 < size32 / 3  # int8 weights
    out = invoke(runner, "predict", PHOTO, "--model", "m8.tflite", "--top-k", "1")
    assert out.exit_code == 0 and out.stdout.strip().rsplit(": ", 1)[-1].startswith("3 "), out.output


@pytest.mark.slow
def test_int8_export_losing_more_than_the_margin_is_refused(runner, sample_data, tmp_path, monkeypatch):
    from convzoo import export

    # ranges measured on blank images: every activation saturates, the accuracy collapses
    monkeypatch.setattr(export, "_calibration", lambda meta, data_dir, count: np.zeros((8, 28, 28, 1), np.uint8))
    res = invoke(runner, "export", "mnist", "--format", "tflite", "--quantize", "int8", "--data-dir", sample_data,
                 "--limit", "200", "--output", "bad.tflite")
    assert res.exit_code == 1 and "points lost, over the 1-point margin" in res.output, res.output
    assert not (tmp_path / "bad.tflite").exists() and list(tmp_path.glob(".bad*")) == []


def test_quantize_needs_tflite(runner):
    res = invoke(runner, "export", "mnist", "--format", "onnx", "--quantize", "int8")
    assert res.exit_code == 1 and "only int8, with --format tflite" in res.output
