"""Export a checkpoint to ONNX (fp32, fp16, int8) or a TensorRT engine, checked against PyTorch.

The two user-facing errors (defined in :mod:`deepfake_mlc.errors`) are importable from here; the
file-to-file functions are loaded on first use (onnxruntime's quantiser, TensorRT and MLflow's ONNX
flavour are heavy or optional).
"""

from __future__ import annotations

import importlib
from typing import Any

from deepfake_mlc.errors import ExportError, RuntimeUnavailable

LAZY = {
    "export_onnx": "deepfake_mlc.export.files",
    "build_tensorrt_engine": "deepfake_mlc.export.files",
    "quantize_int8": "deepfake_mlc.export.quantize",
}


def __getattr__(name: str) -> Any:
    if name in LAZY:
        return getattr(importlib.import_module(LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ExportError", "RuntimeUnavailable", "build_tensorrt_engine", "export_onnx", "quantize_int8"]
