"""The ``deepfake-mlc`` command line: one entry, a sub-command per job."""

from deepfake_mlc.cli.main import main

__all__ = ["main"]
