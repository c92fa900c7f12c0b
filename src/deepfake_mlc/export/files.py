"""File-to-file exports: a checkpoint to ONNX, an ONNX model to a TensorRT engine.

What the export command and the serving benchmark both call; neither checks parity (the command does
that itself, the benchmark measures it).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from deepfake_mlc import __version__
from deepfake_mlc.engine.checkpoint import load_checkpoint, resolve_checkpoint
from deepfake_mlc.export import ExportError
from deepfake_mlc.export.onnx import DEFAULT_OPSET, convert_fp16, export_model
from deepfake_mlc.runtime.info import checkpoint_info

TIMING_CACHE = "tensorrt.timing-cache"


def export_onnx(
    checkpoint: Path, out: Path, opset: int = DEFAULT_OPSET, thresholds: tuple[float, ...] | None = None
) -> Path:
    """A checkpoint (run folder or ``.safetensors``) as an fp32 ONNX model with its metadata inside.

    ``thresholds`` (per label) replace the checkpoint's own in the metadata.
    """
    checkpoint = resolve_checkpoint(checkpoint)
    model, cfg, meta = load_checkpoint(checkpoint)
    info = checkpoint_info(checkpoint, meta)
    if thresholds is not None:
        info = replace(info, thresholds=thresholds)
    metadata = info.to_metadata(model=cfg.model.name, run_id=meta.get("run_id"), deepfake_mlc=__version__)
    return export_model(model, info.image_size, out, metadata, opset)


def build_tensorrt_engine(
    onnx_path: Path, out: Path, precision: str = "fp16", calibration: np.ndarray | None = None
) -> Path:
    """A TensorRT engine of ``precision`` from an exported fp32 ONNX model.

    The precision lives in the graph TensorRT builds from: fp16 is a float16 copy, int8 a symmetric Q/DQ
    copy calibrated on ``calibration`` (training images); that ONNX model is kept as ``out`` with the
    suffix ``.onnx``. The timing cache is shared by every engine built in ``out``'s folder.
    """
    from deepfake_mlc.export.tensorrt import build_engine

    typed = out.with_suffix(".onnx")
    if precision == "fp32":
        typed = onnx_path
    elif precision == "fp16":
        convert_fp16(onnx_path, typed)
    elif precision == "int8":
        from deepfake_mlc.export.quantize import quantize_int8

        if calibration is None:
            raise ExportError("an int8 TensorRT engine needs calibration images")
        quantize_int8(onnx_path, calibration, typed, scheme="tensorrt", per_channel=True)
    else:
        raise ExportError(f"TensorRT precision must be fp32, fp16 or int8, not {precision!r}")
    return build_engine(typed, out, out.parent / TIMING_CACHE)
