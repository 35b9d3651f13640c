"""Checkpoints: a Keras .h5 (or .keras) file that carries everything predict needs.

The metadata is JSON in the root attribute `convzoo` of the .h5 (a `convzoo.json` entry in a .keras
zip). `read_meta` needs only h5py. `load` checks the stored model config against an allowlist of the
classes convzoo builds before Keras deserializes anything.
"""
import json
import os
import warnings
import zipfile

import h5py

from convzoo.errors import CheckpointError
from convzoo.fileio import atomic_path

FORMAT = 1
META_ATTR = "convzoo"
META_ENTRY = "convzoo.json"

# Every class a convzoo checkpoint may name; anything else is refused before deserialization.
ALLOWED_CLASSES = {
    "Sequential", "InputLayer", "Rescaling", "Conv2D", "MaxPooling2D", "Dropout", "Flatten",
    "Dense", "BatchNormalization", "Activation",
    "RandomRotation", "RandomTranslation", "RandomZoom", "RandomFlip", "RandomShear", "Functional", "__keras_tensor__",
    "GlobalAveragePooling2D",
    "DTypePolicy", "FloatDTypePolicy",
    "TruncatedNormal", "Constant", "GlorotUniform", "Zeros", "Ones", "HeUniform", "HeNormal",
    "RandomNormal", "RandomUniform", "GlorotNormal",
    "Adam", "RMSprop", "SGD", "CosineDecay",
    "SparseCategoricalCrossentropy", "BinaryCrossentropy", "CategoricalCrossentropy",
}
ALLOWED_MODULES = {None, "keras", "keras.layers", "keras.initializers", "keras.optimizers", "keras.losses",
                   "keras.optimizers.schedules",
                   "keras.models", "keras.src.models.sequential"}
ALLOWED_ACTIVATIONS = {None, "relu", "softmax", "sigmoid", "linear"}
FORBIDDEN_KEYS = {"function", "function_type", "output_shape_type", "module_name", "fn"}


def _refuse(path, what):
    raise CheckpointError(f"{path}: refused: {what}; convzoo loads only the layers it builds "
                          "and runs no code from a checkpoint")


def check_config(config, path="checkpoint"):
    """Raise CheckpointError unless every class, module and activation is on the allowlist."""
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        for key in FORBIDDEN_KEYS & node.keys():
            _refuse(path, f"config field '{key}' (a Python function or module)")
        if "class_name" in node:
            cls = node["class_name"]
            if cls not in ALLOWED_CLASSES:
                kind = "a Lambda layer (Python code)" if cls == "Lambda" else f"class '{cls}'"
                _refuse(path, f"it contains {kind}")
            if node.get("module") not in ALLOWED_MODULES:
                _refuse(path, f"class '{cls}' names module '{node.get('module')}'")
            registered = node.get("registered_name")
            if registered not in (None, cls) and not str(registered).startswith("keras"):
                _refuse(path, f"class '{cls}' is registered as custom object '{registered}'")
        act = node.get("activation", None)
        if not isinstance(act, dict) and act not in ALLOWED_ACTIVATIONS:
            _refuse(path, f"activation '{act}'")
        stack.extend(v for v in node.values() if isinstance(v, (dict, list)))


def _check_hdf5(f, path):
    """Refuse external links, external raw storage and virtual datasets (they read host files)."""
    bad = []

    def visit(name, link):
        if isinstance(link, (h5py.ExternalLink, h5py.SoftLink)):
            bad.append(f"an HDF5 {'external' if isinstance(link, h5py.ExternalLink) else 'soft'} "
                       f"link at '{name}'")
            return
        obj = f.get(name)
        if isinstance(obj, h5py.Dataset):
            if obj.is_virtual:
                bad.append(f"a virtual dataset at '{name}'")
            elif obj.id.get_create_plist().get_external_count() > 0:
                bad.append(f"external storage at '{name}'")

    f.visititems_links(visit)
    if bad:
        _refuse(path, bad[0])


def _json_attr(f, key):
    raw = f.attrs.get(key)
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    return json.loads(raw)


def _kind(path):
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{path}: empty file, not a checkpoint")
    if h5py.is_hdf5(path):
        return "h5"
    if zipfile.is_zipfile(path):
        return "keras"
    raise CheckpointError(f"{path}: not a Keras checkpoint (neither HDF5 .h5 nor zip .keras), "
                          "or the file is truncated")


def _open_parts(path):
    """(meta, model config, training config) without deserializing anything."""
    try:
        if _kind(path) == "h5":
            with h5py.File(path, "r") as f:
                _check_hdf5(f, path)
                return _json_attr(f, META_ATTR), _json_attr(f, "model_config"), \
                    _json_attr(f, "training_config")
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if "config.json" not in names:
                raise CheckpointError(f"{path}: zip file without config.json, not a .keras model")
            meta = json.loads(z.read(META_ENTRY)) if META_ENTRY in names else None
            config = json.loads(z.read("config.json"))
            compile_config = config.pop("compile_config", None)
            for name in names:
                if name.endswith(".h5"):
                    with z.open(name) as inner, h5py.File(inner, "r") as f:
                        _check_hdf5(f, path)
            return meta, config, compile_config
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path}: cannot read checkpoint ({e})") from None


def read_meta(path):
    """convzoo's metadata dict (no TensorFlow needed); CheckpointError if absent."""
    path = os.fspath(path)
    meta = _open_parts(path)[0]
    if meta is None:
        raise CheckpointError(f"{path}: a Keras model without convzoo metadata "
                              "(dataset, class names, preprocessing); train it with convzoo")
    return meta


def load(path):
    """(keras model, meta): allowlist-checked, then loaded with safe_mode=True and compile=False."""
    path = os.fspath(path)
    meta, config, training = _open_parts(path)
    if config is None:
        raise CheckpointError(f"{path}: no model config stored (a weights-only file?)")
    check_config(config, path)
    if training:
        check_config(training, path)
    if meta is None:
        read_meta(path)  # raises with the message
    from convzoo import backend

    keras = backend.load()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # Keras raises many types for a damaged file
        raise CheckpointError(f"{path}: cannot load model ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from None
    return model, meta


def save(model, path, meta, include_optimizer=False):
    """Write model + metadata to a temp file beside `path`, then move it into place."""
    path = os.fspath(path)
    text = json.dumps(meta)
    if len(text) > 60_000:
        raise CheckpointError("checkpoint metadata exceeds HDF5's attribute size limit")
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if path.endswith(".keras"):
            model.save(tmp)
            with zipfile.ZipFile(tmp, "a") as z:
                z.writestr(META_ENTRY, text)
        else:
            model.save(tmp, include_optimizer=include_optimizer)
            with h5py.File(tmp, "a") as f:
                f.attrs[META_ATTR] = text
    return path


def check_weights_file(path):
    """A weights-only .h5 given as --weights: an HDF5 file without links or external storage."""
    path = os.fspath(path)
    if _kind(path) != "h5":
        raise CheckpointError(f"{path}: --weights needs an HDF5 .h5 weights file")
    try:
        with h5py.File(path, "r") as f:
            _check_hdf5(f, path)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read weights file ({e})") from None
    return path


def update_meta(path, **updates):
    """Merge `updates` into a checkpoint's metadata (.h5), writing a copy and moving it into place."""
    import shutil

    path = os.fspath(path)
    meta = read_meta(path)
    meta.update(updates)
    if _kind(path) != "h5":
        raise CheckpointError(f"{path}: metadata can be updated in .h5 checkpoints only")
    with atomic_path(path) as tmp:
        shutil.copyfile(path, tmp)
        with h5py.File(tmp, "a") as f:
            f.attrs[META_ATTR] = json.dumps(meta)
    return meta
