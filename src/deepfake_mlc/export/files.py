"""Writing exports: a checkpoint, or its exported fp32 ONNX model, as the file of a format and precision.

:func:`write_export` is the one place a precision turns into a file; export and serve-bench both call it.
Neither checks parity here (export does it next, serve-bench measures it).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx

from deepfake_mlc import __version__
from deepfake_mlc.artifacts import Format, engine_graph_path, export_precision, model_kind
from deepfake_mlc.errors import ExportError
from deepfake_mlc.export.onnx import DEFAULT_OPSET, convert_fp16, export_model
from deepfake_mlc.models.loading import load_checkpoint
from deepfake_mlc.runtime.info import checkpoint_info

TIMING_CACHE = "tensorrt.timing-cache"


def export_onnx(
    checkpoint: Path,
    out: Path,
    opset: int = DEFAULT_OPSET,
    thresholds: tuple[tuple[float, ...], str] | None = None,
    with_maps: bool = False,
) -> Path:
    """A checkpoint (run folder or ``.safetensors``) as an fp32 ONNX model with its metadata inside.

    ``thresholds`` (per label, and the policy that fitted them) replace the checkpoint's own in the metadata;
    ``with_maps`` adds the class activation maps as a second output.
    """
    model = load_checkpoint(checkpoint)[0]
    info = checkpoint_info(checkpoint).model_copy(update={"deepfake_mlc": __version__})
    if thresholds is not None:
        info = info.model_copy(update={"thresholds": thresholds[0], "threshold_policy": thresholds[1]})
    return export_model(model, out, info, opset, with_maps)


def write_export(
    source: Path,
    out: Path,
    format: Format,
    precision: str,
    calibration: np.ndarray | None = None,
    *,
    per_channel: bool = False,
    opset: int = DEFAULT_OPSET,
    thresholds: tuple[tuple[float, ...], str] | None = None,
    with_maps: bool = False,
) -> Path:
    """Write ``source`` (a checkpoint, or an exported fp32 ONNX model) to ``out`` as ``format`` in ``precision``.

    A checkpoint is exported to fp32 ONNX first (``opset``; ``thresholds`` and their policy replace its own),
    into a temporary folder unless that is the file asked for. int8 needs ``calibration``, training images
    in the model's preprocessing: ``onnx-int8`` is ONNX Runtime's CPU scheme (``per_channel`` weights on
    request), with the first convolution kept in float. ``with_maps`` (ONNX fp32 and fp16) adds the class
    activation maps as a second output.
    """
    export_precision(format, precision)
    if precision == "int8" and calibration is None:
        raise ExportError("an int8 export needs calibration images")
    if with_maps and format != "onnx":
        raise ExportError(f"--with-cam adds an output to ONNX fp32 and fp16 models, not to {format}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if model_kind(source) == "checkpoint":
        if (format, precision) == ("onnx", "fp32"):
            return export_onnx(source, out, opset, thresholds, with_maps)
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = export_onnx(source, Path(tmp) / "fp32.onnx", opset, thresholds, with_maps)
            return write_export(fp32, out, format, precision, calibration, per_channel=per_channel)
    if format == "tensorrt":
        return _tensorrt_engine(source, out, precision, calibration)
    if precision == "int8":
        from deepfake_mlc.export.quantize import quantize_int8

        return quantize_int8(source, calibration, out, "cpu", per_channel)
    if precision == "fp16":
        return convert_fp16(source, out)
    raise ExportError(f"{source} is an fp32 ONNX model already: there is nothing to convert")


def _tensorrt_engine(fp32_path: Path, out: Path, precision: str, calibration: np.ndarray | None) -> Path:
    """A TensorRT engine of ``precision`` built from the fp32 ONNX model at ``fp32_path``.

    The precision lives in the graph TensorRT builds from (strongly typed): fp16 is a float16 copy, int8 a
    symmetric Q/DQ copy with per-channel weights, as TensorRT requires. That graph is kept beside the engine
    (:func:`~deepfake_mlc.artifacts.engine_graph_path`); the timing cache is shared by the engines of the folder.
    """
    from deepfake_mlc.export.tensorrt import build_engine

    if len(onnx.load(str(fp32_path), load_external_data=False).graph.output) > 1:
        raise ExportError(
            f"{fp32_path} was exported --with-cam: a TensorRT engine is built from the plain export (without the maps)"
        )
    graph = engine_graph_path(out)
    if precision == "fp16":
        convert_fp16(fp32_path, graph)
    elif precision == "int8":
        from deepfake_mlc.export.quantize import quantize_int8

        quantize_int8(fp32_path, calibration, graph, scheme="tensorrt", per_channel=True)
    elif graph.resolve() != fp32_path.resolve():
        shutil.copyfile(fp32_path, graph)
    return build_engine(graph, out, out.parent / TIMING_CACHE)
