"""Hostile checkpoints (issue 6): files that carry code or read host files, zip and HDF5 tricks,
metadata that would crash predict, broken files.

Each input is built here, in tmp_path. TensorFlow is imported inside the tests that need it."""
import io
import json
import os
import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image

from conftest import good_model, invoke, one_line, tiny_meta
from convzoo import checkpoint
from convzoo.errors import CheckpointError


def _cli_one_line_error(res, *needles):
    """A CLI run that failed the way a user should see it: exit 1, one line, no traceback."""
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    assert res.output.count("\n") == 1, res.output
    for needle in needles:
        assert needle in res.output, res.output


@pytest.fixture
def good_h5(tmp_path):
    return checkpoint.save(good_model(), str(tmp_path / "good.h5"), tiny_meta())


@pytest.fixture
def good_keras(tmp_path):
    return checkpoint.save(good_model(), str(tmp_path / "good.keras"), tiny_meta())


@pytest.fixture
def png28(tmp_path):
    Image.new("L", (28, 28), 255).save(tmp_path / "img.png")
    return tmp_path / "img.png"


# ------------------------------------------------------------------ checkpoints that carry code
def _lambda_model(marker):
    """A model whose Lambda layer creates `marker` whenever it runs."""
    import keras

    payload = eval(f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]")  # stored as bytecode
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Lambda(payload),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    marker.unlink(missing_ok=True)  # building the model ran it once
    return model


def _evil_h5(tmp_path):
    import h5py

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.h5"
    _lambda_model(marker).save(path)
    with h5py.File(path, "a") as f:
        f.attrs["convzoo"] = json.dumps(tiny_meta())
    return path, marker


def _evil_keras(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.keras"
    _lambda_model(marker).save(path)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("convzoo.json", json.dumps(tiny_meta()))
    return path, marker


@pytest.mark.parametrize("make", [_evil_h5, _evil_keras], ids=["h5", "keras"])
def test_lambda_checkpoint_is_refused_and_runs_nothing(tmp_path, make):
    path, marker = make(tmp_path)
    with pytest.raises(CheckpointError, match="refused: it contains a Lambda layer") as e:
        checkpoint.load(path)
    assert str(path) in one_line(e.value)
    assert not marker.exists()


def test_lambda_payload_is_live_without_convzoo(tmp_path):
    """Control: the same file loaded by Keras with safe mode off does run the payload."""
    import keras

    path, marker = _evil_h5(tmp_path)
    model = keras.saving.load_model(path, compile=False, safe_mode=False)
    model(np.zeros((1, 28, 28, 1), np.float32))
    assert marker.exists()


def test_cli_predict_with_lambda_model_is_one_line(runner, tmp_path, png28):
    path, marker = _evil_h5(tmp_path)
    res = invoke(runner, "predict", png28, "--model", path)
    _cli_one_line_error(res, "refused", "Lambda layer")
    assert not marker.exists()
    path, marker = _evil_keras(tmp_path)
    _cli_one_line_error(invoke(runner, "predict", png28, "--model", path), "refused", "Lambda layer")
    assert not marker.exists()


def _keras_zip(path, config, meta=True, extra=()):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        if meta:
            z.writestr("convzoo.json", json.dumps(tiny_meta()))
        for name, data in extra:
            z.writestr(name, data)
    return path


def _sequential(*layers, **top):
    return {"module": "keras", "class_name": "Sequential", "registered_name": None,
            "config": {"name": "s", "layers": list(layers)}, **top}


def _dense(**config):
    return {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
            "config": {"units": 1, **config}}


@pytest.mark.parametrize("layer, found", [
    ({"module": "keras.layers", "class_name": "Lambda", "config": {"function": {"class_name": "__lambda__"}}},
     "Lambda layer"),
    ({"module": "os", "class_name": "system", "config": {"command": "touch pwned"}}, "class 'system'"),
    ({**_dense(), "registered_name": "evil>Payload"}, "custom object 'evil>Payload'"),
    ({**_dense(), "registered_name": "keras_hub>Backbone"}, "custom object 'keras_hub>Backbone'"),
    ({**_dense(), "module": "builtins"}, "module 'builtins'"),
    (_dense(activation="os.system"), "activation 'os.system'"),
    (_dense(activation=["relu"]), "activation"),
    (_dense(kernel_initializer="evil>init"), "'kernel_initializer' names 'evil>init'"),
    ({"module": "keras.layers", "class_name": "TFSMLayer", "config": {"filepath": "/etc"}}, "TFSMLayer"),
    # CVE-2025-9906: a function in the config that switches safe mode off
    ({"module": "keras.config", "class_name": "function", "config": "enable_unsafe_deserialization",
      "registered_name": "function"}, "class 'function'"),
    # CVE-2025-8747: keras.utils.get_file as a gadget
    ({"module": "keras.utils", "class_name": "get_file", "config": {"origin": "http://x/y"}}, "get_file"),
    ({"module": "keras.layers", "class_name": ["Dense"], "config": {}}, "class '['Dense']'"),
    ({"module": "keras.layers", "class_name": "Dense", "config": {"units": 1, "module_name": "os"}},
     "'module_name'"),
])
def test_keras_zip_with_foreign_classes_is_refused(tmp_path, layer, found):
    _keras_zip(tmp_path / "evil.keras", _sequential(layer))
    with pytest.raises(CheckpointError, match="refused") as e:
        checkpoint.load(tmp_path / "evil.keras")
    assert found in one_line(e.value)


def test_hostile_compile_config_is_refused_though_not_compiled(tmp_path):
    config = _sequential(_dense(), compile_config={"loss": {"module": "os", "class_name": "system"}})
    _keras_zip(tmp_path / "evil.keras", config)
    with pytest.raises(CheckpointError, match="class 'system'"):
        checkpoint.load(tmp_path / "evil.keras")


# ------------------------------------------------------------------ HDF5 that reads host files
def test_hdf5_external_link_is_refused(good_h5, tmp_path):
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["secret"] = np.arange(3)
    with h5py.File(good_h5, "a") as f:
        f["model_weights/ext"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/secret")
    for read in (checkpoint.read_meta, checkpoint.load):
        with pytest.raises(CheckpointError, match="refused: an HDF5 external link at 'model_weights/ext'"):
            read(good_h5)


def _host_file(tmp_path, size=64):
    host = tmp_path / "host_file"
    host.write_bytes(b"secret!!" * (size // 8))
    return host


def test_hdf5_external_storage_is_refused(good_h5, tmp_path):
    """CVE-2026-1669: a dataset whose bytes live in a host file."""
    import h5py

    host = _host_file(tmp_path)
    with h5py.File(good_h5, "a") as f:
        f.create_dataset("model_weights/leak", shape=(64,), dtype="u1", external=[(str(host), 0, 64)])
    with h5py.File(good_h5, "r") as f:  # control: h5py would read the host file through it
        assert bytes(f["model_weights/leak"][:8]) == b"secret!!"
    with pytest.raises(CheckpointError, match="refused: external storage at 'model_weights/leak'"):
        checkpoint.load(good_h5)


def test_external_storage_inside_a_keras_zip_is_refused(good_keras, tmp_path):
    import h5py

    host = _host_file(tmp_path)
    with zipfile.ZipFile(good_keras) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    weights = tmp_path / "w.h5"
    weights.write_bytes(parts["model.weights.h5"])
    with h5py.File(weights, "a") as f:
        f.create_dataset("leak", shape=(64,), dtype="u1", external=[(str(host), 0, 64)])
    parts["model.weights.h5"] = weights.read_bytes()
    with zipfile.ZipFile(good_keras, "w") as z:
        for name, data in parts.items():
            z.writestr(name, data)
    with pytest.raises(CheckpointError, match="external storage at 'leak'"):
        checkpoint.load(good_keras)


def test_hdf5_virtual_dataset_is_refused(good_h5, tmp_path):
    import h5py

    with h5py.File(tmp_path / "src.h5", "w") as f:
        f["data"] = np.arange(4)
    layout = h5py.VirtualLayout(shape=(4,), dtype="i8")
    layout[:] = h5py.VirtualSource(str(tmp_path / "src.h5"), "data", shape=(4,))
    with h5py.File(good_h5, "a") as f:
        f.create_virtual_dataset("model_weights/virtual", layout)
    with pytest.raises(CheckpointError, match="refused: a virtual dataset at 'model_weights/virtual'"):
        checkpoint.load(good_h5)


def test_weights_file_with_external_link_is_refused(good_h5, tmp_path):
    import h5py

    with h5py.File(good_h5, "a") as f:
        f["x"] = h5py.ExternalLink("/etc/passwd", "/")
    with pytest.raises(CheckpointError, match="external link"):
        checkpoint.check_weights_file(good_h5)


# ------------------------------------------------------------------ files that are two things at once
def _zip_bytes(config):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.writestr("convzoo.json", json.dumps(tiny_meta()))
    return buf.getvalue()


def test_hdf5_zip_polyglot_is_refused(good_h5, tmp_path):
    """Keras reads a *.keras file as a zip when it is one: a clean HDF5 in front must not hide it."""
    import h5py
    import keras

    other = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10),
                              keras.layers.Softmax()])  # Softmax: a class convzoo never builds
    other.save(tmp_path / "other.keras")
    with zipfile.ZipFile(tmp_path / "other.keras", "a") as z:
        z.writestr("convzoo.json", json.dumps(tiny_meta()))
    poly = tmp_path / "poly.keras"
    poly.write_bytes(open(good_h5, "rb").read() + (tmp_path / "other.keras").read_bytes())
    assert h5py.is_hdf5(poly) and zipfile.is_zipfile(poly)
    with pytest.raises(CheckpointError, match="both HDF5 and zip"):
        checkpoint.load(poly)


@pytest.mark.parametrize("name, message", [
    ("model.keras", r"must be named \*.h5"), ("model.bin", r"must be named \*.h5")])
def test_checkpoint_named_for_another_reader_is_refused(good_h5, tmp_path, name, message):
    shutil.copy(good_h5, tmp_path / name)
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load(tmp_path / name)


# ------------------------------------------------------------------ zip structure
def _raw_zip_patch(path, offset_local, offset_central, value):
    raw = bytearray(path.read_bytes())
    raw[offset_local] = value(raw[offset_local])
    central = raw.find(b"PK\x01\x02")
    raw[central + offset_central] = value(raw[central + offset_central])
    path.write_bytes(bytes(raw))


def test_zip_structure_attacks(tmp_path):
    good = _sequential(_dense())
    cases = {}
    cases["traversal"] = _keras_zip(tmp_path / "a.keras", good, extra=[("../../evil.py", "x")])
    cases["assets"] = _keras_zip(tmp_path / "b.keras", good, extra=[("assets/x", "x")])
    with pytest.warns(UserWarning, match="Duplicate name"):
        cases["duplicate"] = _keras_zip(tmp_path / "c.keras", good,
                                        extra=[("config.json", json.dumps(_sequential({"class_name": "X"})))])
    with zipfile.ZipFile(tmp_path / "d.keras", "w", zipfile.ZIP_DEFLATED) as z:  # 17 MB -> 17 KB
        z.writestr("config.json", b" " * (17 * 2**20))
    cases["bomb"] = tmp_path / "d.keras"
    cases["encrypted"] = _keras_zip(tmp_path / "e.keras", good)
    _raw_zip_patch(cases["encrypted"], 6, 8, lambda b: b | 1)
    cases["method"] = _keras_zip(tmp_path / "f.keras", good)
    _raw_zip_patch(cases["method"], 8, 10, lambda b: 99)
    (tmp_path / "g.keras").write_bytes(_zip_bytes(["not", "an", "object"]))
    cases["list"] = tmp_path / "g.keras"
    with zipfile.ZipFile(tmp_path / "h.keras", "w") as z:
        z.writestr("config.json", "[" * 100_000 + "]" * 100_000)
    cases["deep"] = tmp_path / "h.keras"
    expected = {"traversal": "unexpected zip entry '../../evil.py'", "assets": "unexpected zip entry 'assets/x'",
                "duplicate": "same entry twice", "bomb": "'config.json' is over 16 MB",
                "encrypted": "encrypted", "method": "compression method",
                "list": "config.json is not a JSON object", "deep": "nested too deeply"}
    answers = {}
    for case, path in cases.items():
        with pytest.raises(CheckpointError) as e:
            checkpoint.load(path)
        answers[case] = one_line(e.value)
        assert expected[case] in answers[case], answers[case]


# ------------------------------------------------------------------ metadata that would crash predict
def _with_meta(path, meta):
    import h5py

    with h5py.File(path, "a") as f:
        f.attrs["convzoo"] = meta if isinstance(meta, np.ndarray) else json.dumps(meta)
    return path


@pytest.mark.parametrize("meta, message", [
    ([1, 2], "metadata is not a JSON object"),
    (np.arange(3), "cannot read checkpoint"),
    ({**tiny_meta(), "input_shape": [100_000, 100_000, 3]}, "'input_shape' is not"),
    ({**tiny_meta(), "input_shape": [28, 28, True]}, "'input_shape' is not"),
    ({**tiny_meta(), "classes": "0123456789"}, "'classes' is not a list"),
    ({**tiny_meta(), "head": "eval"}, "'head' is not one of"),
    ({**tiny_meta(), "preprocess": "rm -rf"}, "'preprocess' is not"),
])
def test_hostile_metadata_is_refused_before_keras(good_h5, meta, message):
    _with_meta(good_h5, meta)
    for read in (checkpoint.read_meta, checkpoint.load):
        with pytest.raises(CheckpointError, match=message) as e:
            read(good_h5)
        one_line(e.value)


@pytest.mark.parametrize("change, message", [
    ({"input_shape": [32, 32, 3]}, r"metadata says input \(32, 32, 3\) but the model takes \(28, 28, 1\)"),
    ({"classes": ["a", "b", "c"]}, "the model has 10 outputs but the metadata names 3 classes"),
])
def test_metadata_that_does_not_fit_the_model(runner, good_h5, png28, change, message):
    _with_meta(good_h5, {**tiny_meta(), **change})
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load(good_h5)
    _cli_one_line_error(invoke(runner, "predict", png28, "--model", good_h5), "metadata")


# one rule for a head, for checkpoints and LiteRT models alike: sigmoid 1 unit and 2 classes,
# softmax and logits one unit per class (every model the zoo builds)
HEAD_CASES = [  # (bundled model, metadata change, refusal or None)
    ("mnist", {}, None),
    ("cats_vs_dogs", {}, None),
    ("mnist", {"head": "sigmoid", "classes": ["a", "b"]},
     "10 outputs but the metadata names 2 classes; a sigmoid head needs 1 output and 2 classes"),
    ("cats_vs_dogs", {"classes": ["a", "b", "c"]},
     "1 outputs but the metadata names 3 classes; a sigmoid head needs 1 output and 2 classes"),
    ("cats_vs_dogs", {"head": "softmax"}, "1 outputs but the metadata names 2 classes; a softmax head needs 2 outputs"),
    ("mnist", {"head": "logits", "classes": list("abcdefghi")}, "a logits head needs 9 outputs, one per class"),
]


def _bundled_with_meta(tmp_path, name, change, suffix):
    """models/NAME.h5 or .tflite copied with its convzoo metadata changed."""
    from conftest import ROOT

    src = ROOT / "models" / f"{name}{suffix}"
    dest = tmp_path / f"m{suffix}"
    if suffix == ".h5":
        shutil.copy(src, dest)
        _with_meta(dest, {**checkpoint.read_meta(src), **change})
        return dest
    from ai_edge_litert.tools import flatbuffer_utils

    from convzoo import litert

    content = src.read_bytes()
    meta = litert.read_meta(content, src)
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    model.metadata = [m for m in model.metadata if m.name not in (b"convzoo", "convzoo")]
    dest.write_bytes(litert.add_meta(bytes(flatbuffer_utils.convert_object_to_bytearray(model)),
                                     {**meta, **change}))
    return dest


@pytest.mark.parametrize("suffix", [".h5", ".tflite"])
@pytest.mark.parametrize("name, change, refusal", HEAD_CASES)
def test_one_head_rule_for_checkpoints_and_litert(runner, tmp_path, suffix, name, change, refusal):
    if suffix == ".tflite":
        pytest.importorskip("ai_edge_litert", reason="ai_edge_litert not installed")
    from convzoo import litert

    path = _bundled_with_meta(tmp_path, name, change, suffix)
    side = 28 if name == "mnist" else 150
    Image.new("RGB", (side, side), 200).save(tmp_path / "x.png")
    open_model = checkpoint.load if suffix == ".h5" else litert.Runner
    if refusal is None:
        open_model(path)
        res = invoke(runner, "predict", tmp_path / "x.png", "--model", path, "--no-litert")
        assert res.exit_code == 0, res.output
        return
    with pytest.raises(CheckpointError, match=refusal) as e:
        open_model(path)
    one_line(e.value)
    _cli_one_line_error(invoke(runner, "predict", tmp_path / "x.png", "--model", path, "--no-litert"), refusal)


def test_read_meta_needs_the_fields_asked_for(runner, tmp_path, monkeypatch):
    """read_meta(need=...) and load(need=...) refuse what lacks them, before Keras builds anything."""
    from convzoo import backend

    bare = checkpoint.save(good_model(), str(tmp_path / "bare.h5"), {"dataset": "mnist", "model": "mlp"})
    assert checkpoint.read_meta(bare) == {"dataset": "mnist", "model": "mlp"}
    monkeypatch.setattr(backend, "load", lambda: pytest.fail("Keras was reached"))
    for read in (checkpoint.read_meta, checkpoint.load):
        with pytest.raises(CheckpointError, match="lacks classes, input_shape, preprocess, head; retrain"):
            read(bare, need=checkpoint.USE_FIELDS)
    monkeypatch.undo()
    _cli_one_line_error(invoke(runner, "export", bare, "--format", "tflite"), "lacks classes")


# ------------------------------------------------------------------ broken files
BROKEN = [
    ("empty.h5", b"", "empty file"),
    ("sig.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 50, "cannot read checkpoint"),
    ("text.h5", b"just some text, not a model", "not a Keras checkpoint"),
    ("random.h5", bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
     "not a Keras checkpoint"),
    ("random.keras", bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)),
     "not a Keras checkpoint"),
]


@pytest.mark.parametrize("name, content, message", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_checkpoint_files(runner, tmp_path, png28, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as e:
        checkpoint.load(tmp_path / name)
    one_line(e.value)
    _cli_one_line_error(invoke(runner, "evaluate", name), message)
    _cli_one_line_error(invoke(runner, "predict", png28, "--model", name), message)


def test_truncated_h5_and_zip_without_config(runner, good_h5, good_keras, tmp_path, png28):
    raw = open(good_h5, "rb").read()
    (tmp_path / "half.h5").write_bytes(raw[: len(raw) // 2])
    raw = open(good_keras, "rb").read()
    (tmp_path / "half.keras").write_bytes(raw[: len(raw) // 2])
    with zipfile.ZipFile(tmp_path / "nocfg.keras", "w") as z:
        z.writestr("readme.txt", "hi")
    for name, message in (("half.h5", "half.h5: cannot read checkpoint"),
                          ("half.keras", "half.keras: not a Keras checkpoint"),
                          ("nocfg.keras", "without config.json")):
        with pytest.raises(CheckpointError, match=message) as e:
            checkpoint.load(tmp_path / name)
        one_line(e.value)
        _cli_one_line_error(invoke(runner, "predict", png28, "--model", name), message)


def test_checkpoint_keras_cannot_load_is_one_line(runner, good_h5, good_keras, tmp_path, png28):
    """Files that pass every check yet do not load (weights that do not fit the config, no weights)."""
    import h5py

    with h5py.File(good_h5, "a") as f:
        f.attrs["model_config"] = f.attrs["model_config"].replace('"units": 100', '"units": 101')
    with zipfile.ZipFile(good_keras) as z:
        parts = {n: z.read(n) for n in z.namelist() if n != "model.weights.h5"}
    with zipfile.ZipFile(good_keras, "w") as z:
        for name, data in parts.items():
            z.writestr(name, data)
    for path in (good_h5, good_keras):
        with pytest.raises(CheckpointError, match="cannot load model") as e:
            checkpoint.load(path)
        one_line(e.value)
        _cli_one_line_error(invoke(runner, "predict", png28, "--model", path), "cannot load model")


def test_checkpoint_that_is_a_fifo_or_folder(tmp_path):
    os.mkfifo(tmp_path / "fifo.h5")
    (tmp_path / "dir.h5").mkdir()
    for name in ("fifo.h5", "dir.h5"):
        with pytest.raises(CheckpointError, match="not a regular file"):
            checkpoint.load(tmp_path / name)


def test_model_without_convzoo_metadata(tmp_path):
    import keras

    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(tmp_path / "plain.h5")
    with pytest.raises(CheckpointError, match="without convzoo metadata"):
        checkpoint.load(tmp_path / "plain.h5")


def test_metadata_without_the_fields_predict_needs(runner, tmp_path):
    from convzoo import zoo as _zoo

    model = _zoo.build_model("mlp", "mnist", (28, 28, 1), 10)
    checkpoint.save(model, str(tmp_path / "bare.h5"), {"dataset": "mnist"})
    Image.new("L", (28, 28)).save(tmp_path / "x.png")
    for args in (["predict", "x.png", "--model", "bare.h5"], ["evaluate", "bare.h5"]):
        res = invoke(runner, *args)
        assert res.exit_code == 1 and "lacks classes, input_shape, preprocess, head" in res.output
        assert "Traceback" not in res.output
