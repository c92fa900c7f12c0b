"""The errors a user can fix, each worded in one line: the command line prints them without a traceback.

Every one derives from :class:`UserError`, the only thing ``deepfake-mlc`` catches: anything else is a
bug and keeps its traceback. They live here, free of heavy imports, so that the serving image (no
torch) can raise and catch them. Where a built-in exception type is the natural one (a missing file),
the error derives from it too, so ``except FileNotFoundError`` in a caller's code still works.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user gave or asked for is wrong; the message says what, in one line."""


class ConfigError(UserError, ValueError):
    """A config problem: the message names the key and what is allowed."""


class LaunchError(ConfigError):
    """The processes started are not the distributed job that was asked for."""


class DatasetError(UserError, ValueError):
    """A data set that cannot be read as described: the message names the file, line and problem."""


class CorruptImageError(UserError, OSError):
    """An image file that cannot be read or decoded."""


class CheckpointError(UserError, ValueError):
    """A file that is not a deepfake-mlc model file, one from a newer release, or one that does not fit its config."""


class EmbeddingError(UserError, ValueError):
    """Embeddings that cannot be made for these labels (missing file, word, package or wrong shape)."""


class WeightsError(UserError, ValueError):
    """A weights file that does not fit the model it is loaded into."""


class ExportError(UserError, ValueError):
    """An export that cannot be made or does not match PyTorch."""


class QualityGateError(UserError, ValueError):
    """A runtime or an export whose outputs stray from the reference's beyond the quality gate's bound."""


class RuntimeUnavailable(UserError, RuntimeError):
    """A runtime that cannot run on this machine (no GPU, a missing package)."""


class InputNotFoundError(UserError, FileNotFoundError):
    """A file or folder the user named (a model, images, a run to resume or report) does not exist."""


class OutputExistsError(UserError, FileExistsError):
    """An output that would overwrite files the user already has."""


class OutputNotWritableError(UserError, PermissionError):
    """An output folder that cannot be written."""


class DetectorUnavailable(UserError, RuntimeError):
    """The face detector's weights (shipped by facenet-pytorch's wheel) are not installed."""


class CorruptVideoError(UserError, OSError):
    """A video file that cannot be opened or decoded."""
