"""convzoo: a command-line model zoo for the classic convolutional networks."""
import os

__version__ = "0.1.0"

# Keras 3 on TensorFlow, without TensorFlow's start-up chatter; a user's own setting wins.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from convzoo import cpu  # noqa: E402

cpu.defaults()  # oneDNN on before TensorFlow starts (convzoo/cpu.py says why)
