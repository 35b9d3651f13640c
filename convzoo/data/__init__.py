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
    "cifar10": DatasetInfo(
        name="cifar10", title="CIFAR-10 small colour photos",
        classes=("airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"),
        input_shape=(32, 32, 3), loader="cifar",
        preprocess={"color": "RGB", "size": [32, 32]},
        credit="Alex Krizhevsky, Vinod Nair, Geoffrey Hinton (University of Toronto), 2009",
    ),
    "cats_vs_dogs": DatasetInfo(
        name="cats_vs_dogs", title="Dogs vs. Cats (Asirra), textbook split 1000/500/500 per class",
        # folder names in alphabetical order, so label 1 = dogs, the sigmoid head's positive class
        classes=("cats", "dogs"), input_shape=(150, 150, 3), loader="catsdogs",
        preprocess={"color": "RGB", "size": [150, 150]},
        credit="Asirra, Microsoft Research, with Petfinder.com; Kaggle Dogs vs. Cats (2013)",
    ),
}


def get(name):
    if name not in DATASETS:
        raise unknown("dataset", name, list(DATASETS))
    return DATASETS[name]


def loader(name):
    return importlib.import_module(f"convzoo.data.{get(name).loader}")
