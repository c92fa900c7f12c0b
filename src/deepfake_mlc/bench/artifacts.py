"""The file each benchmarked runtime reads, derived from the one model the user gave.

A checkpoint yields everything (ONNX fp32, ONNX int8 calibrated on training images, a TensorRT fp16
engine); an ONNX file yields all but the PyTorch rows; an engine only the TensorRT row. Exports are
written once into the output folder and shared by every runtime that reads them; ``export=False``
reuses what an earlier run left there (the serving image, which has no exporters, relies on it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Target:
    """One benchmark row: ``runtime`` is what :func:`deepfake_mlc.runtime.open_runner` runs ``artifact`` with."""

    name: str
    runtime: str
    artifact: str  # "checkpoint" | "onnx" | "int8" | "tensorrt"


TARGETS = {
    t.name: t
    for t in (
        Target("pytorch", "pytorch", "checkpoint"),
        Target("pytorch-compile", "pytorch-compile", "checkpoint"),
        Target("ort-cpu", "ort-cpu", "onnx"),
        Target("ort-cpu-int8", "ort-cpu", "int8"),
        Target("ort-cuda", "ort-cuda", "onnx"),
        Target("ort-tensorrt", "ort-tensorrt", "onnx"),
        Target("tensorrt", "tensorrt", "tensorrt"),
    )
}
EXPORT_FILES = {"onnx": "model.onnx", "int8": "model.int8.onnx", "tensorrt": "model.fp16.engine"}
KIND_NAMES = {"checkpoint": "a checkpoint", "onnx": "an ONNX file", "tensorrt": "a TensorRT engine"}


class Artifacts:
    """Paths of the model's formats, exported into ``out`` on first request.

    ``calibration`` is called only when an int8 model has to be made (it reads training images).
    """

    def __init__(self, model: Path, out: Path, calibration: Callable[[], np.ndarray], export: bool = True) -> None:
        from deepfake_mlc.runtime.info import model_kind

        self.kind = model_kind(model)
        if self.kind == "checkpoint":
            from deepfake_mlc.engine.checkpoint import resolve_checkpoint

            model = resolve_checkpoint(model)
        self._paths = {self.kind: model}
        self._out, self._calibration, self._export = out, calibration, export

    def path(self, artifact: str) -> Path:
        """The file, made if needed; ``RuntimeUnavailable`` says why it cannot be had."""
        from deepfake_mlc.runtime import RuntimeUnavailable

        if artifact in self._paths:
            return self._paths[artifact]
        if artifact == "checkpoint" or self.kind == "tensorrt":
            needs = "a checkpoint" if artifact == "checkpoint" else "a checkpoint or an ONNX file"
            raise RuntimeUnavailable(f"needs {needs}; --model is {KIND_NAMES[self.kind]}")
        out = self._out / EXPORT_FILES[artifact]
        if not self._export and not out.is_file():
            raise RuntimeUnavailable(f"{out} does not exist and --no-export is set")
        if self._export:
            try:
                self._make(artifact, out)
            except ModuleNotFoundError as err:  # an exporter's library, e.g. onnx or torch in the serving image
                raise RuntimeUnavailable(
                    f"making {out.name} needs {err.name}, which is not installed here "
                    "(make it where it is, e.g. with serve-bench in the training image, then use --no-export)"
                ) from None
        self._paths[artifact] = out
        return out

    def _make(self, artifact: str, out: Path) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        if artifact == "onnx":
            from deepfake_mlc.export.files import export_onnx

            export_onnx(self._paths["checkpoint"], out)
        elif artifact == "int8":
            from deepfake_mlc.export.quantize import quantize_int8

            quantize_int8(self.path("onnx"), self._calibration(), out, scheme="cpu")
        else:
            from deepfake_mlc.export.files import build_tensorrt_engine
            from deepfake_mlc.runtime.tensorrt_runner import import_tensorrt

            import_tensorrt()  # no GPU or no package: skip before converting anything
            build_tensorrt_engine(self.path("onnx"), out, "fp16")
