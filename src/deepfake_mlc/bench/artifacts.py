"""The file each benchmarked runtime reads, derived from the one model the user gave.

A checkpoint yields everything (ONNX fp32, ONNX int8 calibrated on training images, a TensorRT fp16
engine); an ONNX file yields all but the PyTorch rows; an engine only the TensorRT row. Exports are
written once into the output folder by export's own :func:`~deepfake_mlc.export.files.write_export`, under
export's names (:func:`~deepfake_mlc.artifacts.export_name`), and shared by every runtime that reads them;
``export=False`` reuses what an earlier run left there (the serving image, which has no exporters, relies
on it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepfake_mlc.artifacts import export_name, model_kind, resolve_checkpoint


@dataclass(frozen=True)
class Target:
    """One benchmark row: ``runtime`` is what :func:`deepfake_mlc.runtime.open_runner` runs the file with.

    The file is the model itself (``format`` "checkpoint") or its export in ``format`` and ``precision``.
    """

    name: str
    runtime: str
    format: str = "checkpoint"
    precision: str = "fp32"


TARGETS = {
    t.name: t
    for t in (
        Target("pytorch", "pytorch"),
        Target("pytorch-compile", "pytorch-compile"),
        Target("ort-cpu", "ort-cpu", "onnx"),
        Target("ort-cpu-int8", "ort-cpu", "onnx-int8", "int8"),
        Target("ort-cuda", "ort-cuda", "onnx"),
        Target("ort-tensorrt", "ort-tensorrt", "onnx"),
        Target("tensorrt", "tensorrt", "tensorrt", "fp16"),
    )
}
KIND_NAMES = {"checkpoint": "a checkpoint", "onnx": "an ONNX file", "tensorrt": "a TensorRT engine"}


class Artifacts:
    """Paths of the model's formats, exported into ``out`` on first request.

    The model given stands for its own format, whatever its precision (an ONNX file is the fp32 ONNX model
    the other exports derive from). ``calibration`` is called only when an int8 model has to be made (it
    reads training images).
    """

    def __init__(self, model: Path, out: Path, calibration: Callable[[], np.ndarray], export: bool = True) -> None:
        self.kind = model_kind(model)
        if self.kind == "checkpoint":
            model = resolve_checkpoint(model)
        self._model, self._out, self._calibration, self._export = model, out, calibration, export
        self._made: dict[tuple[str, str], Path] = {}

    def path(self, target: Target) -> Path:
        """The file ``target`` reads, made if needed; ``RuntimeUnavailable`` says why it cannot be had."""
        return self._file(target.format, target.precision)

    def _file(self, format: str, precision: str) -> Path:
        from deepfake_mlc.errors import RuntimeUnavailable

        if format == self.kind:
            return self._model
        if format == "checkpoint" or self.kind == "tensorrt":
            needs = "a checkpoint" if format == "checkpoint" else "a checkpoint or an ONNX file"
            raise RuntimeUnavailable(f"needs {needs}; --model is {KIND_NAMES[self.kind]}")
        if (format, precision) in self._made:
            return self._made[format, precision]
        out = self._out / export_name(self._model, format, precision)
        if not self._export and not out.is_file():
            raise RuntimeUnavailable(f"{out} does not exist and --no-export is set")
        if self._export:
            try:
                self._make(format, precision, out)
            except ModuleNotFoundError as err:  # an exporter's library, e.g. onnx or torch in the serving image
                raise RuntimeUnavailable(
                    f"making {out.name} needs {err.name}, which is not installed here "
                    "(make it where it is, e.g. with serve-bench in the training image, then use --no-export)"
                ) from None
        self._made[format, precision] = out
        return out

    def _make(self, format: str, precision: str, out: Path) -> None:
        from deepfake_mlc.export.files import write_export

        if format == "tensorrt":
            from deepfake_mlc.runtime.tensorrt_runner import import_tensorrt

            import_tensorrt()  # no GPU or no package: skip before converting anything
        # every export but the fp32 ONNX model is derived from that one, made once and shared
        source = self._model if format == "onnx" else self._file("onnx", "fp32")
        write_export(source, out, format, precision, self._calibration() if precision == "int8" else None)
