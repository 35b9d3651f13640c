"""The dataset catalog: name -> classes, image shape, preprocessing and loader. No TensorFlow here."""
import importlib
from dataclasses import dataclass, field

from convzoo.errors import unknown


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    classes: tuple
    input_shape: tuple
    loader: str  # module in convzoo.data with find(folder), load(folder, split), counts(folder)
    preprocess: dict = field(default_factory=dict)  # how predict turns a photo into a model input
    credit: str = ""


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
        credit="Yann LeCun, Corinna Cortes, Christopher J.C. Burges; CC BY-SA 3.0",
    ),
    "fashion_mnist": DatasetInfo(
        name="fashion_mnist", title="Fashion-MNIST (Zalando article images)",
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        input_shape=(28, 28, 1), loader="mnist",
        # garments: light on black, longest side filling the 28x28 frame, centred
        preprocess={"color": "L", "size": [28, 28], "ink": "light-on-dark", "fit": "object"},
        credit="Han Xiao, Kashif Rasul, Roland Vollgraf (Zalando Research); MIT licence",
    ),
}


def get(name):
    if name not in DATASETS:
        raise unknown("dataset", name, list(DATASETS))
    return DATASETS[name]


def loader(name):
    return importlib.import_module(f"convzoo.data.{get(name).loader}")
