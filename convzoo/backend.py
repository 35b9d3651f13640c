"""Import Keras and TensorFlow once, quietly: TensorFlow's C++ start-up lines are written to
stderr before its log settings apply, so they are silenced at the file-descriptor level."""
import os
import sys

_done = False


def load():
    """Import keras (TensorFlow backend) without start-up noise; returns the keras module."""
    global _done
    if not _done:
        quiet = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3") != "0"
        saved = None
        if quiet:
            try:
                sys.stderr.flush()
                saved = os.dup(2)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
            except OSError:
                saved = None
        try:
            import tensorflow  # noqa: F401
            import keras  # noqa: F401
        finally:
            if saved is not None:
                os.dup2(saved, 2)
                os.close(saved)
        import absl.logging

        # Keras logs "HDF5 is legacy" on every .h5 save; .h5 is convzoo's promised default.
        absl.logging.set_verbosity(absl.logging.ERROR)
        _done = True
    import keras

    return keras
