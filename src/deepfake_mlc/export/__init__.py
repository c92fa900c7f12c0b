"""Export a checkpoint to ONNX (fp32, fp16), ONNX INT8 or a TensorRT engine, checked against PyTorch.

Importing it is light (the serving image, which has no torch, imports it): the functions that write files
are loaded on first use (torch, onnx, onnxruntime's quantiser and TensorRT are heavy or optional). The
formats, precisions and file names of exports are :mod:`deepfake_mlc.artifacts`'s, shared with serve-bench.
"""

from __future__ import annotations

from deepfake_mlc.lazy import lazy_attributes

CALIBRATION_IMAGES = 256  # training images that calibrate an int8 model, by default (export and serve-bench)


LAZY = {
    "export_onnx": "deepfake_mlc.export.files",
    "write_export": "deepfake_mlc.export.files",
    "quantize_int8": "deepfake_mlc.export.quantize",
}


__getattr__ = lazy_attributes(__name__, LAZY)


__all__ = ["CALIBRATION_IMAGES", "export_onnx", "quantize_int8", "write_export"]
