"""Export a checkpoint to ONNX (fp32, fp16, int8) or a TensorRT engine, checked against PyTorch.

The two user-facing errors (defined in :mod:`deepfake_mlc.errors`) are importable from here; the
file-to-file functions are loaded on first use (onnxruntime's quantiser, TensorRT and MLflow's ONNX
flavour are heavy or optional).
"""

from __future__ import annotations

from deepfake_mlc.errors import ExportError, RuntimeUnavailable
from deepfake_mlc.lazy import lazy_attributes

CALIBRATION_IMAGES = 256  # training images that calibrate an int8 model, by default (export and serve-bench)

LAZY = {
    "export_onnx": "deepfake_mlc.export.files",
    "build_tensorrt_engine": "deepfake_mlc.export.files",
    "quantize_int8": "deepfake_mlc.export.quantize",
}


__getattr__ = lazy_attributes(__name__, LAZY)


__all__ = [
    "CALIBRATION_IMAGES",
    "ExportError",
    "RuntimeUnavailable",
    "build_tensorrt_engine",
    "export_onnx",
    "quantize_int8",
]
