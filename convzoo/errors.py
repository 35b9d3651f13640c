"""Errors a user can act on: each carries one line saying what failed and what to try."""


class ConvzooError(Exception):
    """Base class: the CLI prints the message on one line and exits 1."""


class UnknownName(ConvzooError):
    """A model or dataset name that is not in the zoo."""


class DataError(ConvzooError):
    """Missing, corrupt or mismatched dataset files."""


class CheckpointError(ConvzooError):
    """A checkpoint that cannot be read, is refused, or does not fit the data."""


class ImageError(ConvzooError):
    """An image file that cannot be read."""


class StateError(ConvzooError):
    """A run's state.npz that is damaged, tampered with, or not this model's (--resume)."""


class Diverged(ConvzooError):
    """A NaN or infinite loss during training."""


def unknown(kind, name, known):
    """An UnknownName error that suggests the nearest valid names."""
    import difflib

    near = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(near)}?" if near else f"; choose from {', '.join(sorted(known))}"
    return UnknownName(f"unknown {kind} '{name}'{hint}")


class Interrupted(ConvzooError):
    """Ctrl-C during training: the CLI exits 130 after saying how to resume."""

    exit_code = 130
