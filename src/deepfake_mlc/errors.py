"""The errors a user can fix, each worded in one line: the command line prints them without a traceback.

They live here, free of heavy imports, so that ``deepfake-mlc`` can name them all (and the serving image,
which has no torch, can raise and catch them); the modules that raise them re-export them.
"""

from __future__ import annotations


class DatasetError(ValueError):
    """A data set that cannot be read as described: the message names the file, line and problem."""


class CorruptImageError(OSError):
    """An image file that cannot be read or decoded."""


class CheckpointError(ValueError):
    """A file that is not a deepfake-mlc checkpoint, or one that does not fit its own config."""


class EmbeddingError(ValueError):
    """Embeddings that cannot be made for these labels (missing file, word, package or wrong shape)."""


class WeightsError(ValueError):
    """A weights file that does not fit the model it is loaded into."""


class ExportError(ValueError):
    """An export that cannot be made or does not match PyTorch: worded for the user in one line."""


class RuntimeUnavailable(RuntimeError):
    """A runtime that cannot run on this machine (no GPU, a missing package): said in one line."""
