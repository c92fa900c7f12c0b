"""TensorRT engines as a runtime, through TensorRT's Python API, with CUDA memory from the driver (no torch).

Written against the name-based I/O API of TensorRT 10 (``set_input_shape``, ``set_tensor_address``,
``execute_async_v3``), which TensorRT 11 keeps; older majors are refused.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from deepfake_mlc.errors import CheckpointError, RuntimeUnavailable
from deepfake_mlc.runtime import cuda
from deepfake_mlc.runtime.base import GPU_HINT
from deepfake_mlc.runtime.info import read_export_info

MIN_MAJOR = 10
UNAVAILABLE = f"TensorRT needs an NVIDIA GPU and the `tensorrt` package ({GPU_HINT})"


def import_tensorrt() -> ModuleType:
    """The ``tensorrt`` module, or one line saying why it cannot be used here."""
    if not cuda.device_count():
        raise RuntimeUnavailable(UNAVAILABLE)
    try:
        import tensorrt
    except ImportError:
        raise RuntimeUnavailable(UNAVAILABLE) from None
    if int(tensorrt.__version__.split(".")[0]) < MIN_MAJOR:
        raise RuntimeUnavailable(f"TensorRT {tensorrt.__version__} is too old: {MIN_MAJOR}.x or later is needed")
    return tensorrt


def tensorrt_available() -> bool:
    try:
        import_tensorrt()
    except RuntimeUnavailable:
        return False
    return True


class TensorRTRunner:
    """A serialized engine with one input (images) and one output (probabilities), dynamic batch.

    The input and output live in device buffers sized for the largest batch, allocated once, so a call
    costs the copies and the run, not allocations.
    """

    name = "tensorrt"
    device = "cuda:0"

    def __init__(self, path: Path) -> None:
        trt = import_tensorrt()
        self.info = read_export_info(path)
        self.precision = self.info.precision
        self._trt_version = trt.__version__
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self._engine is None:
            raise CheckpointError(f"{path}: not an engine TensorRT {trt.__version__} can load on this GPU")
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1 or len(names) != 2:
            raise CheckpointError(f"{path}: expected one input and one output, found tensors {names}")
        self._input, self._output = inputs[0], next(n for n in names if n != inputs[0])
        if any(self._engine.get_tensor_dtype(n) != trt.float32 for n in names):
            raise CheckpointError(f"{path}: expected float32 input and output (export keeps the I/O in float32)")
        largest = tuple(self._engine.get_tensor_profile_shape(self._input, 0)[2])
        self._max_batch = int(largest[0])
        self._context.set_input_shape(self._input, largest)
        # a stream of our own: TensorRT syncs extra on the default one; copies and run are ordered on it
        self._stream = cuda.Stream()
        output = tuple(self._context.get_tensor_shape(self._output))
        self._address = {
            tensor: self._stream.allocate(4 * int(np.prod(shape)))
            for tensor, shape in ((self._input, largest), (self._output, output))
        }
        for tensor, address in self._address.items():
            self._context.set_tensor_address(tensor, address)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        chunks = [self._run(images[i : i + self._max_batch]) for i in range(0, len(images), self._max_batch)]
        return np.concatenate(chunks)

    def _run(self, images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.float32)
        self._stream.activate()
        self._context.set_input_shape(self._input, images.shape)
        probs = np.empty(tuple(self._context.get_tensor_shape(self._output)), dtype=np.float32)
        self._stream.to_device(self._address[self._input], images)
        if not self._context.execute_async_v3(self._stream.handle):
            raise RuntimeError("TensorRT failed to run the engine (see its log above)")
        self._stream.to_host(probs, self._address[self._output])
        self._stream.synchronize()
        return probs

    def details(self) -> dict[str, Any]:
        return {"tensorrt": self._trt_version, "gpu": cuda.device_name(0), "max_batch": self._max_batch}
