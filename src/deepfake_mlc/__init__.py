"""deepfake-mlc: multi-label deepfake classification — train, search, export and benchmark."""

__version__ = "0.1.0"
