"""Export a checkpoint for serving: a TensorFlow SavedModel folder, a LiteRT .tflite or an ONNX file.

Each artifact carries the checkpoint's metadata (class names, input shape, preprocessing, head):
a .tflite in its flatbuffer metadata entry `convzoo`, an .onnx in its `metadata_props` under the
key `convzoo`, a SavedModel in `convzoo.json` inside its folder. Rescaling is part of the model,
so every format takes float32 NHWC input holding 0..255 pixel values, as the .h5 does.

Before an artifact takes its place it is scored against the .h5 on the dataset's test images; a
float export whose probabilities differ by more than TOLERANCE is not written.
"""
import datetime
import json
import os
import warnings

import numpy as np

from convzoo import __version__
from convzoo.errors import ConvzooError, DataError, unknown

# a new format: a line in each of these (its suffix, what it is, its packages, where the metadata goes)
# and a writer _write_NAME below; the CLI's --format help is built from them
FORMATS = {"savedmodel": "_savedmodel", "tflite": ".tflite", "onnx": ".onnx"}  # name -> output suffix
TITLES = {"savedmodel": "SavedModel folder (TF Serving)", "tflite": "LiteRT .tflite", "onnx": "ONNX"}
ALIASES = {"litert": "tflite", "tf_saved_model": "savedmodel", "saved_model": "savedmodel"}  # Keras' names
NEEDS = {"savedmodel": (), "tflite": ("ai_edge_litert",), "onnx": ("onnx", "onnxruntime", "tf2onnx")}
TOLERANCE = 1e-4  # largest |probability difference| a float export may show against the .h5
SAVEDMODEL_META = "convzoo.json"
WHERE = {"tflite": "the flatbuffer metadata entry 'convzoo'", "onnx": "metadata_props['convzoo']",
         "savedmodel": f"{SAVEDMODEL_META} in the folder"}


def check_format(fmt):
    """The canonical format name; UnknownName with the nearest names otherwise."""
    fmt = ALIASES.get(fmt.lower(), fmt.lower())
    if fmt not in FORMATS:
        raise unknown("export format", fmt, list(FORMATS))
    return fmt


def default_output(path, fmt):
    """Beside the checkpoint: X.tflite, X.onnx, X_savedmodel/."""
    return os.path.splitext(os.fspath(path))[0] + FORMATS[fmt]


def _check_output(output, fmt, overwrite):
    from convzoo.fileio import check_output

    output = os.fspath(output)
    if fmt == "savedmodel":
        output = check_output(output, overwrite, is_folder=True)
        # --overwrite replaces a SavedModel, never some other folder the name happens to give
        if os.path.isdir(output) and not os.path.isfile(os.path.join(output, "saved_model.pb")):
            raise ConvzooError(f"{output} is a folder but not a SavedModel; give a new folder name")
        return output
    if not output.lower().endswith(FORMATS[fmt]):
        raise ConvzooError(f"--output for --format {fmt} must end in {FORMATS[fmt]}: {output}")
    return check_output(output, overwrite)


def _require(fmt):
    import importlib.util

    missing = [m for m in NEEDS[fmt] if importlib.util.find_spec(m) is None]
    if missing:
        names = " ".join(m.replace("_", "-") for m in missing)
        raise ConvzooError(f"--format {fmt} needs {', '.join(missing)}: pip install {names} "
                           "(or pip install 'convzoo[export]')")


def _test_images(meta, data_dir, limit):
    """(x, y, None) from the checkpoint's test set, or (None, None, reason) when it is not there."""
    from convzoo import data as catalog
    from convzoo.data import store
    from convzoo.errors import UnknownName

    try:
        root = store.data_dir(data_dir)
        x, y = store.load(meta["dataset"], root, "test")
        x, y = store.subset(x, y, limit, catalog.get(meta["dataset"], root))  # as train --limit takes
    except (DataError, UnknownName) as e:
        return None, None, str(e)
    return x, np.asarray(y, int), None


# ---------------------------------------------------------------- writers: model -> file, with metadata
def _write_tflite(model, tmp, meta):
    import tensorflow as tf

    from convzoo import litert

    # builtin ops only: a model needing TensorFlow ("Flex") ops would not run on plain LiteRT
    model.export(tmp, format="litert", verbose=False,
                 target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]})
    with open(tmp, "rb") as f:
        content = f.read()
    with open(tmp, "wb") as f:
        f.write(litert.add_meta(content, meta))


def _write_tflite_int8(model, tmp, meta, calibration):
    """Post-training int8: weights and activations in int8 (every op, TFLITE_BUILTINS_INT8), the
    ranges measured on `calibration` (training images); float32 0..255 in and out as the float model."""
    import tensorflow as tf

    from convzoo import litert

    def representative():
        for img in calibration:
            yield [img[None].astype(np.float32)]

    from convzoo.backend import quiet_stderr

    with quiet_stderr():  # the quantizer's "fully_quantize: 0, inference_type: 6, ..." line
        model.export(tmp, format="litert", verbose=False, optimizations=[tf.lite.Optimize.DEFAULT],
                     representative_dataset=representative,
                     target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]})
    with open(tmp, "rb") as f:
        content = f.read()
    with open(tmp, "wb") as f:
        f.write(litert.add_meta(content, meta))


def _calibration(meta, data_dir, count, seed=0):
    """`count` training images, drawn with a fixed seed: the representative set for int8 ranges."""
    from convzoo.data import store

    try:
        x, _ = store.load(meta["dataset"], store.data_dir(data_dir), "train")
    except DataError as e:
        raise ConvzooError(f"--quantize int8 measures activation ranges on training images: {e}") from None
    pick = np.random.default_rng(seed).choice(len(x), size=min(count, len(x)), replace=False)
    return x[np.sort(pick)]


def _erf_gelu(model):
    """The same model with exact GELU written with erf: TensorFlow's uses erfc, which tf2onnx emits
    as an Erfc node that ONNX does not have (the air nets' export failed with INVALID_GRAPH)."""
    import keras
    import tensorflow as tf

    def gelu(x):
        return 0.5 * x * (1.0 + tf.math.erf(x * 0.7071067811865476))

    def is_gelu(layer):
        return isinstance(layer, keras.layers.Activation) and getattr(layer.activation, "__name__", "") == "gelu"

    def swap(layer):
        if is_gelu(layer):
            return keras.layers.Activation(gelu, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    if not any(is_gelu(layer) for layer in model.layers):
        return model
    clone = keras.models.clone_model(model, clone_function=swap)
    clone.set_weights(model.get_weights())
    return clone


def _write_onnx(model, tmp, meta):
    import onnx

    model = _erf_gelu(model)
    model(np.zeros((1, *meta["input_shape"]), np.float32))  # Keras exports to ONNX only a model once called
    model.export(tmp, format="onnx", verbose=False)
    proto = onnx.load(tmp)
    entry = proto.metadata_props.add()
    entry.key, entry.value = "convzoo", json.dumps(meta)
    onnx.save(proto, tmp)


def _write_savedmodel(model, tmp, meta):
    model.export(tmp, format="tf_saved_model", verbose=False)
    with open(os.path.join(tmp, SAVEDMODEL_META), "w", encoding="utf-8") as f:
        json.dump(meta, f)


# ---------------------------------------------------------------- readers: file -> (run, metadata, input)
def _open_tflite(path):
    from convzoo import litert

    runner = litert.Runner(path)
    return runner, runner.meta, np.dtype(runner.dtype).name


def _open_onnx(path):
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    meta = json.loads(session.get_modelmeta().custom_metadata_map["convzoo"])
    dtype = {"tensor(float)": "float32", "tensor(uint8)": "uint8"}.get(inp.type, inp.type)
    return (lambda x: session.run(None, {inp.name: x.astype(dtype)})[0]), meta, dtype


def _open_savedmodel(path):
    import tensorflow as tf

    serve = tf.saved_model.load(path).signatures["serving_default"]
    spec = next(iter(serve.structured_input_signature[1].values()))
    with open(os.path.join(path, SAVEDMODEL_META), encoding="utf-8") as f:
        meta = json.load(f)

    def run(x):
        out = serve(tf.constant(x, dtype=spec.dtype))
        return next(iter(out.values())).numpy()

    return run, meta, spec.dtype.name


WRITERS = {"tflite": _write_tflite, "onnx": _write_onnx, "savedmodel": _write_savedmodel}
READERS = {"tflite": _open_tflite, "onnx": _open_onnx, "savedmodel": _open_savedmodel}


def _chunked(run, x, batch_size=256):
    return np.concatenate([np.asarray(run(x[i:i + batch_size])) for i in range(0, len(x), batch_size)])


def compare(p_ref, p_exp, y):
    """Accuracy of both, agreement of their top-1 predictions, max |probability difference|."""
    top_ref, top_exp = p_ref.argmax(axis=1), p_exp.argmax(axis=1)
    return {"n": int(len(y)), "accuracy": round(float((top_exp == y).mean()), 6),
            "accuracy_h5": round(float((top_ref == y).mean()), 6),
            "agreement": round(float((top_ref == top_exp).mean()), 6),
            "max_abs_diff": float(np.abs(p_ref - p_exp).max())}


QUANTIZE = ("int8",)
MARGIN = 1.0  # accuracy points an int8 export may lose against the .h5 on the test images
CALIBRATION = 500  # training images the int8 ranges are measured on


def export(path, fmt, output=None, overwrite=False, data_dir=None, limit=1000, log=None,
           quantize=None, margin=MARGIN):
    """Write CHECKPOINT in `fmt` with its metadata, checked against the .h5 first; a result dict.
    quantize="int8" (tflite only): checked on accuracy instead, refused beyond `margin` points."""
    from convzoo import checkpoint
    from convzoo.fileio import atomic_folder, atomic_path
    from convzoo.predict import probabilities, run_model

    log = log or (lambda msg: None)
    fmt = check_format(fmt)
    path = os.fspath(path)
    meta = checkpoint.read_meta(path, need=checkpoint.USE_FIELDS)
    if quantize and (quantize not in QUANTIZE or fmt != "tflite"):
        raise ConvzooError(f"--quantize {quantize}: only int8, with --format tflite")
    default = default_output(path, fmt)
    if quantize:
        default = default[:-len(".tflite")] + f"_{quantize}.tflite"
    output = _check_output(output or default, fmt, overwrite)
    _require(fmt)
    x, y, skipped = _test_images(meta, data_dir, limit)
    if quantize and x is None:
        raise ConvzooError(f"--quantize {quantize} is checked on the test images and they are not there "
                           f"({skipped}); give --data-dir")
    calibration = _calibration(meta, data_dir, CALIBRATION) if quantize else None
    model, meta = checkpoint.load(path)
    from convzoo.fileio import sha256

    # the checkpoint's hash lets predict tell a LiteRT twin made from this very file from a stale one
    carried = dict(meta, export={"format": fmt, "from": os.path.basename(path), "sha256": sha256(path),
                                 "convzoo": __version__,
                                 "date": datetime.date.today().isoformat(),
                                 "input": "float32 NHWC holding 0..255 (Rescaling is in the model)"})
    if quantize:
        carried["export"].update(quantize=quantize, calibration=f"{len(calibration)} {meta['dataset']} "
                                                                 "training images, seed 0")
    result = {"checkpoint": path, "output": output, "format": fmt, "metadata": WHERE[fmt],
              "dataset": meta["dataset"], "check": None, "skipped": None}
    staging = atomic_folder(output) if fmt == "savedmodel" else atomic_path(output)
    with staging as tmp:
        log(f"exporting {path} as {fmt}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if quantize:
                    _write_tflite_int8(model, tmp, carried, calibration)
                else:
                    WRITERS[fmt](model, tmp, carried)
                run, stored, dtype = READERS[fmt](tmp)
        except ConvzooError:
            raise
        except Exception as e:  # noqa: BLE001 -- converters raise many types
            msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise ConvzooError(f"{fmt} export of {path} failed ({type(e).__name__}: {msg[:200]})") from None
        if stored.get("classes") != meta["classes"] or stored.get("preprocess") != meta["preprocess"]:
            raise ConvzooError(f"{fmt} export of {path}: the metadata did not survive the round trip")
        result["input"] = f"{dtype} (n, {', '.join(map(str, meta['input_shape']))}) holding 0..255"
        if x is None:
            result["skipped"] = skipped
        else:
            log(f"self-check on {len(x)} {meta['dataset']} test images")
            result["check"] = check = compare(run_model(model, x, meta["head"]),
                                              probabilities(_chunked(run, x), meta["head"]), y)
            if quantize:
                result["quantize"], result["margin"] = quantize, margin
                lost = 100 * (check["accuracy_h5"] - check["accuracy"])
                if lost > margin:
                    raise ConvzooError(f"the {quantize} export of {path} scores {100 * check['accuracy']:.2f}% "
                                       f"on {check['n']} test images against {100 * check['accuracy_h5']:.2f}% "
                                       f"for the checkpoint: {lost:.2f} points lost, over the {margin:g}-point "
                                       "margin (--margin); nothing written")
            elif check["max_abs_diff"] > TOLERANCE:
                raise ConvzooError(f"the {fmt} export of {path} differs from the checkpoint by up to "
                                   f"{check['max_abs_diff']:.2g} in probability on {check['n']} test "
                                   f"images (limit {TOLERANCE:.0e}); nothing written")
    result["bytes"] = _size(output)
    return result


def _size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def format_text(r):
    """What `convzoo export` prints."""
    lines = [f"wrote {r['output']} ({r['format']}, {r['bytes'] / 2**20:.2f} MB); input {r['input']}; "
             f"class names and preprocessing in {r['metadata']}"]
    c = r["check"]
    if c and r.get("quantize"):
        lines.append(f"self-check on {c['n']} {r['dataset']} test images: accuracy {r['quantize']} "
                     f"{c['accuracy']:.4f}, float (h5) {c['accuracy_h5']:.4f} "
                     f"({100 * (c['accuracy'] - c['accuracy_h5']):+.2f} points; margin {r['margin']:g}); "
                     f"top-1 agreement {100 * c['agreement']:.2f}%; max |probability difference| "
                     f"{c['max_abs_diff']:.2g}")
    elif c:
        lines.append(f"self-check on {c['n']} {r['dataset']} test images: accuracy {r['format']} "
                     f"{c['accuracy']:.4f}, h5 {c['accuracy_h5']:.4f}; top-1 agreement "
                     f"{100 * c['agreement']:.2f}%; max |probability difference| {c['max_abs_diff']:.2g} "
                     f"(limit {TOLERANCE:.0e})")
    else:
        lines.append(f"self-check skipped ({r['skipped']}); give --data-dir to check the export")
    return "\n".join(lines)
