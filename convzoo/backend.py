"""Import Keras and TensorFlow once, quietly: TensorFlow's C++ start-up lines are written to
stderr before its log settings apply, so they are silenced at the file-descriptor level (LiteRT's
"Created XNNPACK delegate" line too)."""
import contextlib
import os
import sys

_done = False


@contextlib.contextmanager
def quiet_stderr():
    """Silence native (C++) writes to stderr, unless TF_CPP_MIN_LOG_LEVEL is set to 0."""
    saved = None
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3") != "0":
        try:
            sys.stderr.flush()
            saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        except OSError:
            saved = None
    try:
        yield
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)


def load():
    """Import keras (TensorFlow backend) without start-up noise; returns the keras module."""
    global _done
    if not _done:
        with quiet_stderr():
            import tensorflow  # noqa: F401
            import keras  # noqa: F401
        import absl.logging

        # Keras logs "HDF5 is legacy" on every .h5 save; .h5 is convzoo's promised default.
        absl.logging.set_verbosity(absl.logging.ERROR)
        _done = True
    import keras

    return keras
