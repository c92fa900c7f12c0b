"""ONNX Runtime as a runtime: the CPU, CUDA and TensorRT execution providers over one exported model.

The model's precision (fp32, fp16, int8) is in the graph and named in its metadata. The CUDA provider
runs float32 convolutions as TF32 by default, so an fp32 model on it reports ``tf32``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deepfake_mlc.errors import CheckpointError, RuntimeUnavailable
from deepfake_mlc.runtime import cuda
from deepfake_mlc.runtime.base import GPU_HINT
from deepfake_mlc.runtime.info import read_export_info

PROVIDERS = {
    "ort-cpu": "CPUExecutionProvider",
    "ort-cuda": "CUDAExecutionProvider",
    "ort-tensorrt": "TensorrtExecutionProvider",
}


def ort_runtimes() -> list[str]:
    """The ONNX Runtime runtimes this machine can use, GPU ones first.

    A GPU build lists its GPU providers on any machine: the driver says whether a GPU is there.
    """
    import onnxruntime as ort

    built = set(ort.get_available_providers())
    gpu = bool(built - {PROVIDERS["ort-cpu"]}) and cuda.device_count() > 0
    preferred = ("ort-cuda", "ort-tensorrt", "ort-cpu")
    return [name for name in preferred if PROVIDERS[name] in built and (name == "ort-cpu" or gpu)]


def _provider_options(runtime: str, path: Path) -> list[Any]:
    """The provider chain of a runtime; TensorRT's caches its engines beside the model (first run builds)."""
    if runtime == "ort-tensorrt":
        cache = str(path.parent / "ort-tensorrt-cache")
        trt = {"trt_engine_cache_enable": True, "trt_engine_cache_path": cache, "trt_timing_cache_enable": True}
        return [(PROVIDERS[runtime], trt), PROVIDERS["ort-cuda"], PROVIDERS["ort-cpu"]]
    if runtime == "ort-cuda":
        return [PROVIDERS[runtime], PROVIDERS["ort-cpu"]]
    return [PROVIDERS["ort-cpu"]]


class OrtRunner:
    """An exported ONNX model in an ONNX Runtime session."""

    def __init__(self, path: Path, runtime: str, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        if runtime not in ort_runtimes():
            raise RuntimeUnavailable(f"{runtime} cannot run here: it needs an NVIDIA GPU and {GPU_HINT}")
        self.info = read_export_info(path)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self._session = ort.InferenceSession(str(path), options, providers=_provider_options(runtime, path))
        except Exception as err:  # ORT's own exception types: a graph it cannot load
            raise CheckpointError(f"{path}: ONNX Runtime cannot load it ({' '.join(str(err).split())[:300]})") from None
        if self._session.get_providers()[0] != PROVIDERS[runtime]:
            raise RuntimeUnavailable(f"{runtime}: ONNX Runtime fell back to {self._session.get_providers()[0]}")
        self.name = runtime
        self.device = "cpu" if runtime == "ort-cpu" else "cuda:0"
        precision = self.info.precision
        self.precision = "tf32" if runtime == "ort-cuda" and precision == "fp32" else precision
        self._input = self._session.get_inputs()[0].name
        self._outputs = [output.name for output in self._session.get_outputs()]
        self._threads = threads

    @property
    def has_maps(self) -> bool:
        """Whether the model was exported with its class activation maps (``export --with-cam``)."""
        return len(self._outputs) > 1

    def __call__(self, images: np.ndarray) -> np.ndarray:
        (probs,) = self._session.run(self._outputs[:1], {self._input: np.ascontiguousarray(images, dtype=np.float32)})
        return np.asarray(probs, dtype=np.float32)

    def with_maps(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities ``[N, L]`` and class activation maps ``[N, L, h, w]`` from one run of the model."""
        if not self.has_maps:
            raise RuntimeUnavailable(
                "this ONNX model has no class activation maps: export it with --with-cam "
                "(or explain the checkpoint with deepfake-mlc explain)"
            )
        probs, maps = self._session.run(
            self._outputs[:2], {self._input: np.ascontiguousarray(images, dtype=np.float32)}
        )
        return np.asarray(probs, dtype=np.float32), np.asarray(maps, dtype=np.float32)

    def details(self) -> dict[str, Any]:
        import onnxruntime as ort

        threads = self._threads if self._threads is not None else "default (one per physical core)"
        return {"onnxruntime": ort.__version__, "providers": self._session.get_providers(), "threads": threads}
