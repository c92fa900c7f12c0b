"""``deepfake-mlc export``: checkpoint -> ONNX (fp32, fp16), ONNX INT8 or TensorRT engine, then parity.

Every export is run on real evaluation images and compared with PyTorch before it counts; an export
that does not match is reported as a failure (the file stays for inspection) and is not registered.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from rich.console import Console

from deepfake_mlc.config.schema import Config
from deepfake_mlc.engine.checkpoint import load_checkpoint, resolve_checkpoint
from deepfake_mlc.export import CALIBRATION_IMAGES, ExportError
from deepfake_mlc.export.files import build_tensorrt_engine, export_onnx
from deepfake_mlc.export.onnx import DEFAULT_OPSET, convert_fp16
from deepfake_mlc.export.parity import DEFAULT_MAX_MAP_DROP, ParityReport, check_parity, reference_probabilities
from deepfake_mlc.export.thresholds import tune_thresholds
from deepfake_mlc.runtime import available_runtimes, eval_arrays, open_runner
from deepfake_mlc.runtime.info import checkpoint_info, engine_metadata_path, model_kind
from deepfake_mlc.runtime.tensorrt_runner import import_tensorrt

Format = Literal["onnx", "onnx-int8", "tensorrt"]
PRECISIONS: dict[str, tuple[str, ...]] = {
    "onnx": ("fp32", "fp16"),
    "onnx-int8": ("int8",),
    "tensorrt": ("fp16", "fp32", "int8"),
}


@dataclass(frozen=True)
class ExportRequest:
    """What to export and how to check it (the command's options); ``None`` means the default."""

    checkpoint: Path
    format: Format = "onnx"
    precision: str | None = None  # the format's first precision
    out: Path | None = None  # CHECKPOINT_DIR/<stem>-<precision>.onnx|.engine
    data: Path | None = None  # the checkpoint's run config, else its Seq-DeepFake root
    parity_images: int = 256
    tolerance: float | None = None
    max_map_drop: float = DEFAULT_MAX_MAP_DROP
    calibration_images: int = CALIBRATION_IMAGES
    per_channel: bool = False
    opset: int = DEFAULT_OPSET
    register: str | None = None
    tune_thresholds: bool = False


@dataclass(frozen=True)
class ExportResult:
    path: Path
    files: tuple[Path, ...]
    precision: str
    parity: ParityReport
    seconds: float
    thresholds: tuple[float, ...] | None
    registered: str | None


def default_data(checkpoint: Path, cfg: Config) -> Path:
    """The data a checkpoint was trained on: its run folder's config, else its Seq-DeepFake root."""
    run_config = checkpoint.parent.parent / "config.yaml"
    if run_config.is_file():
        return run_config
    if cfg.data.root is not None:
        return cfg.data.root
    raise ExportError(f"{checkpoint}: no run config beside it to find its data: give --data")


def _parity_runtime(path: Path, precision: str) -> str:
    """ONNX Runtime on the CPU is the exact reference runtime; fp16 runs on the GPU when there is one."""
    if model_kind(path) == "tensorrt":
        return "tensorrt"
    runtimes = available_runtimes(path)
    return "ort-cuda" if precision == "fp16" and "ort-cuda" in runtimes else "ort-cpu"


def run_export(request: ExportRequest, console: Console | None = None) -> ExportResult:
    """Export, check parity, register if asked and parity holds; the caller decides what a failure means."""
    console = console or Console(stderr=True)
    precision = request.precision or PRECISIONS[request.format][0]
    if precision not in PRECISIONS[request.format]:
        raise ExportError(f"--format {request.format} takes --precision {'|'.join(PRECISIONS[request.format])}")
    if request.format == "tensorrt":
        import_tensorrt()  # no GPU or no package: say so before any work
    start = time.perf_counter()
    checkpoint = resolve_checkpoint(request.checkpoint)
    model, cfg, meta = load_checkpoint(checkpoint)
    info = checkpoint_info(checkpoint, meta)
    source = request.data or default_data(checkpoint, cfg)
    images, targets = eval_arrays(source, info, "test", request.parity_images)  # bad data fails before exporting
    if request.tune_thresholds:
        info = replace(info, thresholds=tune_thresholds(model, info, source))
    suffix = ".engine" if request.format == "tensorrt" else ".onnx"
    path = request.out or checkpoint.with_name(f"{checkpoint.stem}-{precision}{suffix}")
    if (path.suffix == ".onnx") != (suffix == ".onnx"):
        raise ExportError(f"--out {path}: --format {request.format} writes a {suffix} file")
    calibration = eval_arrays(source, info, "train", request.calibration_images)[0] if precision == "int8" else None
    with tempfile.TemporaryDirectory() as tmp:
        keep_fp32 = precision == "fp32"  # the file itself, or the graph a TensorRT fp32 engine is built from
        fp32_path = path.with_suffix(".onnx") if keep_fp32 else Path(tmp) / "fp32.onnx"
        with console.status(f"exporting {cfg.model.name} to ONNX (opset {request.opset})"):
            export_onnx(checkpoint, fp32_path, request.opset, info.thresholds)
        if request.format == "tensorrt":
            build_tensorrt_engine(fp32_path, path, precision, calibration)
        elif precision == "fp16":
            convert_fp16(fp32_path, path)
        elif calibration is not None:
            from deepfake_mlc.export.quantize import quantize_int8

            with console.status(f"quantising to int8 on {len(calibration)} training images"):
                quantize_int8(fp32_path, calibration, path, "cpu", request.per_channel)
    onnx_path = path.with_suffix(".onnx")
    files = (path, engine_metadata_path(path), onnx_path) if suffix == ".engine" else (path,)
    with console.status(f"checking parity on {len(images)} test images"):
        reference = reference_probabilities(model, info, images)
        runner = open_runner(path, _parity_runtime(path, precision))
        parity = check_parity(runner, images, targets, reference, request.tolerance, request.max_map_drop)
    registered = None
    if request.register and parity.failure() is None:
        from deepfake_mlc.export.registry import register_onnx

        registered = register_onnx(onnx_path, request.register, checkpoint, cfg, meta)
    return ExportResult(path, files, precision, parity, time.perf_counter() - start, info.thresholds, registered)
