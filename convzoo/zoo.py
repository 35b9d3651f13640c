"""The zoo: one registry of named architectures with their dataset, recipe and seed row (docs/seeds.md).

Importing this module does not import Keras: `convzoo models` lists the zoo without it.
"""
import dataclasses
import fnmatch
from dataclasses import dataclass

from convzoo import data as catalog
from convzoo.errors import unknown

OPTIMIZERS = ("adam", "rmsprop", "sgd")
# mixed_bfloat16: bfloat16 compute, float32 weights; about 1.9x faster training on CPUs with
# AVX512-BF16/AMX (bench/levers.py), slower where bfloat16 is emulated; checkpoints stay float32
PRECISIONS = ("float32", "mixed_bfloat16")
SCHEDULES = ("constant", "cosine", "linear")
ANY = "any"  # ModelSpec.datasets of a model built for any dataset's input and classes
# what `train --weights` means for an entry
WEIGHTS = {
    "warm-start": "a checkpoint of the same model, to train on from it",
    "imagenet": "imagenet (default, downloads), none, or a Keras weights .h5 file",
    "base": "the convzoo checkpoint whose conv base it transfers",
}


def field(default, help, cli=True, **values):
    """A Recipe field with the help text of its `convzoo train` option and the option's values, in
    plain words so this module imports no click: choices=(...), or bounds as click's ranges take
    them (min=, max=, min_open=, max_open=). cli=False: fixed by the zoo entry, not an option."""
    return dataclasses.field(default=default, metadata={"help": help, "cli": cli, **values})


@dataclass(frozen=True)
class Recipe:
    """How an entry is trained by default; CLI options override single fields. Each field is
    declared once here: `convzoo train`'s options, the reproduce command and `models --json` come
    from these fields (a test checks that every field carries its metadata)."""

    optimizer: str = field("adam", "The optimizer.", choices=OPTIMIZERS)
    learning_rate: float = field(1e-3, "The optimizer's (initial) learning rate.", min=0, min_open=True)
    momentum: float = field(0.0, "Momentum of sgd and rmsprop (0: none; Adam's is built in).",
                            min=0, max=1, max_open=True)
    nesterov: bool = field(False, "Nesterov momentum (sgd with --momentum above 0).")
    batch_size: int = field(32, "Images per step: the global batch, split across the replicas with "
                                "--distribute.", min=1)
    epochs: int = field(10, "Passes over the training images.", min=1)
    loop: str = field("fit", '"fit" (the shuffled tf.data pipeline, in Keras fit\'s order) or "tape" (S1\'s '
                                 'NumPy batches, a permutation per epoch); both train on loop.custom.', cli=False)
    schedule: str = field("constant", "Learning rate: constant, or cosine or linear decay to 0 over "
                                      "the run (SCHEDULES).", choices=SCHEDULES)
    augment: bool = field(False, "Random augmentation layers, active in training only.")
    validation_split: float = field(0.2, "Fraction of the training images held out for validation, "
                                         "stratified (a dataset with its own validation/ split uses that).",
                                    min=0, max=1, min_open=True, max_open=True)
    precision: str = field("float32", "mixed_bfloat16: bfloat16 compute, about 1.9x faster on CPUs with "
                                      "AVX512-BF16/AMX (slower elsewhere); the checkpoint stays float32.",
                           choices=PRECISIONS)
    # the record recipes' tricks (convzoo/tricks.py); the defaults leave every older entry as it was
    label_smoothing: float = field(0.0, "Label smoothing of the cross-entropy targets (0: off).")
    ema: float = field(0.0, "Keras optimizer weight averaging (use_ema) with this momentum, the "
                            "weights replaced by their average after every epoch (0: off).")
    warmup_epochs: float = field(0.0, "Linear learning-rate warm-up from 0 over this many epochs, "
                                      "then the --schedule.")
    weight_decay: float = field(0.0, "Decoupled weight decay of the optimizer (Keras weight_decay).")
    bn_momentum: float = field(0.99, "Batch-norm moving-average momentum, Keras' convention "
                                     "(PyTorch's momentum m is Keras 1 - m).")
    bn_scale: bool = field(True, "Batch norm with a learned scale (gamma); --no-bn-scale: shift only.")
    whiten: bool = field(False, "A frozen 2x2 patch-whitening first Conv2D computed from training "
                                "patches (inserted after Rescaling if the model has none).")
    dirac: bool = field(False, "Identity (Dirac) initialisation of the first in-channels filters of "
                               "each odd-sized Conv2D.")
    tta: str = field("none", "Test-time views evaluate/predict --tta average over: none, mirror, "
                             "shiftN, or mirror+shiftN (stored in the checkpoint).")
    cutout: float = field(0.0, "Cutout: one square of this fraction of the side set to mid-grey in "
                               "every training image (Keras RandomErasing, before Rescaling; 0: off).",
                          min=0, max=1, max_open=True)
    logit_scale: float = field(1.0, "The logits multiplied by this before the softmax or sigmoid (a "
                                    "Rescaling layer; airbench: 1/9; 1: none).", min=0, min_open=True)
    bias_lr: float = field(1.0, "Learning-rate multiplier of the batch-norm shifts (their gradients "
                                "scaled; sgd only; airbench: 64).", min=0, min_open=True)

    def with_overrides(self, **given):
        """A copy with the options the user actually set (None means not set)."""
        return dataclasses.replace(self, **{k: v for k, v in given.items() if v is not None})


def options():
    """The Recipe fields that are `convzoo train` options, in declaration order."""
    return [f for f in dataclasses.fields(Recipe) if f.metadata.get("cli")]


FIXED = tuple(f.name for f in dataclasses.fields(Recipe) if not f.metadata.get("cli"))  # the entry's, not options


def flag(name, on=True):
    """A Recipe field's option: learning_rate -> --learning-rate; a boolean turned off: --no-x."""
    return ("--" if on else "--no-") + name.replace("_", "-")


@dataclass(frozen=True)
class ModelSpec:
    """A zoo entry. `datasets[0]` is its default dataset; `params` is checked against Keras by a test."""

    name: str
    datasets: tuple
    source: str
    description: str
    recipe: Recipe
    params: int
    head: str = "softmax"  # "softmax", "logits" (S1) or "sigmoid" (binary)
    reported: str = ""
    weights: str = "warm-start"  # what --weights means: a key of WEIGHTS
    bundled_base: bool = False  # weights "base": without --weights, the bundled model of the same colour

    def fits(self, dataset):
        return ANY in self.datasets or dataset in self.datasets


REGISTRY = {}


def register(spec):
    REGISTRY[spec.name] = spec
    return spec


register(ModelSpec(
    name="mnist-cnn", datasets=("mnist",), source="S3",
    description="conv 5x5x32 SAME - pool - conv 5x5x64 SAME - pool - dense 1024 - dropout 0.5 - 10",
    # the book: Adam 1e-4, mini-batch 50, 5000 steps (about 5 epochs of 48,000 images)
    recipe=Recipe(optimizer="adam", learning_rate=1e-4, batch_size=50, epochs=5),
    params=3_274_634,
    reported="about 99.2% test accuracy (book); cost about 0.2 after 1000 steps",
))
register(ModelSpec(
    name="fashion-cnn", datasets=("fashion_mnist",), source="S2",
    description="conv 3x3x10 SAME - pool - flatten - dropout 0.5 - dense 100 - 10",
    recipe=Recipe(optimizer="adam", learning_rate=1e-3, batch_size=32, epochs=20),
    params=197_210,
    reported="loss and accuracy curves before/after dropout",
))
register(ModelSpec(
    name="fashion-cnn-scratch", datasets=("fashion_mnist",), source="S1",
    description="conv 3x3x10 SAME - pool - flatten - dense 100 - 10 logits; hand-written GradientTape SGD",
    recipe=Recipe(optimizer="sgd", learning_rate=0.01, batch_size=128, epochs=20, loop="tape"),
    params=197_210, head="logits",
    reported="loss curves, validation accuracy",
))
register(ModelSpec(
    name="mlp", datasets=("fashion_mnist", "mnist"), source="S6",
    description="flatten 784 - dense 100 sigmoid - 10 softmax",
    recipe=Recipe(optimizer="sgd", learning_rate=0.1, batch_size=256, epochs=40),
    params=79_510,
    reported="validation accuracy 0.815 (Fashion-MNIST, notes)",
))
register(ModelSpec(
    name="mnist-vgg", datasets=("mnist",), source="S3+",
    description="2x conv 3x3x32 - pool - 2x conv 3x3x64 - pool - dense 256 - dropout 0.5 - 10;"
                " rotate/shift/zoom augmentation",
    recipe=Recipe(optimizer="adam", learning_rate=1e-3, batch_size=32, epochs=15,
                  schedule="cosine", augment=True, validation_split=0.1),
    params=870_634,
    reported="S3 as the book trains it: about 99.2%",
))
register(ModelSpec(
    name="fashion-vgg", datasets=("fashion_mnist",), source="S2+",
    description="2x conv 3x3x32 BN - pool - 2x conv 3x3x64 BN - pool - dense 256 - dropout 0.5 - 10;"
                " flip/shift augmentation",
    recipe=Recipe(optimizer="adam", learning_rate=1e-3, batch_size=128, epochs=30,
                  schedule="cosine", augment=True, validation_split=0.1),
    params=871_210,
    reported="dataset authors' conv benchmarks: up to about 93.9%",
))

register(ModelSpec(
    name="cifar10-cnn", datasets=("cifar10",), source="S4",
    description="conv 5x5x32 - pool - conv 5x5x64 - pool - conv 5x5x128 - pool - dense 512 - dropout 0.5 - 10",
    recipe=Recipe(optimizer="adam", learning_rate=1e-3, batch_size=64, epochs=20),
    params=1_312_842,
    reported="notes point to the 'are we there yet' table (95%+ methods)",
))
register(ModelSpec(
    name="cifar10-vgg", datasets=("cifar10",), source="S4+",
    description="3 VGG blocks (2x conv 3x3 BN, 64/128/256, each pooled) - dropout 0.5 - 10;"
                " flip/shift augmentation",
    recipe=Recipe(optimizer="adam", learning_rate=1e-3, batch_size=128, epochs=20,
                  schedule="cosine", augment=True, validation_split=0.1),
    params=1_189_066,
    reported="target 85% on the JPEG test set",
))
register(ModelSpec(
    name="cifar10-vgg-small", datasets=("cifar10",), source="S4+",
    description="3 VGG blocks (2x conv 3x3 BN, 32/64/128) - pool - dropout 0.2/0.3/0.4 - dense 256 -"
                " dropout 0.5 - 10; flip/shift augmentation",
    recipe=Recipe(optimizer="adam", learning_rate=1e-3, batch_size=128, epochs=40,
                  schedule="cosine", augment=True, validation_split=0.1),
    params=815_466,
    reported="S4's notes point to the 'are we there yet' table (95%+ methods)",
))
# airbench94's tricks on Adam (the product's optimizers); the -air entries share them
AIR = Recipe(optimizer="adam", learning_rate=2e-3, batch_size=512, epochs=32, schedule="linear",
             warmup_epochs=2, augment=True, validation_split=0.05, label_smoothing=0.2,
             weight_decay=0.05, bn_momentum=0.4, bn_scale=False, whiten=True, dirac=True,
             tta="mirror+shift1")
AIR_LAYERS = "frozen 2x2 whitening conv - GELU - 3 blocks (conv - pool - BN - GELU - conv - BN - GELU)" \
             " 64/256/256 - pool 3 - dense"
register(ModelSpec(
    name="cifar10-air", datasets=("cifar10",), source="S4+",
    description=f"airbench94 as a Sequential: {AIR_LAYERS} 10; flip + 2 px shifts + cutout",
    # no --ema: Keras' use_ema replaces the weights by their average once per epoch, which pulled a
    # short run back towards its start (17% validation after 2 of 4 epochs of 4,000 images, 39% without)
    # cutout 0.375 (cifar_94's trick): 88.05% against 87.59% without, same seed and 32 epochs;
    # Adam 4e-3: 89.15% (90.29% with --tta) against 2e-3's 88.05% (89.78%), same seed and 32 epochs
    recipe=AIR.with_overrides(cutout=0.375, learning_rate=4e-3),
    params=1_973_944,
    reported="airbench94 (SGD): 94.01% mean in 9.9 epochs; cifar_94 (johanwind): 94.02% in 24 epochs",
))
register(ModelSpec(
    name="fashion-air", datasets=("fashion_mnist",), source="S2+",
    description=f"cifar10-air's net and tricks on 28x28 grey: {AIR_LAYERS} 10; flip + 2 px shifts",
    # 40 epochs: 94.73% (95.23% with --tta) against 94.68% at 24 and 93.96% at 12, seed 0
    recipe=AIR.with_overrides(epochs=40),
    params=1_964_456,
    reported="best plain conv net in the dataset's tracker: 94.03% (zalandoresearch/fashion-mnist #148)",
))
register(ModelSpec(
    name="mnist-air", datasets=("mnist",), source="S3+",
    description=f"cifar10-air's net and tricks on digits: {AIR_LAYERS} 10; 2 px shifts, no flips",
    # 36 epochs: 99.72% (99.74% with --tta) against 99.70% (99.71%) at 20, 99.56% (99.60%) at 8
    # and 99.68% (99.66%) at 48, seed 0
    recipe=AIR.with_overrides(epochs=36, tta="shift1"),
    params=1_964_456,
    reported="plain CNNs with batch norm and augmentation: 99.7-99.8%; best single model 99.83%",
))
register(ModelSpec(
    name="catsdogs-cnn", datasets=("cats_vs_dogs",), source="S8",
    description="Conv2D 32-64-128-128 3x3 relu, each pooled - flatten - dense 512 - 1 sigmoid",
    # the book: batch 20, 30 epochs of 100 steps (2,000 images: one pass over the train split)
    recipe=Recipe(optimizer="rmsprop", learning_rate=1e-4, batch_size=20, epochs=30),
    params=3_453_121, head="sigmoid",
    reported="over-fits: about 70-72% validation accuracy (book's curves)",
))
register(ModelSpec(
    name="catsdogs-cnn-aug", datasets=("cats_vs_dogs",), source="S9",
    description="S8 plus Dropout 0.5 after Flatten; rotation 40, shifts 0.2, shear 0.2, zoom 0.2, flip",
    recipe=Recipe(optimizer="rmsprop", learning_rate=1e-4, batch_size=32, epochs=100, augment=True),
    params=3_453_121, head="sigmoid",
    reported="about 82% validation accuracy (book)",
))
register(ModelSpec(
    name="catsdogs-vgg", datasets=("cats_vs_dogs",), source="S8+",
    description="conv 3x3/2 32 BN - 4x (conv 3x3 BN - pool) 64-128-128-256 - global average pool - dropout"
                " - dense 256 - 1 sigmoid; S9 augmentation",
    recipe=Recipe(optimizer="adam", learning_rate=1e-3, batch_size=32, epochs=100,
                  schedule="cosine", augment=True),
    params=603_873, head="sigmoid",
    reported="S9: about 82% validation accuracy (book)",
))
register(ModelSpec(
    name="catsdogs-transfer", datasets=("cats_vs_dogs",), source="S11*",
    description="conv base of any convzoo checkpoint (--weights, e.g. models/cifar10.h5), frozen"
                " - global average pool - dropout - dense 256 - 1 sigmoid; S9 augmentation",
    recipe=Recipe(optimizer="rmsprop", learning_rate=1e-3, batch_size=32, epochs=30, augment=True),
    params=0, head="sigmoid", weights="base",
    reported="S11 with ImageNet VGG16: about 90% (book)",
))
register(ModelSpec(
    name="catsdogs-transfer-finetune", datasets=("cats_vs_dogs",), source="S11*",
    description="catsdogs-transfer with the base's last conv block unfrozen; --weights: a stage-1 checkpoint",
    recipe=Recipe(optimizer="rmsprop", learning_rate=1e-4, batch_size=32, epochs=30, augment=True),
    params=0, head="sigmoid", weights="base",
    reported="S11 fine-tuned VGG16: about 97% (book)",
))
register(ModelSpec(
    name="vgg16-features", datasets=("cats_vs_dogs",), source="S11",
    description="keras.applications.VGG16 base (no top, frozen) - flatten - dense 256 - dropout 0.5 - 1 sigmoid",
    recipe=Recipe(optimizer="rmsprop", learning_rate=2e-5, batch_size=20, epochs=30),
    params=16_812_353, head="sigmoid", weights="imagenet",
    reported="about 90% validation accuracy with ImageNet weights (book)",
))
register(ModelSpec(
    name="vgg16-finetune", datasets=("cats_vs_dogs",), source="S11",
    description="VGG16 base with block5 unfrozen - flatten - dense 256 - dropout 0.5 - 1 sigmoid; augmentation",
    recipe=Recipe(optimizer="rmsprop", learning_rate=1e-5, batch_size=20, epochs=100, augment=True),
    params=16_812_353, head="sigmoid", weights="imagenet",
    reported="about 97% with ImageNet weights, fine-tuned (book)",
))

# ---------------------------------------------------------------- models for any dataset
register(ModelSpec(
    name="small-cnn", datasets=(ANY,), source="S8",
    description="S8's Conv2D 32-64-128-128 3x3, each pooled (as many stages as the input allows)"
                " - flatten - dropout 0.5 - dense 512 - softmax; the dataset's augmentation",
    recipe=Recipe(optimizer="rmsprop", learning_rate=1e-4, batch_size=32, epochs=30, augment=True),
    params=0,
    reported="S9 on cats vs dogs: about 82% validation accuracy (book)",
))
register(ModelSpec(
    name="small-vgg", datasets=(ANY,), source="S8+",
    description="catsdogs-vgg for any input: conv 32 BN stem - 4x (conv 3x3 BN - pool) 64-128-128-256"
                " - global average pool - dropout - dense 256 - softmax; the dataset's augmentation",
    recipe=Recipe(optimizer="adam", learning_rate=1e-3, batch_size=32, epochs=60,
                  schedule="cosine", augment=True),
    params=0,
    reported="catsdogs-vgg: 84.70% test after 100 epochs (models/README.md)",
))
register(ModelSpec(
    name="transfer", datasets=(ANY,), source="S11*",
    description="conv base of a convzoo checkpoint (--weights; default the bundled model of the same"
                " colour: cifar10 for RGB, fashion_mnist for gray), frozen - global average pool -"
                " dropout - dense 256 - softmax",
    recipe=Recipe(optimizer="rmsprop", learning_rate=1e-3, batch_size=32, epochs=15, augment=True),
    params=0, weights="base", bundled_base=True,
    reported="S11 stage 1",
))
register(ModelSpec(
    name="transfer-finetune", datasets=(ANY,), source="S11*",
    description="transfer with the base's last conv block unfrozen; --weights: a transfer checkpoint",
    recipe=Recipe(optimizer="rmsprop", learning_rate=1e-4, batch_size=32, epochs=15, augment=True),
    params=0, weights="base",
    reported="S11 stage 2",
))

# `convzoo train DATASET` without --model: each DatasetInfo.default_model (data/__init__.py says why)
DEFAULT_MODEL = {name: info.default_model for name, info in catalog.DATASETS.items()}


def list_models(pattern="*", dataset=None):
    """Names in the zoo matching a shell pattern, optionally for one dataset."""
    return [n for n, s in REGISTRY.items()
            if fnmatch.fnmatch(n, pattern) and (dataset is None or s.fits(dataset))]


def get_spec(name):
    if name not in REGISTRY:
        raise unknown("model", name, list(REGISTRY))
    return REGISTRY[name]


def is_transfer(name):
    """A model built on another checkpoint's conv base (continued whole by a later transfer stage)."""
    return name in REGISTRY and REGISTRY[name].weights == "base"


def build_model(name, dataset, input_shape, num_classes, augment=None, weights=None, augmentation=None):
    """A fresh, uncompiled keras.Sequential; augment=None means the recipe's default; augmentation:
    a DatasetInfo.augmentation kind (default: the built-in dataset's)."""
    from convzoo import nets

    spec = get_spec(name)
    augment = spec.recipe.augment if augment is None else augment
    if augment and augmentation is None:
        augmentation = catalog.get(dataset).augmentation
    layers = nets.augmentation(augmentation) if augment else []
    return nets.BUILDERS[name](input_shape=input_shape, num_classes=num_classes, augment=layers,
                               weights=weights)
