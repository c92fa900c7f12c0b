"""One interface for running any model file (checkpoint, ONNX, TensorRT engine) in any runtime.

``open_runner(path, runtime)`` gives a callable from normalised images to probabilities, whatever runs
it; ``read_model_info`` says how to preprocess and decide; ``eval_arrays`` / ``load_images`` make the
inputs. Predict, export parity and the serving benchmark all go through it.
"""

from deepfake_mlc.runtime.base import Runner, run_batched
from deepfake_mlc.runtime.data import eval_arrays, eval_batches, load_images
from deepfake_mlc.runtime.info import read_model_info
from deepfake_mlc.runtime.runners import RUNTIMES, available_runtimes, open_runner

__all__ = [
    "RUNTIMES",
    "Runner",
    "available_runtimes",
    "eval_arrays",
    "eval_batches",
    "load_images",
    "open_runner",
    "read_model_info",
    "run_batched",
]
