"""Checkpoints: a Keras .h5 (or .keras) file that carries everything predict needs.

The metadata is JSON in the root attribute `convzoo` of the .h5 (a `convzoo.json` entry in a .keras
zip). `read_meta` needs only h5py. `load` checks the stored model config against an allowlist of the
classes convzoo builds before Keras deserializes anything.
"""
import json
import os
import stat
import warnings
import zipfile

import h5py

from convzoo import heads, safeload
from convzoo.errors import CheckpointError
from convzoo.fileio import atomic_path

FORMAT = 1
META_ATTR = "convzoo"
META_ENTRY = "convzoo.json"
# The entries a .keras zip of convzoo's may hold; Keras extracts any other zip to disk to read assets.
ZIP_ENTRIES = {"config.json", "metadata.json", "model.weights.h5", META_ENTRY}
MAX_ENTRY = 16 * 2**20  # config.json and convzoo.json: a few KB in practice
MAX_SIDE = 4096  # largest input side in the metadata: predict resizes every image to it
HEADS = heads.HEADS

# Every class a convzoo checkpoint may name; anything else is refused before deserialization.
ALLOWED_CLASSES = {
    "Sequential", "InputLayer", "Rescaling", "Conv2D", "MaxPooling2D", "AveragePooling2D", "Dropout", "Flatten",
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
ALLOWED_ACTIVATIONS = {None, "relu", "softmax", "sigmoid", "linear", "gelu"}  # gelu: cifar10-air
LOOKUP_SUFFIXES = ("_initializer", "_regularizer", "_constraint")
FORBIDDEN_KEYS = {"function", "function_type", "output_shape_type", "module_name", "fn"}


CODE = "convzoo loads only the layers it builds and runs no code from a checkpoint"
HOST_FILES = "it would read other files on this computer"
ZIP_LAYOUT = "a .keras checkpoint holds only " + ", ".join(sorted(ZIP_ENTRIES))


def _refuse(path, what, why=CODE):
    raise CheckpointError(f"{path}: refused: {what}; {why}")


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
            if not isinstance(cls, str) or cls not in ALLOWED_CLASSES:
                kind = "a Lambda layer (Python code)" if cls == "Lambda" else f"class '{_short(cls)}'"
                _refuse(path, f"it contains {kind}")
            module = node.get("module")
            if not (module is None or isinstance(module, str)) or module not in ALLOWED_MODULES:
                _refuse(path, f"class '{cls}' names module '{_short(module)}'")
            registered = node.get("registered_name")
            if registered is not None and registered != cls:  # Keras looks it up among custom objects
                _refuse(path, f"class '{cls}' is registered as custom object '{_short(registered)}'")
        act = node.get("activation", None)
        if not isinstance(act, dict) and (not (act is None or isinstance(act, str))
                                          or act not in ALLOWED_ACTIVATIONS):
            _refuse(path, f"activation '{_short(act)}'")
        for key, value in node.items():
            # a string here is looked up by name, custom objects included; convzoo stores dicts or null
            if isinstance(key, str) and key.endswith(LOOKUP_SUFFIXES) and isinstance(value, str):
                _refuse(path, f"config field '{key}' names '{_short(value)}'")
        stack.extend(v for v in node.values() if isinstance(v, (dict, list)))


def _short(value):
    text = str(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def _check_hdf5(f, path, plan=None):
    """Links, external storage, virtual datasets and declared sizes: safeload.walk_hdf5."""
    safeload.walk_hdf5(f, path, plan)


def _json_attr(f, key, name):
    raw = f.attrs.get(key)
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    if len(raw) > safeload.MAX_CONFIG:
        _refuse(name, f"HDF5 attribute '{key}' of {len(raw) // 2**20} MB", "a config takes a few KB")
    return json.loads(raw)


def regular_file(path, what="checkpoint"):
    """os.stat of an existing regular file (not a folder, FIFO or device); CheckpointError otherwise."""
    try:
        st = os.stat(path)
    except OSError:
        raise CheckpointError(f"{path}: no such {what} file") from None
    if not stat.S_ISREG(st.st_mode):
        raise CheckpointError(f"{path}: not a regular file, not a {what}")
    return st


def _kind(path, name=None):
    """'h5' or 'keras' from the file's bytes; CheckpointError for anything else."""
    name = name or path
    st = os.stat(path) if name != path else regular_file(path)
    if st.st_size == 0:
        raise CheckpointError(f"{name}: empty file, not a checkpoint")
    try:
        hdf5, zipped = h5py.is_hdf5(path), zipfile.is_zipfile(path)
    except OSError as e:
        raise CheckpointError(f"{name}: cannot read checkpoint ({e})") from None
    if hdf5 and zipped:
        # Keras picks the reader by the file name, so convzoo would check one file and Keras load another
        _refuse(name, "the file is both HDF5 and zip (a polyglot file)",
                "convzoo would check one and Keras load the other")
    if hdf5:
        return "h5"
    if zipped:
        return "keras"
    raise CheckpointError(f"{name}: not a Keras checkpoint (neither HDF5 .h5 nor zip .keras), "
                          "or the file is truncated")


def _keras_kind(path):
    """The reader keras.saving.load_model picks for this name (it goes by the suffix)."""
    if path.endswith(".keras"):
        return "keras"
    if path.endswith((".h5", ".hdf5")):
        return "h5"
    return None


def _read_entry(z, entry, name):
    """A small zip entry's bytes, read no further than MAX_ENTRY (a zip bomb stops there)."""
    with z.open(entry) as f:
        data = f.read(MAX_ENTRY + 1)
    if len(data) > MAX_ENTRY:
        _refuse(name, f"zip entry '{entry}' is over {MAX_ENTRY // 2**20} MB", "a config takes a few KB")
    return data


def _plan(config, name, size=0):
    return safeload.plan_config(config, name, size) if config is not None else None


def _open_zip(path, name):
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        if len(names) != len(set(names)):
            _refuse(name, "the zip holds the same entry twice", ZIP_LAYOUT)
        if "config.json" not in names:
            raise CheckpointError(f"{name}: zip file without config.json, not a .keras model")
        extra = sorted(set(names) - ZIP_ENTRIES)
        if extra:  # Keras extracts a zip with extra entries (assets) to disk
            _refuse(name, f"unexpected zip entry '{_short(extra[0])}'", ZIP_LAYOUT)
        meta = json.loads(_read_entry(z, META_ENTRY, name)) if META_ENTRY in names else None
        text = _read_entry(z, "config.json", name)
        config = json.loads(text)
        if not isinstance(config, dict):
            raise CheckpointError(f"{name}: config.json is not a JSON object")
        compile_config = config.pop("compile_config", None)
        check_config(config, name)  # the allowlist first: sizing reads only classes it knows
        if compile_config:
            check_config(compile_config, name)
        plan = _plan(config, name, len(text))
        if "model.weights.h5" in names:
            safeload.check_zip_weights(z.getinfo("model.weights.h5"), plan, name)
            with z.open("model.weights.h5") as inner, h5py.File(inner, "r") as f:
                _check_hdf5(f, name, plan)
        return meta, config, compile_config, plan


def _open_parts(path, name=None):
    """(meta, model config, training config, safeload.Plan) without deserializing anything."""
    name = name or path
    try:
        if _kind(path, name) == "h5":
            with h5py.File(path, "r") as f:
                meta, config = _json_attr(f, META_ATTR, name), _json_attr(f, "model_config", name)
                training = _json_attr(f, "training_config", name)
                for part in (config, training):
                    if part:  # the allowlist first: sizing reads only classes it knows
                        check_config(part, name)
                plan = _plan(config, name)
                _check_hdf5(f, name, plan)
                return meta, config, training, plan
        return _open_zip(path, name)
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 -- h5py, zipfile, zlib and json raise many types on damaged bytes
        raise _unreadable(name, e) from None


def _unreadable(path, e, what="checkpoint"):
    if isinstance(e, RecursionError):
        return CheckpointError(f"{path}: cannot read {what} (JSON nested too deeply)")
    msg = str(e).splitlines()[0] if str(e) else ""
    return CheckpointError(f"{path}: cannot read {what} ({type(e).__name__}: {msg})")


USE_FIELDS = ("dataset", "classes", "input_shape", "preprocess", "head")  # what predict and evaluate use


def check_meta(meta, path, need=()):
    """The one metadata checker: the fields predict and evaluate use, when present, have sane types
    and sizes, and every field in `need` (e.g. USE_FIELDS) is there; CheckpointError otherwise."""
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: convzoo metadata is not a JSON object")

    def bad(field, why):
        raise CheckpointError(f"{path}: metadata field '{field}' {why}")

    for field in ("dataset", "model"):
        if field in meta and not isinstance(meta[field], str):
            bad(field, "is not a string")
    if "classes" in meta:
        classes = meta["classes"]
        if not (isinstance(classes, list) and 0 < len(classes) <= 100_000
                and all(isinstance(c, str) for c in classes)):
            bad("classes", "is not a list of class names")
    if "input_shape" in meta:
        shape = meta["input_shape"]
        if not (isinstance(shape, list) and len(shape) == 3
                and all(type(n) is int for n in shape)  # noqa: E721 -- bool is an int
                and 1 <= shape[0] <= MAX_SIDE and 1 <= shape[1] <= MAX_SIDE and shape[2] in (1, 3)):
            bad("input_shape", f"is not [height, width, 1 or 3] with sides up to {MAX_SIDE}")
    if "head" in meta and meta["head"] not in HEADS:
        bad("head", f"is not one of {', '.join(HEADS)}")
    if "preprocess" in meta and not isinstance(meta["preprocess"], dict):
        bad("preprocess", "is not a JSON object")
    missing = [k for k in need if k not in meta]
    if missing:
        raise CheckpointError(f"{path}: convzoo metadata lacks {', '.join(missing)}; "
                              "retrain or re-save the model with convzoo")
    return meta


def check_model(meta, inputs, units, path):
    """The one check that a model (Keras checkpoint or LiteRT) fits its metadata: its input shape
    (without the batch; None: not known yet) is meta's input_shape, which predict resizes to, and
    its head names its `units` outputs: sigmoid 1 unit and 2 classes, softmax and logits one unit
    per class, as every model the zoo builds."""
    want = tuple(meta["input_shape"]) if "input_shape" in meta else None
    if want and inputs is not None and (len(inputs) != len(want) or
                                        any(h is not None and h != w for h, w in zip(inputs, want))):
        raise CheckpointError(f"{path}: metadata says input {want} but the model takes {inputs}")
    if "classes" not in meta or "head" not in meta:
        return
    head, n = meta["head"], len(meta["classes"])
    if units != heads.units(head, n) or (head == "sigmoid" and n != 2):
        want = "1 output and 2 classes" if head == "sigmoid" else f"{n} outputs, one per class"
        raise CheckpointError(f"{path}: the model has {units} outputs but the metadata names {n} "
                              f"classes; a {head} head needs {want}")


def read_meta(path, need=()):
    """convzoo's metadata dict (no TensorFlow needed), checked by check_meta; CheckpointError if absent."""
    path = os.fspath(path)
    return _need_meta(_open_parts(path)[0], path, need)


def _need_meta(meta, path, need=()):
    if meta is None:
        raise CheckpointError(f"{path}: a Keras model without convzoo metadata "
                              "(dataset, class names, preprocessing); train it with convzoo")
    return check_meta(meta, path, need)


def load(path, need=()):
    """(keras model, meta): the file copied once to a private folder, the copy sized and
    allowlist-checked, then loaded by Keras with safe_mode=True and compile=False; the metadata
    checked by check_meta (with `need`) and check_model."""
    path = os.fspath(path)
    with safeload.private_copy(path, "checkpoint") as copy:
        kind = _kind(copy, path)
        if _keras_kind(path) != kind:
            raise CheckpointError(f"{path}: {'an HDF5' if kind == 'h5' else 'a zip'} checkpoint must be named "
                                  f"*{'.h5' if kind == 'h5' else '.keras'} (Keras picks its reader by the name)")
        meta, config, training, plan = _open_parts(copy, path)
        if config is None:
            raise CheckpointError(f"{path}: no model config stored (a weights-only file?)")
        meta = _need_meta(meta, path, need)
        check_model(meta, None, plan.output_shape[-1], path)
        from convzoo import backend

        keras = backend.load()
        target = copy + "." + kind  # Keras picks its reader by the suffix
        os.rename(copy, target)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = keras.saving.load_model(target, compile=False, safe_mode=True)
        except Exception as e:  # Keras raises many types for a damaged file
            raise CheckpointError(f"{path}: cannot load model ({type(e).__name__}: "
                                  f"{str(e).splitlines()[0] if str(e) else ''})") from None
    have = tuple(getattr(model, "input_shape", (None,))[1:])
    check_model(meta, have if len(have) == 3 else None, getattr(model, "output_shape", (None, None))[-1], path)
    model.convzoo_batch = safeload.batch_size(plan.image_bytes)
    return model, meta


def save(model, path, meta):
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
            model.save(tmp, include_optimizer=False)  # Keras' .h5 default is True
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
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 -- damaged HDF5
        raise _unreadable(path, e, "weights file") from None
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
