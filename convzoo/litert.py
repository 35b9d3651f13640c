"""LiteRT (.tflite) models: convzoo's metadata inside the flatbuffer, and a small batch runner.

numpy and ai-edge-litert only: predicting with a .tflite never imports TensorFlow or Keras. The
checkpoint's metadata is stored as JSON in the flatbuffer's `metadata` list under the name
`convzoo`, the list where the converter keeps `min_runtime_version`.
"""
import json
import os

import numpy as np

from convzoo.backend import quiet_stderr
from convzoo.errors import CheckpointError, ConvzooError

META_NAME = "convzoo"
MAX_META = 16 * 2**20  # the metadata JSON: a few KB in practice
INSTALL = "pip install ai-edge-litert"


def _schema():
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:
        raise ConvzooError(f"reading .tflite models needs ai-edge-litert: {INSTALL}") from None
    return schema_py_generated


def add_meta(content, meta):
    """The .tflite bytes with `meta` stored as JSON in the flatbuffer metadata entry `convzoo`."""
    schema = _schema()
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = META_NAME, len(model.buffers) - 1
    model.metadata = (model.metadata or []) + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read_meta(content, path):
    """The convzoo metadata dict stored in a .tflite's bytes; CheckpointError if absent or bad."""
    if content[4:8] != b"TFL3":
        raise CheckpointError(f"{path}: not a LiteRT (.tflite) model")
    schema = _schema()
    raw = None
    try:
        model = schema.Model.GetRootAs(content, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() != META_NAME.encode():
                continue
            buf = model.Buffers(entry.Buffer())
            if buf.Offset() > 1:  # data kept after the flatbuffer (models over 2 GB)
                size = buf.Size()
                raw = content[buf.Offset():buf.Offset() + size] if size <= MAX_META else None
            elif buf.DataLength() <= MAX_META:
                raw = buf.DataAsNumpy().tobytes()
            if raw is None:
                raise CheckpointError(f"{path}: convzoo metadata over {MAX_META // 2**20} MB")
            meta = json.loads(raw.decode("utf-8"))
            break
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 -- flatbuffers and json raise many types on damaged bytes
        raise CheckpointError(f"{path}: cannot read LiteRT model ({type(e).__name__})") from None
    if raw is None:
        raise CheckpointError(f"{path}: a .tflite without convzoo metadata (class names, preprocessing); "
                              "write it with `convzoo export CHECKPOINT --format tflite`")
    from convzoo import checkpoint

    return checkpoint.check_meta(meta, path, need=checkpoint.USE_FIELDS)


def _read(path):
    from convzoo import safeload

    return safeload.read_once(path, safeload.MAX_TFLITE, "model")  # one open, fstat-checked, one read


class Runner:
    """A LiteRT interpreter for a convzoo .tflite: uint8 NHWC batches in, raw model outputs out."""

    def __init__(self, path, batch_size=256):
        path = os.fspath(path)
        content = _read(path)
        self.meta = read_meta(content, path)
        from convzoo import safeload

        plan = safeload.check_tflite(content, path)  # custom ops, control flow, sizes: before the interpreter
        batch_size = min(batch_size, safeload.batch_size(plan.image_bytes))
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ConvzooError(f"running .tflite models needs ai-edge-litert: {INSTALL}") from None
        try:
            self.interpreter = Interpreter(model_content=content)
            with quiet_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise CheckpointError(f"{path}: cannot load LiteRT model ({str(e).splitlines()[0]})") from None
        inp, out = self.interpreter.get_input_details()[0], self.interpreter.get_output_details()[0]
        self.input, self.output, self.dtype = inp["index"], out["index"], inp["dtype"]
        from convzoo import checkpoint

        checkpoint.check_model(self.meta, tuple(int(n) for n in inp["shape"][1:]), int(out["shape"][-1]), path)
        self.batch_size = batch_size
        self.batch = int(inp["shape"][0])

    def _resize(self, n):
        """Make the input take n images; False if the interpreter cannot."""
        if n == self.batch:
            return True
        try:
            self.interpreter.resize_tensor_input(self.input, [n, *self.meta["input_shape"]])
            with quiet_stderr():
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError):
            return False
        self.batch = n
        return True

    def __call__(self, x):
        """Raw outputs (n, units) for a batch of images holding 0..255 values."""
        outs, i, step = [], 0, self.batch_size
        while i < len(x):
            chunk = np.ascontiguousarray(x[i:i + step], dtype=self.dtype)
            if not self._resize(len(chunk)):
                if step == 1:
                    raise CheckpointError("the LiteRT model does not take one image at a time")
                step = 1  # the batch dimension is fixed: image by image
                continue
            self.interpreter.set_tensor(self.input, chunk)
            self.interpreter.invoke()
            outs.append(self.interpreter.get_tensor(self.output))
            i += len(chunk)
        return np.concatenate(outs) if outs else np.zeros((0, 0))
