"""The dataset catalog: one DatasetInfo per dataset, built in or imported. No numpy, no TensorFlow.

A loader module (DatasetInfo.loader, in convzoo.data) offers exactly:
    find(folder) -> anything truthy, or None when the files are not there
    load(folder, split, strict=False) -> (x uint8 (n, h, w, c), y uint8 (n,))
    counts(folder) -> {split: number of images}, or None
    missing_message(folder) -> how to get the files, one line
plus `write(folder, split, x, y)` when DatasetInfo.fetch is set (keras.datasets writes the official
layout), and `import_source(source, folder, overwrite=False, **options)` when DatasetInfo.importer
is set, taking the options named in DatasetInfo.import_options.
"""
import importlib
import json
import os
import re
from dataclasses import dataclass, field

from convzoo.errors import DataError, unknown

DEFAULT_DIR = os.path.join("~", ".convzoo", "data")
CARD = "dataset.json"  # an imported dataset's description, in its folder
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    classes: tuple
    input_shape: tuple  # (h, w, channels): what the models take; channels 1 = gray, 3 = RGB
    loader: str  # module in convzoo.data with the interface above
    splits: tuple = ("train", "test")  # a "validation" split here is used instead of holding one out
    preprocess: dict = field(default_factory=dict)  # how predict turns a photo into a model input
    augmentation: str = "photos"  # a key of nets.AUGMENTATIONS
    default_model: str = ""  # `convzoo train NAME` without --model
    limit_order: str = "per-class"  # how --limit picks: "first" (files in mixed order) or "per-class"
    fetch: bool = False  # keras.datasets can download it (`convzoo data fetch`)
    importer: bool = False  # `convzoo data import NAME SOURCE` builds it
    import_options: tuple = ()  # the `data import` options its importer takes
    imported: bool = False  # described by DATA_DIR/NAME/dataset.json, not built in
    credit: str = ""

    @property
    def color(self):
        return "gray" if self.input_shape[-1] == 1 else "rgb"


MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

DATASETS = {
    "mnist": DatasetInfo(
        name="mnist", title="MNIST handwritten digits",
        classes=tuple(str(i) for i in range(10)), input_shape=(28, 28, 1), loader="mnist",
        # digits: white ink on black, fitted in a 20x20 box, centred by centre of mass in 28x28
        preprocess={"color": "L", "size": [28, 28], "ink": "light-on-dark", "fit": "digit"},
        augmentation="digits", default_model="mnist-vgg", limit_order="first", fetch=True,
        credit="Yann LeCun, Corinna Cortes, Christopher J.C. Burges; CC BY-SA 3.0",
    ),
    "fashion_mnist": DatasetInfo(
        name="fashion_mnist", title="Fashion-MNIST (Zalando article images)",
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        input_shape=(28, 28, 1), loader="mnist",
        # garments: light on black, longest side filling the 28x28 frame, centred
        preprocess={"color": "L", "size": [28, 28], "ink": "light-on-dark", "fit": "object"},
        # the batch-norm release designs need thousands of steps before their moving statistics
        # settle (fashion-vgg scores 19% after 5 epochs of 3,600 images): quick runs use fashion-cnn
        augmentation="garments", default_model="fashion-cnn", limit_order="first", fetch=True,
        credit="Han Xiao, Kashif Rasul, Roland Vollgraf (Zalando Research); MIT licence",
    ),
    "cifar10": DatasetInfo(
        name="cifar10", title="CIFAR-10 small colour photos",
        classes=("airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"),
        input_shape=(32, 32, 3), loader="cifar",
        preprocess={"color": "RGB", "size": [32, 32]},
        augmentation="small-photos", default_model="cifar10-cnn", fetch=True, importer=True,
        credit="Alex Krizhevsky, Vinod Nair, Geoffrey Hinton (University of Toronto), 2009",
    ),
    "cats_vs_dogs": DatasetInfo(
        name="cats_vs_dogs", title="Dogs vs. Cats (Asirra), textbook split 1000/500/500 per class",
        # folder names in alphabetical order, so label 1 = dogs, the sigmoid head's positive class
        classes=("cats", "dogs"), input_shape=(150, 150, 3), loader="catsdogs",
        splits=("train", "validation", "test"),
        preprocess={"color": "RGB", "size": [150, 150]},
        augmentation="photos", default_model="catsdogs-cnn-aug", importer=True,
        import_options=("train", "validation", "test", "seed"),
        credit="Asirra, Microsoft Research, with Petfinder.com; Kaggle Dogs vs. Cats (2013)",
    ),
}

# What an imported dataset gets (README "Your own images" gives the measurements behind them)
IMPORTED = dict(loader="imported", splits=("train", "validation", "test"), importer=True, imported=True,
                import_options=("validation", "test", "seed", "image_size", "color"))
# measured best on small real sets (README): colour photos transfer from the bundled CIFAR-10 base;
# gray images train from scratch (the Fashion-MNIST base does not carry over to digits)
IMPORTED_DEFAULT_MODEL = {"rgb": "transfer", "gray": "small-cnn"}


def data_dir(given=None):
    """--data-dir, else $CONVZOO_DATA, else ~/.convzoo/data."""
    path = given or os.environ.get("CONVZOO_DATA") or DEFAULT_DIR
    return os.path.abspath(os.path.expanduser(path))


def check_name(name):
    """A name `data import` can take for a new dataset (the built-in ones have their own importers)."""
    if not NAME.match(name):
        raise DataError(f"dataset name '{name}': use lower-case letters, digits, '-' and '_' "
                        f"(up to 64, starting with a letter or digit)")
    return name


def augmentation_for(input_shape):
    """An imported dataset's augmentation: S9's for photos, flips and shifts for small colour images,
    shifts and zoom for gray ones (which may be text or digits, so no flips)."""
    if input_shape[-1] == 1:
        return "small-gray"
    return "small-photos" if input_shape[0] <= 64 else "photos"


def from_card(card, name):
    """The DatasetInfo an import's dataset.json describes."""
    try:
        size = int(card["image_size"])
        channels = 1 if card["color"] == "gray" else 3
        classes = tuple(str(c) for c in card["classes"])
        shape = (size, size, channels)
        return DatasetInfo(
            name=name, title=card.get("title") or f"{name} (imported from {card.get('source', '?')})",
            classes=classes, input_shape=shape,
            preprocess={"color": "L" if channels == 1 else "RGB", "size": [size, size]},
            augmentation=augmentation_for(shape), default_model=IMPORTED_DEFAULT_MODEL["gray" if channels == 1 else "rgb"], **IMPORTED)
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{name}/{CARD}: not a convzoo dataset card ({type(e).__name__}: {e})") from None


def read_card(folder):
    """The dataset.json of an imported dataset folder, or None when there is none."""
    path = os.path.join(folder, CARD)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            card = json.load(f)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read the dataset card ({e})") from None
    if not isinstance(card, dict):
        raise DataError(f"{path}: not a convzoo dataset card")
    return card


def imported_names(root=None):
    """Names of the datasets imported into the data folder (each a folder with a dataset.json)."""
    root = data_dir(root)
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return []
    return [n for n in entries if n not in DATASETS and NAME.match(n)
            and os.path.isfile(os.path.join(root, n, CARD))]


def names(root=None):
    return list(DATASETS) + imported_names(root)


def get(name, root=None):
    """The DatasetInfo of a built-in dataset, or of one imported into the data folder `root`."""
    if name in DATASETS:
        return DATASETS[name]
    if NAME.match(name):
        card = read_card(os.path.join(data_dir(root), name))
        if card is not None:
            return from_card(card, name)
    raise unknown("dataset", name, names(root))


def importer(name, root=None):
    """(module, options) that `convzoo data import NAME` uses: a built-in dataset's own importer,
    or the class-folder importer (convzoo.data.imported) for any new name."""
    if name in DATASETS:
        info = DATASETS[name]
        if not info.importer:
            raise DataError(f"{name} is not imported from a folder: use `convzoo data fetch {name}` or "
                            f"{loader(name).missing_message(os.path.join(data_dir(root), name))}")
        return loader(name), info.import_options
    check_name(name)
    near = name.replace("-", "_")
    if near in DATASETS or near.replace("_", "") in {n.replace("_", "") for n in DATASETS}:
        raise DataError(f"dataset name '{name}' is too close to the built-in "
                        f"{next(n for n in DATASETS if n.replace('_', '') == near.replace('_', ''))}; "
                        f"choose another name")
    return importlib.import_module("convzoo.data.imported"), IMPORTED["import_options"]


def loader(name, root=None):
    return importlib.import_module(f"convzoo.data.{get(name, root).loader}")
