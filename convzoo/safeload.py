"""Budgets for model files from strangers, checked before Keras or LiteRT builds anything.

A model config is sized layer by layer (parameters, the largest activation per image) and refused
with the numbers when it would not fit; an HDF5 file's links are walked with a bound on their count
and time, and every dataset's declared size is held against what the file stores and what the
config needs; a .keras entry's inflated size is checked before it is read. Checks and loads use one
private copy of the file (`private_copy`), so the file checked is the file loaded.
"""
import contextlib
import math
import os
import resource
import shutil
import stat
import tempfile
import time

from convzoo.errors import CheckpointError

MAX_WEIGHT_BYTES = 2 * 2**30  # model weights (float32); convzoo's largest model needs 60 MB
MAX_IMAGE_BYTES = 256 * 2**20  # activations per image: the largest layer's input + output, float32
ACTIVATION_BUDGET = 1 * 2**30  # activations per batch: predict and evaluate size their batches to it
MAX_INPUT_PIXELS = 2048 * 2048  # model input side: predict resizes every image to it
MAX_LAYERS = 1_000  # convzoo's deepest model has about 40
MAX_CONFIG = 4 * 2**20  # a model config is a few KB; VGG16's about 30 KB
MAX_DEPTH = 64  # JSON nesting of a config
MAX_LINKS = 5_000  # HDF5 links in a checkpoint; convzoo's have about 100
WALK_SECONDS = 10.0  # CPU seconds: the HDF5 walk stops here whatever the count (a busy machine does not count)
MAX_DIM = 2**31 - 1
COMPRESSION = 8  # a dataset may store 1/8 of what it declares (gzip); a bomb stores nothing
SLACK_VALUES = 4096  # per layer: seed generator states and counters beside the weights


def refuse(name, what, why):
    raise CheckpointError(f"{name}: refused: {what}; {why}")


def _mb(n):
    return f"{n / 2**20:,.0f} MB" if n >= 2**20 else f"{n:,} bytes"


def weight_budget():
    """Bytes of weights this process may load: MAX_WEIGHT_BYTES, a quarter of RAM, half an rlimit."""
    limits = [MAX_WEIGHT_BYTES]
    try:
        limits.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4)
    except (ValueError, OSError, AttributeError):
        pass
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    if soft != resource.RLIM_INFINITY:
        limits.append(soft // 2)
    return min(limits)


def batch_size(image_bytes, most=256):
    """Images per batch so that the activations stay within ACTIVATION_BUDGET."""
    return max(1, min(most, ACTIVATION_BUDGET // max(image_bytes, 1)))


# ------------------------------------------------------------------ the config, layer by layer
class Plan:
    """What a model config needs: parameters, bytes per image, layers, input and output shapes."""

    def __init__(self):
        self.params, self.image_bytes, self.layers = 0, 0, 0
        self.input_shape = self.output_shape = None


def _int(value, name, what, low=1):
    if type(value) is not int or not low <= value <= MAX_DIM:  # noqa: E721 -- bool is an int
        refuse(name, f"{what} is {_short(value)}", "not a size")
    return value


def _pair(value, name, what, low=1):
    if type(value) is int:  # noqa: E721
        value = [value, value]
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        refuse(name, f"{what} is {_short(value)}", "not a pair of sizes")
    return [_int(v, name, what, low) for v in value]


def _short(value):
    text = "".join(c if c.isprintable() else "?" for c in str(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _spatial(size, kernel, stride, padding, dilation, name):
    span = (kernel - 1) * dilation + 1
    if padding == "same":
        return -(-size // stride)
    if padding == "valid":
        if size < span:
            refuse(name, f"a window of {span} on a side of {size}", "the layer has no output")
        return (size - span) // stride + 1
    refuse(name, f"padding '{_short(padding)}'", "convzoo reads 'same' or 'valid'")


def _channels_last(cfg, name, cls):
    fmt = cfg.get("data_format", "channels_last")
    if fmt not in (None, "channels_last"):
        refuse(name, f"{cls} with data_format '{_short(fmt)}'", "convzoo builds channels_last models")


def _need_rank(shape, rank, name, cls):
    if len(shape) != rank:
        refuse(name, f"{cls} on an input of shape {tuple(shape)}", "the layer cannot take it")


def _scalar(value):
    return type(value) in (int, float)  # noqa: E721 -- not bool, not a list


def _layer(cls, cfg, shape, name):
    """(output shape, parameter count) of one layer on an input shape (no batch axis)."""
    c = shape[-1] if shape else 1
    if cls in ("Dropout", "Activation", "RandomRotation", "RandomTranslation", "RandomZoom", "RandomFlip",
               "RandomShear", "SpatialDropout2D", "GaussianNoise", "ReLU", "Softmax"):
        return shape, 0
    if cls == "Rescaling":
        for key in ("scale", "offset"):
            if key in cfg and not _scalar(cfg[key]):
                refuse(name, f"Rescaling {key} {_short(cfg[key])}", "convzoo rescales by one number")
        return shape, 0
    if cls in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
        _channels_last(cfg, name, cls)
        _need_rank(shape, 3, name, cls)
        kh, kw = _pair(cfg.get("kernel_size"), name, f"{cls} kernel_size")
        sh, sw = _pair(cfg.get("strides", 1), name, f"{cls} strides")
        dh, dw = _pair(cfg.get("dilation_rate", 1), name, f"{cls} dilation_rate")
        if cfg.get("groups", 1) != 1:
            refuse(name, f"{cls} with groups {_short(cfg.get('groups'))}", "convzoo builds groups=1")
        h = _spatial(shape[0], kh, sh, cfg.get("padding", "valid"), dh, name)
        w = _spatial(shape[1], kw, sw, cfg.get("padding", "valid"), dw, name)
        bias = bool(cfg.get("use_bias", True))
        if cls == "Conv2D":
            f = _int(cfg.get("filters"), name, "Conv2D filters")
            return (h, w, f), kh * kw * c * f + f * bias
        mult = _int(cfg.get("depth_multiplier", 1), name, f"{cls} depth_multiplier")
        if cls == "DepthwiseConv2D":
            return (h, w, c * mult), kh * kw * c * mult + c * mult * bias
        f = _int(cfg.get("filters"), name, "SeparableConv2D filters")
        return (h, w, f), kh * kw * c * mult + c * mult * f + f * bias
    if cls in ("MaxPooling2D", "AveragePooling2D"):
        _channels_last(cfg, name, cls)
        _need_rank(shape, 3, name, cls)
        ph, pw = _pair(cfg.get("pool_size", 2), name, f"{cls} pool_size")
        strides = cfg.get("strides")
        sh, sw = _pair(strides if strides is not None else [ph, pw], name, f"{cls} strides")
        pad = cfg.get("padding", "valid")
        return (_spatial(shape[0], ph, sh, pad, 1, name), _spatial(shape[1], pw, sw, pad, 1, name), c), 0
    if cls in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        _channels_last(cfg, name, cls)
        _need_rank(shape, 3, name, cls)
        return ((1, 1, c) if cfg.get("keepdims") else (c,)), 0
    if cls == "Flatten":
        return (math.prod(shape),), 0
    if cls == "Dense":
        units = _int(cfg.get("units"), name, "Dense units")
        return (*shape[:-1], units), c * units + units * bool(cfg.get("use_bias", True))
    if cls == "BatchNormalization":
        if cfg.get("axis", -1) not in (-1, len(shape), [-1], [len(shape)]):
            refuse(name, f"BatchNormalization over axis {_short(cfg.get('axis'))}", "convzoo normalizes channels")
        # moving mean and variance, plus gamma (scale) and beta (center) unless turned off
        return shape, c * (2 + bool(cfg.get("scale", True)) + bool(cfg.get("center", True)))
    refuse(name, f"layer class '{_short(cls)}' that convzoo cannot size",
           "add its rule to safeload._layer before allowing it")


def _input_shape(cfg, name):
    shape = cfg.get("batch_shape", cfg.get("batch_input_shape"))
    if not isinstance(shape, list) or len(shape) < 2:
        refuse(name, f"InputLayer shape {_short(shape)}", "not [batch, ...sizes]")
    return tuple(_int(n, name, "an input size") for n in shape[1:])


def _check_build(node, shape, name):
    """Keras builds a layer from its build_config: it must be the shape the layers before give it."""
    build = node.get("build_config")
    if not isinstance(build, dict) or build.get("input_shape") is None:
        return
    given = build["input_shape"]
    if not (isinstance(given, list) and len(given) >= 1 and tuple(given[1:]) == tuple(shape)):
        refuse(name, f"layer '{_short(node.get('name') or node.get('class_name'))}' is built for "
               f"{_short(given)} but its input is {tuple(shape)}", "the config contradicts itself")


def _grow(plan, shape_in, shape_out, params, name):
    plan.layers += 1
    if plan.layers > MAX_LAYERS:
        refuse(name, f"over {MAX_LAYERS:,} layers", "convzoo's models have under 100")
    plan.params += params
    if plan.params * 4 > weight_budget():
        refuse(name, f"the config declares {plan.params:,} parameters ({_mb(plan.params * 4)})",
               f"over the {_mb(weight_budget())} this machine gives a model")
    image = 4 * (math.prod(shape_in) + math.prod(shape_out))
    if image > MAX_IMAGE_BYTES:
        refuse(name, f"a layer's activations take {_mb(image)} per image (output {tuple(shape_out)})",
               f"over the {_mb(MAX_IMAGE_BYTES)} limit")
    plan.image_bytes = max(plan.image_bytes, image)


def _model(node, shape, plan, name):
    """Walk a Sequential or Functional config from `shape` (None: its InputLayer says); output shape."""
    cls = node.get("class_name")
    cfg = node.get("config")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("layers"), list):
        refuse(name, f"a {cls} config without a layer list", "not a Keras model config")
    if cls == "Sequential":
        for layer in cfg["layers"]:
            shape = _node(layer, shape, plan, name)
        if shape is None:
            refuse(name, "a Sequential model without an input shape", "convzoo sizes models before loading")
        return shape
    # Functional: layers in order, each fed by the layer its first inbound tensor names
    shapes = {}
    for layer in cfg["layers"]:
        if not isinstance(layer, dict):
            refuse(name, "a layer that is not a JSON object", "not a Keras model config")
        if layer.get("class_name") == "InputLayer":
            src = shape
        else:
            src = shapes.get(_inbound(layer, name))
            if src is None:
                refuse(name, f"layer '{_short(layer.get('name'))}' fed by an unknown layer",
                       "not a Keras model config")
        shapes[layer.get("name")] = _node(layer, src, plan, name)
    outs = cfg.get("output_layers")
    out = outs[0] if isinstance(outs, list) and outs and isinstance(outs[0], list) else outs
    if not (isinstance(out, list) and out and out[0] in shapes):
        refuse(name, "a Functional model whose output names no layer", "not a Keras model config")
    return shapes[out[0]]


def _inbound(layer, name):
    nodes = layer.get("inbound_nodes")
    try:
        arg = nodes[0]["args"][0]
        if isinstance(arg, list):
            arg = arg[0]
        return arg["config"]["keras_history"][0]
    except (TypeError, KeyError, IndexError):
        refuse(name, f"layer '{_short(layer.get('name'))}' without a readable input", "not a Keras model config")


def _node(node, shape, plan, name):
    if not isinstance(node, dict) or not isinstance(node.get("config"), dict):
        refuse(name, "a layer that is not a JSON object", "not a Keras model config")
    cls, cfg = node.get("class_name"), node["config"]
    if cls == "InputLayer":
        given = _input_shape(cfg, name)
        if shape is not None and tuple(shape) != given:
            refuse(name, f"an input of {given} fed with {tuple(shape)}", "the config contradicts itself")
        return given
    if cls in ("Sequential", "Functional"):
        if shape is not None:
            _check_build(node, shape, name)
        return _model(node, shape, plan, name)
    if shape is None:
        refuse(name, f"layer '{_short(cfg.get('name'))}' before any input shape",
               "convzoo sizes models before loading")
    _check_build(node, shape, name)
    out, params = _layer(cls, cfg, tuple(shape), name)
    for n in out:
        _int(n, name, f"an output size of layer '{_short(cfg.get('name'))}'")
    _grow(plan, shape, out, params, name)
    return out


def _depth(config, name):
    """Nesting depth and node count of a JSON value, without recursion."""
    stack, nodes = [(config, 1)], 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            refuse(name, f"the config nests deeper than {MAX_DEPTH} levels", "a model config is shallow")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def plan_config(config, name, text_size=0):
    """Size a model config before Keras builds it: a Plan, or CheckpointError with the numbers."""
    if text_size > MAX_CONFIG:
        refuse(name, f"a model config of {_mb(text_size)}", f"over the {_mb(MAX_CONFIG)} limit")
    _depth(config, name)
    if not isinstance(config, dict) or config.get("class_name") not in ("Sequential", "Functional"):
        refuse(name, "a model config that is not a Sequential or Functional model",
               "convzoo builds Sequential models")
    plan = Plan()
    plan.output_shape = _model(config, None, plan, name)
    first = next((n for n in _walk_inputs(config)), None)
    plan.input_shape = first
    if first is not None and len(first) == 3 and first[0] * first[1] > MAX_INPUT_PIXELS:
        refuse(name, f"the model input is {first[0]}x{first[1]}x{first[2]} ({first[0] * first[1]:,} pixels)",
               f"over the {MAX_INPUT_PIXELS:,}-pixel limit (predict resizes every image to it)")
    return plan


def _walk_inputs(config):
    node = config
    while isinstance(node, dict):
        layers = node.get("config", {}).get("layers") if isinstance(node.get("config"), dict) else None
        if not layers:
            return
        first = layers[0]
        if isinstance(first, dict) and first.get("class_name") == "InputLayer":
            yield _input_shape(first["config"], "")
            return
        node = first


# ------------------------------------------------------------------ HDF5
def walk_hdf5(f, name, plan=None):
    """Refuse links to other files, virtual or external datasets, too many links (bounded in count
    and time), and datasets that declare more than they store or than the config needs."""
    import h5py

    count, declared, values = [0], [0], [0]
    start = time.thread_time()  # this thread's CPU time: waiting for a busy CPU is not the file's work
    budget = weight_budget()
    bad = []

    def visit(path, link):
        count[0] += 1
        if count[0] > MAX_LINKS:
            bad.append((f"over {MAX_LINKS:,} HDF5 links", "convzoo's checkpoints have a few hundred"))
            return True
        if time.thread_time() - start > WALK_SECONDS:
            bad.append((f"walking its HDF5 links took over {WALK_SECONDS:.0f} s", "a checkpoint is small"))
            return True
        if isinstance(link, (h5py.ExternalLink, h5py.SoftLink)):
            kind = "external" if isinstance(link, h5py.ExternalLink) else "soft"
            bad.append((f"an HDF5 {kind} link at '{_short(path)}'", "it would read other files on this computer"))
            return True
        obj = f.get(path)
        if not isinstance(obj, h5py.Dataset):
            return None
        if obj.is_virtual:
            bad.append((f"a virtual dataset at '{_short(path)}'", "it would read other files on this computer"))
            return True
        if obj.id.get_create_plist().get_external_count() > 0:
            bad.append((f"external storage at '{_short(path)}'", "it would read other files on this computer"))
            return True
        size = obj.size * obj.dtype.itemsize if obj.shape is not None else 0
        stored = obj.id.get_storage_size()
        if size > 4096 and stored * COMPRESSION < size:
            bad.append((f"dataset '{_short(path)}' declares {_mb(size)} but stores {_mb(stored)}",
                        "a weights file stores its weights"))
            return True
        declared[0] += size
        values[0] += obj.size or 0
        if declared[0] > budget:
            bad.append((f"its datasets declare {_mb(declared[0])}",
                        f"over the {_mb(budget)} this machine gives a model"))
            return True
        return None

    f.visititems_links(visit)
    if bad:
        refuse(name, *bad[0])
    if plan is not None:
        # weights, plus optimizer slots (Adam keeps two per weight), plus small states
        need = 3 * plan.params + SLACK_VALUES * (plan.layers + 1)
        if values[0] > need:
            refuse(name, f"its datasets hold {values[0]:,} values but the config has {plan.params:,} "
                   "parameters", "the file does not match its model")
    _check_weight_names(f, name)


def _check_weight_names(f, name):
    """Keras' .h5 reader loads every name in weight_names: the same dataset twice is refused."""
    group = f.get("model_weights", f)
    names = group.attrs.get("layer_names")
    if names is None:
        return
    for layer in names[:MAX_LAYERS + 1]:
        layer = layer.decode("utf-8", "replace") if isinstance(layer, bytes) else str(layer)
        g = group.get(layer)
        weights = getattr(g, "attrs", {}).get("weight_names") if g is not None else None
        if weights is None:
            continue
        listed = [w.decode("utf-8", "replace") if isinstance(w, bytes) else str(w) for w in weights]
        if len(listed) != len(set(listed)):
            refuse(name, f"layer '{_short(layer)}' lists the same weight twice", "the file does not match its model")


def check_zip_weights(info, plan, name):
    """A .keras's model.weights.h5 entry: its inflated size against the config, before reading it."""
    need = 4 * (3 * plan.params + SLACK_VALUES * (plan.layers + 1)) + 2 * 2**20
    if info.file_size > need:
        refuse(name, f"zip entry '{info.filename}' inflates to {_mb(info.file_size)}",
               f"the config's {plan.params:,} parameters need at most {_mb(need)}")


# ------------------------------------------------------------------ one file, one read
def _open_regular(path, what):
    """(fd, fstat) of the regular file at `path`, opened once and never blocking on a FIFO;
    CheckpointError for a missing file, a folder, a FIFO or a device (which would never end)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such {what} file") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read {what} ({e.strerror or e})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise CheckpointError(f"{path}: not a regular file, not a {what}")
    return fd, st


@contextlib.contextmanager
def private_copy(path, what="checkpoint", suffix=""):
    """Copy the file at `path` (opened once, fstat-checked) into a private folder; yield the copy.

    Checks and the loader then read the copy, which nobody else can change."""
    fd, st = _open_regular(path, what)
    folder = None
    try:
        limit = weight_budget() + MAX_CONFIG * 4
        if st.st_size > limit:
            refuse(path, f"a {what} of {_mb(st.st_size)}", f"over the {_mb(limit)} this machine gives a model")
        folder = tempfile.mkdtemp(prefix="convzoo-load-")
        copy = os.path.join(folder, "model" + suffix)
        with os.fdopen(os.dup(fd), "rb") as src, open(copy, "xb") as dst:
            shutil.copyfileobj(src, dst, 2**20)
            if dst.tell() > limit:
                refuse(path, f"a {what} over {_mb(limit)}", "it grew while being read")
        yield copy
    finally:
        os.close(fd)
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


def read_once(path, limit, what="model"):
    """The bytes of a regular file, opened once and fstat-checked, at most `limit` bytes."""
    fd, st = _open_regular(path, what)
    with os.fdopen(fd, "rb") as f:
        if st.st_size > limit:
            refuse(path, f"a {what} of {_mb(st.st_size)}", f"over the {_mb(limit)} limit")
        data = f.read(limit + 1)
    if len(data) > limit:
        refuse(path, f"a {what} over {_mb(limit)}", "it grew while being read")
    return data


# ------------------------------------------------------------------ LiteRT flatbuffers
MAX_TFLITE = MAX_WEIGHT_BYTES + 64 * 2**20  # the file: weights plus a flatbuffer of a few MB
MAX_OPS = 10_000  # operators; convzoo's models have under 100
# The builtin ops convzoo's exports use, and their plain neighbours: no control flow (WHILE, IF,
# CALL_ONCE run other subgraphs and can loop forever), no custom or Flex ops (code outside LiteRT).
TFLITE_OPS = {
    "ADD", "AVERAGE_POOL_2D", "CAST", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEQUANTIZE", "DIV",
    "EXP", "FULLY_CONNECTED", "GELU", "HARD_SWISH", "LOGISTIC", "MAXIMUM", "MAX_POOL_2D", "MEAN", "MINIMUM", "MUL",
    "PACK", "PAD", "PADV2", "QUANTIZE", "RELU", "RELU6", "RESHAPE", "RSQRT", "SHAPE", "SOFTMAX", "SQRT",
    "SQUARED_DIFFERENCE", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM", "TANH", "TRANSPOSE", "LEAKY_RELU",
}
# bytes per element by TensorType; anything unlisted counts 8
_TFLITE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 13: 4, 15: 4,
                 16: 2, 17: 1, 18: 1}


class TflitePlan:
    """What a .tflite needs: bytes of constants, bytes of activations per image, operators."""

    def __init__(self, weights, image_bytes, ops):
        self.weights, self.image_bytes, self.ops = weights, image_bytes, ops


def check_tflite(content, name):
    """Refuse a .tflite with custom, Flex or control-flow ops, several subgraphs, too many ops, or
    tensors over the budgets, before an interpreter is made; a TflitePlan otherwise."""
    from ai_edge_litert import schema_py_generated as schema

    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    try:
        model = schema.Model.GetRootAs(content, 0)
        if model.SubgraphsLength() != 1:
            refuse(name, f"a LiteRT model of {model.SubgraphsLength()} subgraphs",
                   "convzoo's exports have one (more means control flow)")
        kinds = []
        for i in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(i)
            op = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            kind = op_names.get(op, f"builtin op {op}")
            if kind == "CUSTOM":
                custom = (code.CustomCode() or b"").decode("utf-8", "replace")
                refuse(name, f"custom op '{_short(custom)}'", "convzoo runs only LiteRT's builtin ops")
            if kind not in TFLITE_OPS:
                refuse(name, f"op {kind}", "convzoo runs only the builtin ops of image classifiers, "
                       "no control flow")
            kinds.append(kind)
        graph = model.Subgraphs(0)
        ops = graph.OperatorsLength()
        if ops > MAX_OPS:
            refuse(name, f"{ops:,} operators", f"over the {MAX_OPS:,} limit")
        for i in range(ops):
            if graph.Operators(i).OpcodeIndex() >= len(kinds):
                refuse(name, "an operator with no op code", "a damaged LiteRT model")
        weights = activations = 0
        for i in range(graph.TensorsLength()):
            tensor = graph.Tensors(i)
            shape = [int(n) for n in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else []
            if any(n < -1 or n > MAX_DIM for n in shape):
                refuse(name, f"tensor {i} of shape {shape}", "not a size")
            size = math.prod(max(n, 1) for n in shape) * _TFLITE_BYTES.get(tensor.Type(), 8)
            buffer = tensor.Buffer()
            constant = 0 < buffer < model.BuffersLength() and (model.Buffers(buffer).DataLength() > 0
                                                              or model.Buffers(buffer).Size() > 0)
            if constant:
                weights += size
            else:
                activations += size
        budget = weight_budget()
        if weights > budget:
            refuse(name, f"its constant tensors take {_mb(weights)}", f"over the {_mb(budget)} this machine "
                   "gives a model")
        if activations > 4 * MAX_IMAGE_BYTES:
            refuse(name, f"its tensors take {_mb(activations)} per image", f"over the {_mb(4 * MAX_IMAGE_BYTES)} limit")
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 -- flatbuffers raise many types on damaged bytes
        raise CheckpointError(f"{name}: cannot read LiteRT model ({type(e).__name__})") from None
    return TflitePlan(weights, activations, ops)
