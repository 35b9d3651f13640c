"""Resource budgets for hostile checkpoints (issue 17): small files that declare large sizes are refused
with the numbers, before Keras builds anything. Memory cases run in a subprocess under RLIMIT_AS
with a hang timeout; each file is built here."""
import json
import os
import resource
import shutil
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest

from conftest import ROOT, invoke, tiny_meta
from convzoo import checkpoint, safeload, zoo
from convzoo import data as catalog
from convzoo.errors import CheckpointError

MEMORY = 1 * 2**30  # the subprocess's address space: far below what any bomb here declares


@pytest.fixture(scope="module")
def mlp_files(tmp_path_factory):
    """A real mnist mlp checkpoint, .h5 and .keras, saved once for the module."""
    folder = tmp_path_factory.mktemp("mlp")
    model = zoo.build_model("mlp", "mnist", (28, 28, 1), 10)
    return {kind: checkpoint.save(model, str(folder / f"good.{kind}"), tiny_meta()) for kind in ("h5", "keras")}


@pytest.fixture
def good_h5(tmp_path, mlp_files):
    return shutil.copy(mlp_files["h5"], tmp_path / "good.h5")


@pytest.fixture
def good_keras(tmp_path, mlp_files):
    return shutil.copy(mlp_files["keras"], tmp_path / "good.keras")


def _limited_load(path, mem=MEMORY, timeout=120):
    """checkpoint.load in a fresh process under an address-space limit: its one-line answer."""
    code = ("import sys\nfrom convzoo import checkpoint\nfrom convzoo.errors import ConvzooError\n"
            "try:\n    checkpoint.load(sys.argv[1])\n    print('LOADED')\n"
            "except ConvzooError as e:\n    print('REFUSED', e)\n")

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    res = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         timeout=timeout, preexec_fn=limit, env=env)
    assert res.stdout.startswith("REFUSED"), (res.stdout, res.stderr[-2000:])
    assert res.stdout.count("\n") == 1 and "Traceback" not in res.stderr, (res.stdout, res.stderr[-2000:])
    return res.stdout


def _edit_config(path, change):
    """Rewrite the model config stored in an .h5 checkpoint with change(config)."""
    with h5py.File(path, "a") as f:
        config = json.loads(f.attrs["model_config"])
        change(config)
        f.attrs["model_config"] = json.dumps(config)
    return path


def _dense_group(f):
    """The weights group of the checkpoint's first Dense layer, and its kernel's path inside it."""
    layer = next(n for n in f["model_weights"].attrs["layer_names"] if n.startswith("dense"))
    group = f["model_weights"][layer]
    return group, group.visit(lambda n: n if n.endswith("kernel") else None)


def _layers(config):
    return config["config"]["layers"]


def _dense(units, name):
    return {"class_name": "Dense", "config": {"name": name, "units": units, "activation": "relu",
                                              "use_bias": True}}


# ------------------------------------------------------------------ sizing agrees with Keras
@pytest.mark.parametrize("name", zoo.list_models())
def test_plan_counts_every_zoo_model_as_keras_does(name):
    spec = zoo.get_spec(name)
    info = catalog.get(spec.datasets[0] if spec.datasets[0] in catalog.DATASETS else "cifar10")  # "any"
    weights = str(ROOT / "models" / "cifar10.h5") if "transfer" in name else None  # a base to start from
    model = zoo.build_model(name, info.name, info.input_shape, len(info.classes), weights=weights)
    plan = safeload.plan_config(json.loads(model.to_json()), name)
    assert plan.params == model.count_params()
    assert plan.output_shape == tuple(model.output_shape[1:])


@pytest.mark.parametrize("path", sorted((ROOT / "models").glob("*.h5")), ids=lambda p: p.name)
def test_bundled_models_fit_the_budgets(path):
    with h5py.File(path) as f:
        plan = safeload.plan_config(json.loads(f.attrs["model_config"]), str(path))
        safeload.walk_hdf5(f, str(path), plan)
    assert 0 < plan.params * 4 < safeload.MAX_WEIGHT_BYTES and safeload.batch_size(plan.image_bytes) >= 32


# ------------------------------------------------------------------ resource bombs
def test_dataset_declaring_gigabytes_but_storing_nothing(good_h5):
    """343 KB .h5 whose weight dataset declares 3.6 GB (chunked, nothing stored), listed six times."""
    with h5py.File(good_h5, "a") as f:
        group, kernel = _dense_group(f)
        del group[kernel]
        group.create_dataset(kernel, shape=(30_000, 30_000), dtype="float32", chunks=(1000, 1000))
        names = list(group.attrs["weight_names"])
        group.attrs["weight_names"] = [kernel] * 6 + [n for n in names if not n.endswith("kernel")]
    assert os.path.getsize(good_h5) < 2**20
    out = _limited_load(good_h5)
    assert "declares 3,433 MB but stores 0 bytes" in out, out


def test_weight_listed_twice_is_refused(good_h5):
    with h5py.File(good_h5, "a") as f:
        group, _ = _dense_group(f)
        names = list(group.attrs["weight_names"])
        group.attrs["weight_names"] = names + names[:1]
    with pytest.raises(CheckpointError, match="lists the same weight twice"):
        checkpoint.load(good_h5)


def test_keras_weights_entry_inflating_to_gigabytes(good_keras):
    """A .keras whose model.weights.h5 declares 3.9 GB inflated: refused on the zip directory."""
    raw = bytearray(open(good_keras, "rb").read())
    with zipfile.ZipFile(good_keras) as z:
        info = z.getinfo("model.weights.h5")
    big = (3_900_000_000).to_bytes(4, "little")
    raw[info.header_offset + 22:info.header_offset + 26] = big  # local header: uncompressed size
    central = raw.find(b"PK\x01\x02")
    while central != -1:
        name_len = int.from_bytes(raw[central + 28:central + 30], "little")
        if raw[central + 46:central + 46 + name_len] == b"model.weights.h5":
            raw[central + 24:central + 28] = big
        central = raw.find(b"PK\x01\x02", central + 4)
    open(good_keras, "wb").write(bytes(raw))
    out = _limited_load(good_keras)
    assert "'model.weights.h5' inflates to 3,719 MB" in out, out


def test_dense_of_a_million_units(good_h5):
    """A config with Dense units of 1.3 M (4.5 GB when Keras builds it): refused with the numbers."""
    _edit_config(good_h5, lambda c: _layers(c)[-2]["config"].update(units=1_300_000))
    out = _limited_load(good_h5)
    assert "declares 1,020,500,000 parameters (3,893 MB)" in out and "this machine gives a model" in out, out


def test_twenty_thousand_layers(good_h5):
    """A config of 20,000 Dense(1) layers (Keras was still building after 120 s)."""
    _edit_config(good_h5, lambda c: _layers(c).__setitem__(
        slice(-1, -1), [_dense(1, f"d{i}") for i in range(20_000)]))
    out = _limited_load(good_h5)
    assert "over 1,000 layers" in out, out


def test_config_nested_too_deeply(good_h5):
    def nest(config):
        deep = {}
        for _ in range(200):
            deep = {"x": deep}
        _layers(config)[-1]["config"]["extra"] = deep

    _edit_config(good_h5, nest)
    with pytest.raises(CheckpointError, match="nests deeper than 64"):
        checkpoint.load(good_h5)


def test_huge_input_side_is_refused(good_h5):
    """A legitimate-looking 4096x4096x3 model: a 48-line ResourceExhaustedError at 5-6 GB before."""
    def big(config):
        _layers(config)[0]["config"]["batch_shape"] = [None, 4096, 4096, 3]

    _edit_config(good_h5, big)
    with h5py.File(good_h5, "a") as f:
        meta = json.loads(f.attrs["convzoo"])
        f.attrs["convzoo"] = json.dumps({**meta, "input_shape": [4096, 4096, 3]})
    out = _limited_load(good_h5)
    assert "activations take" in out or "model input is 4096x4096x3" in out, out


def test_conv_activations_over_the_per_image_limit():
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 2048, 2048, 3]}},
        {"class_name": "Conv2D", "config": {"filters": 64, "kernel_size": [3, 3], "padding": "same"}}]}}
    with pytest.raises(CheckpointError, match=r"activations take 1,072 MB per image \(output \(2048, 2048, 64\)\)"):
        safeload.plan_config(config, "x")


def test_build_config_contradicting_the_layers(good_h5):
    """Keras builds a layer from its build_config: a Dense built for a million inputs is refused."""
    _edit_config(good_h5, lambda c: _layers(c)[-1].update(build_config={"input_shape": [None, 1_000_000]}))
    with pytest.raises(CheckpointError, match=r"built for \[None, 1000000\] but its input is \(100,\)"):
        checkpoint.load(good_h5)


def test_rescaling_by_a_list(good_h5):
    """A Rescaling whose scale is a list of 784 values passed the allowlist, then crashed inference."""
    _edit_config(good_h5, lambda c: _layers(c)[1]["config"].update(scale=[1 / 255] * 784))
    with pytest.raises(CheckpointError, match="Rescaling scale .* convzoo rescales by one number"):
        checkpoint.load(good_h5)


def test_too_many_hdf5_links(good_h5, monkeypatch):
    """100,000 hard links took 103 s in the walk: the walk stops at MAX_LINKS (lowered here)."""
    with h5py.File(good_h5, "a") as f:
        group, kernel = _dense_group(f)
        target = group[kernel]
        for i in range(300):
            f[f"link{i}"] = target
    monkeypatch.setattr(safeload, "MAX_LINKS", 100)
    with pytest.raises(CheckpointError, match="over 100 HDF5 links"):
        checkpoint.load(good_h5)
    monkeypatch.setattr(safeload, "MAX_LINKS", 10_000)
    monkeypatch.setattr(safeload, "WALK_SECONDS", -1.0)  # any walk is over budget
    with pytest.raises(CheckpointError, match="walking its HDF5 links took over"):
        checkpoint.read_meta(good_h5)


def test_datasets_holding_more_values_than_the_config(good_h5):
    with h5py.File(good_h5, "a") as f:
        f.create_dataset("spare", data=np.zeros((1000, 1000), np.float32))
    with pytest.raises(CheckpointError, match="hold 1,[0-9,]+ values but the config has 79,510 parameters"):
        checkpoint.load(good_h5)


def test_sigmoid_head_over_ten_outputs(good_h5, runner, tmp_path):
    """A sigmoid head over 10 outputs gave each image another image's row: refused before Keras."""
    from PIL import Image

    with h5py.File(good_h5, "a") as f:
        f.attrs["convzoo"] = json.dumps({**tiny_meta(), "head": "sigmoid"})
    with pytest.raises(CheckpointError, match="10 outputs .* a sigmoid head needs 1 output and 2 classes"):
        checkpoint.load(good_h5)
    Image.new("L", (28, 28)).save(tmp_path / "x.png")
    res = invoke(runner, "predict", tmp_path / "x.png", "--model", good_h5)
    assert res.exit_code == 1 and res.output.count("\n") == 1 and "sigmoid head" in res.output


# ------------------------------------------------------------------ one file, one read
def test_file_swapped_after_the_check_is_not_loaded(good_h5, tmp_path, monkeypatch):
    """Keras loads the bytes convzoo checked: a model with a refused layer swapped in after the check
    is never read."""
    import keras

    evil = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Rescaling(1 / 255),
                             keras.layers.Flatten(), keras.layers.UnitNormalization(),
                             keras.layers.Dense(10, activation="softmax")])
    evil_path = str(tmp_path / "evil.h5")
    evil.save(evil_path)
    with pytest.raises(CheckpointError, match="UnitNormalization"):
        checkpoint.load(evil_path)
    real_plan = safeload.plan_config

    def plan_then_swap(*args, **kwargs):
        plan = real_plan(*args, **kwargs)
        os.replace(evil_path, good_h5)  # the attacker wins the race
        return plan

    monkeypatch.setattr(safeload, "plan_config", plan_then_swap)
    model, _ = checkpoint.load(good_h5)
    assert "UnitNormalization" not in {type(layer).__name__ for layer in model.layers}
