"""The bundled release models (models/<name>.h5 and their .tflite twins), found from any install.

A wheel or `pip install .` ships them as package data in convzoo/models/ (pyproject maps the repo's
top-level models/ there); a source checkout or `pip install -e .` reads the repo's models/. No
TensorFlow, no h5py: `--help` and the CLI group import this module.
"""
import os

from convzoo.errors import ConvzooError, unknown

DEFAULT = "cifar10"  # the model for everyday photos: 10 classes of objects and animals
ENV_MODEL = "CONVZOO_MODEL"
ENV_DIR = "CONVZOO_MODELS"
_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def models_dir():
    """$CONVZOO_MODELS, else the installed package data, else the source checkout's models/."""
    if os.environ.get(ENV_DIR):
        return os.environ[ENV_DIR]
    installed = os.path.join(_PACKAGE, "models")
    if os.path.isdir(installed):
        return installed
    # a checkout: models/ beside the package, recognised by the project file beside both
    root = os.path.dirname(_PACKAGE)
    checkout = os.path.join(root, "models")
    if os.path.isfile(os.path.join(root, "pyproject.toml")) and os.path.isdir(checkout):
        return checkout
    return installed


def names():
    """The bundled model names (file stems of models/*.h5), sorted."""
    try:
        return sorted(f[:-3] for f in os.listdir(models_dir()) if f.endswith(".h5"))
    except OSError:
        return []


def path(name):
    """models/<name>.h5; ConvzooError if this install has no such bundled model."""
    p = os.path.join(models_dir(), f"{name}.h5")
    if not os.path.isfile(p):
        known = names()
        if not known:
            raise ConvzooError(f"no bundled models found in {models_dir()}: reinstall convzoo, or set "
                               f"${ENV_DIR} to a folder of models")
        raise unknown("bundled model", name, known)
    return p


def looks_like_name(name):
    """A bare word such as `mnist` (no folder, no extension) that is not an existing file."""
    return (os.sep not in name and "/" not in name and "." not in name and not os.path.exists(name))


def resolve(name):
    """A checkpoint path: `name` itself, or models/<name>.h5 for a bundled model's name."""
    if looks_like_name(name):
        return path(name)
    return name


def default():
    """(name, why): $CONVZOO_MODEL, else DEFAULT."""
    if os.environ.get(ENV_MODEL):
        return os.environ[ENV_MODEL], f"${ENV_MODEL}"
    return DEFAULT, "the default"
