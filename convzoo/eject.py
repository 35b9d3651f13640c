"""`convzoo eject`: a zoo entry written out as one standalone keras-io-style script (plain Keras and
numpy) that loads the same files, builds the same layers, trains with the same recipe and saves an
.h5 with convzoo's metadata, so `convzoo evaluate` reads it.

The layers are generated from the built model's own configs (only arguments that differ from the
layer's defaults), so the script cannot drift from nets.py.
"""
import inspect
import os

from convzoo.errors import ConvzooError

DROP = {"name", "trainable", "dtype", "autocast", "input_shape", "batch_input_shape"}


def _value(v):
    """Python source for a config value; initializer configs become constructor calls."""
    if isinstance(v, dict) and "class_name" in v and "config" in v:
        args = ", ".join(f"{k}={_value(x)}" for k, x in v["config"].items() if x is not None)
        return f"keras.initializers.{v['class_name']}({args})"
    if isinstance(v, list):
        v = tuple(v)
    if isinstance(v, float):
        return "1 / 255" if abs(v * 255 - 1) < 1e-6 else repr(round(v, 10))
    return repr(v)


def _defaults(cls, cfg):
    """The config of a layer of this class built from only its required arguments."""
    required = [n for n, p in inspect.signature(cls.__init__).parameters.items()
                if n != "self" and p.default is inspect.Parameter.empty
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    try:
        return required, cls(**{n: cfg[n] for n in required}).get_config()
    except Exception:  # noqa: BLE001 -- a layer that cannot be built bare: emit its whole config
        return required, {}


def layer_source(layer):
    """`layers.Conv2D(32, (5, 5), padding='same', activation='relu')` for a built layer."""
    cls = type(layer)
    cfg = layer.get_config()
    required, default = _defaults(cls, cfg)
    args = [_value(cfg[n]) for n in required]
    for k, v in cfg.items():
        if k in DROP or k in required or (k in default and default[k] == v):
            continue
        args.append(f"{k}={_value(v)}")
    if layer.name.startswith(("base_", "shrink")):  # transfer: weights are copied by these names
        args.append(f"name={layer.name!r}")
    if not layer.trainable:
        args.append("trainable=False")
    return f"layers.{cls.__name__}({', '.join(args)})"


LOAD_IDX = '''
def read_idx(name):
    """One IDX file (gzipped or not) as a numpy array."""
    path = os.path.join(DATA_DIR, DATASET, name)
    path = path + ".gz" if os.path.exists(path + ".gz") else path
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(split):
    prefix = "train" if split == "train" else "t10k"
    return read_idx(f"{prefix}-images-idx3-ubyte")[..., None], read_idx(f"{prefix}-labels-idx1-ubyte")
'''

LOAD_FOLDERS = '''
def load(split):
    """DATA_DIR/DATASET/split/<class>/* images, resized to the input size, labels in CLASSES order."""
    xs, ys = [], []
    for label, name in enumerate(CLASSES):
        folder = os.path.join(DATA_DIR, DATASET, split, name)
        for f in sorted(os.listdir(folder)):
            with Image.open(os.path.join(folder, f)) as img:
                img = img.convert("RGB")
                if img.size != (INPUT_SHAPE[1], INPUT_SHAPE[0]):
                    img = img.resize((INPUT_SHAPE[1], INPUT_SHAPE[0]), Image.BILINEAR)
                xs.append(np.asarray(img, np.uint8))
            ys.append(label)
    return np.stack(xs), np.array(ys, np.uint8)
'''

FIT = '''
# ---- train with Keras fit
model.compile(optimizer=optimizer, loss=loss_fn, metrics=["accuracy"])
fit = model.fit(x_train, y_train, batch_size=BATCH_SIZE, epochs=EPOCHS,
                validation_data=(x_val, y_val), verbose=2)
history = {k: [float(v) for v in vs] for k, vs in fit.history.items()}
'''

TAPE = '''
# ---- train with a hand-written GradientTape loop (S1), not Keras fit
@tf.function
def train_step(x, y):
    with tf.GradientTape() as tape:
        logits = model(x, training=True)
        loss = loss_fn(y, logits)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss, tf.reduce_sum(tf.cast(tf.argmax(logits, -1) == tf.cast(y, tf.int64), tf.float32))


history = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
for epoch in range(EPOCHS):
    order = np.random.default_rng([SEED, epoch]).permutation(len(y_train))
    total, correct = 0.0, 0.0
    for i in range(0, len(order), BATCH_SIZE):
        batch = order[i:i + BATCH_SIZE]
        loss, right = train_step(x_train[batch], y_train[batch])
        total += float(loss) * len(batch)
        correct += float(right)
    val_logits = model.predict(x_val, batch_size=1024, verbose=0)
    history["loss"].append(total / len(order))
    history["accuracy"].append(correct / len(order))
    history["val_loss"].append(float(loss_fn(y_val, val_logits)))
    history["val_accuracy"].append(float((val_logits.argmax(-1) == y_val).mean()))
    print(f"epoch {epoch + 1}/{EPOCHS}: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in history.items()))
'''

LOSSES = {"softmax": "keras.losses.SparseCategoricalCrossentropy()",
          "logits": "keras.losses.SparseCategoricalCrossentropy(from_logits=True)",
          "sigmoid": "keras.losses.BinaryCrossentropy()"}
OPTIMIZERS = {"adam": "Adam", "rmsprop": "RMSprop", "sgd": "SGD"}


def script(name, dataset=None, weights=None):
    """The script's source text for zoo entry `name` on `dataset` (its default when None)."""
    from convzoo import data as catalog
    from convzoo import zoo

    spec = zoo.get_spec(name)
    if dataset is None and spec.datasets[0] == zoo.ANY:
        raise ConvzooError(f"{name} is built for any dataset: choose one with --dataset NAME")
    dataset = dataset or spec.datasets[0]
    if not spec.fits(dataset):
        raise ConvzooError(f"{name} is built for {', '.join(spec.datasets)}, not {dataset}")
    info = catalog.get(dataset)
    if spec.weights == "base" and not weights:
        raise ConvzooError(f"{name} starts from a convzoo checkpoint: pass --weights CHECKPOINT.h5")
    if name.startswith("vgg16"):
        weights = weights or "imagenet"
    model = zoo.build_model(name, dataset, info.input_shape, len(info.classes),
                            weights=None if name.startswith("vgg16") else weights)
    r = spec.recipe
    folders = info.loader != "mnist"
    has_val = dataset == "cats_vs_dogs"  # the textbook split (S10) ships its own validation/
    body = []
    for layer in model.layers:
        if isinstance(layer, __import__("keras").Model):  # S11's VGG16 base
            body.append("    base,")
        else:
            body.append(f"    {layer_source(layer)},")
    lines = [
        f'"""{name} on {dataset}, ejected from convzoo ({spec.source}): {spec.description}.',
        "",
        f"Run: python {name.replace('-', '_')}.py [--data-dir D] [--epochs N] [--output M.h5]",
        "then: convzoo evaluate M.h5 --data-dir D (the .h5 carries convzoo's metadata).",
        '"""',
        "import argparse",
        *(["import gzip"] if not folders else []),
        "import json",
        "import os",
        "",
        "import h5py",
        "import keras",
        "import numpy as np",
        *(["import tensorflow as tf"] if r.loop == "tape" else []),
        *(["from PIL import Image"] if folders else []),
        "from keras import layers",
        "",
        "# ---- constants: the recipe convzoo trains this model with",
        f"DATASET = {dataset!r}",
        f"CLASSES = {list(info.classes)!r}",
        f"INPUT_SHAPE = {tuple(info.input_shape)!r}",
        f"OPTIMIZER = {r.optimizer!r}",
        f"LEARNING_RATE = {r.learning_rate!r}",
        f"SCHEDULE = {r.schedule!r}  # or 'cosine': decays to 0 over the run",
        f"BATCH_SIZE = {r.batch_size}",
        f"EPOCHS = {r.epochs}",
        *([] if has_val else [f"VALIDATION_SPLIT = {r.validation_split}"]),
        "SEED = 0",
        *([f"WEIGHTS = {weights!r}"] if weights else []),
        "",
        "args = argparse.ArgumentParser(description=__doc__.splitlines()[0])",
        "args.add_argument('--data-dir', default=os.environ.get('CONVZOO_DATA', "
        "os.path.expanduser('~/.convzoo/data')))",
        "args.add_argument('--epochs', type=int, default=EPOCHS)",
        f"args.add_argument('--output', default={name + '-ejected.h5'!r})",
        "args = args.parse_args()",
        "DATA_DIR, EPOCHS = args.data_dir, args.epochs",
        "keras.utils.set_random_seed(SEED)  # Python, NumPy and TensorFlow",
        "",
        "# ---- data: the same files convzoo reads",
        (LOAD_FOLDERS if folders else LOAD_IDX).strip("\n"),
        "",
    ]
    if has_val:
        lines += ["", "x_train, y_train = load('train')", "x_val, y_val = load('validation')"]
    else:
        from convzoo.data import store

        lines += ["", inspect.getsource(store.split_indices).strip("\n"), "", "", "x_all, y_all = load('train')",
                  "train_idx, val_idx = split_indices(y_all, VALIDATION_SPLIT)",
                  "x_train, y_train = x_all[train_idx], y_all[train_idx]",
                  "x_val, y_val = x_all[val_idx], y_all[val_idx]"]
    lines += ["print(f'{len(y_train)} training, {len(y_val)} validation images')", "",
              "# ---- model: pixels stay 0..255; Rescaling is the first layer"
              + ("; Random* layers augment in training only" if r.augment else "")]
    if name.startswith("vgg16"):
        finetune = name == "vgg16-finetune"
        lines += ["base = keras.applications.VGG16(include_top=False, weights=WEIGHTS, input_shape=INPUT_SHAPE)",
                  "for layer in base.layers:  # S11: " + ("only block5 learns" if finetune else "frozen"),
                  f"    layer.trainable = {'layer.name.startswith(' + repr('block5') + ')' if finetune else 'False'}"]
    lines += ["model = keras.Sequential([", "    keras.Input(shape=INPUT_SHAPE),", *body,
              f"], name={model.name!r})"]
    if name.startswith("catsdogs-transfer"):
        lines += ["# the conv base's weights come from the convzoo checkpoint WEIGHTS",
                  "source = keras.models.load_model(WEIGHTS, compile=False)",
                  "for layer in model.layers:",
                  "    if layer.name.startswith('base_'):",
                  "        layer.set_weights(source.get_layer(layer.name[5:]).get_weights())"]
    lines += ["model.summary()", "",
              "steps = EPOCHS * -(-len(y_train) // BATCH_SIZE)",
              "lr = LEARNING_RATE if SCHEDULE == 'constant' else "
              "keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=steps)",
              f"optimizer = keras.optimizers.{OPTIMIZERS[r.optimizer]}(learning_rate=lr)",
              f"loss_fn = {LOSSES[spec.head]}",
              (TAPE if r.loop == "tape" else FIT).rstrip("\n"), "",
              "# ---- save: a Keras .h5 plus the metadata convzoo evaluate and predict read",
              "model.save(args.output)",
              "meta = {'format': 1, 'model': " + repr(name) + ", 'dataset': DATASET, 'classes': CLASSES,",
              "        'input_shape': list(INPUT_SHAPE), 'preprocess': " + repr(info.preprocess) + ",",
              f"        'head': {spec.head!r}, 'seed': SEED, 'epochs_run': EPOCHS, 'history': history,",
              "        'train_images': len(y_train), 'val_images': len(y_val), 'ejected': True}",
              "with h5py.File(args.output, 'a') as f:",
              "    f.attrs['convzoo'] = json.dumps(meta)",
              "print(f'saved {args.output}; score it with: convzoo evaluate {args.output} --data-dir {DATA_DIR}')"]
    return "\n".join(lines) + "\n"


def eject(name, dataset=None, output=None, overwrite=False, weights=None):
    """Write the script (default ./<name>.py); returns its path."""
    from convzoo.fileio import check_output, write_text

    text = script(name, dataset, weights)
    output = output or f"{name.replace('-', '_')}.py"
    check_output(output, overwrite)
    write_text(output, text)
    return output
