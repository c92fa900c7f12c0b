"""``deepfake-mlc export``: checkpoint -> ONNX (fp32, fp16), ONNX INT8, TensorRT engine or a Triton model
repository of one of them, then parity.

Every export is run on real evaluation images and compared with PyTorch in IEEE float32 before it
counts, judged by the quality gate (:mod:`deepfake_mlc.metrics.parity`, the one serve-bench and predict
use); an export that fails it is reported as a failure (the file stays for inspection) and is not
registered. A Triton model repository holds the very file its format writes, checked the same way.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
from rich.console import Console

from deepfake_mlc.artifacts import (
    SUFFIXES,
    Format,
    ModelInfo,
    engine_graph_path,
    engine_metadata_path,
    export_name,
    export_precision,
    model_kind,
    resolve_checkpoint,
)
from deepfake_mlc.data.sources import trained_on
from deepfake_mlc.errors import ExportError
from deepfake_mlc.export import CALIBRATION_IMAGES
from deepfake_mlc.export.files import write_export
from deepfake_mlc.export.onnx import DEFAULT_OPSET
from deepfake_mlc.export.parity import REFERENCE_PRECISION, REFERENCE_RUNTIME, maps_deviation, reference_probabilities
from deepfake_mlc.export.tensorrt import BatchProfile
from deepfake_mlc.export.thresholds import fit_policy
from deepfake_mlc.metrics.parity import MAX_ABS_DIFF, MAX_MAP_DROP, Parity, Tolerances, check_parity
from deepfake_mlc.metrics.thresholds import parse_policy
from deepfake_mlc.models.loading import load_checkpoint
from deepfake_mlc.runtime import available_runtimes, eval_arrays, open_runner, run_batched
from deepfake_mlc.runtime.info import checkpoint_info, read_export_info
from deepfake_mlc.runtime.tensorrt_runner import import_tensorrt
from deepfake_mlc.serving.repository import (
    CONFIG_FILE,
    LABELS_FILE,
    MAX_BATCH_SIZE,
    MODEL_FILES,
    MODEL_NAME,
    QUEUE_DELAY_US,
    TritonModel,
    model_folder,
    write_repository,
)


@dataclass(frozen=True)
class ExportRequest:
    """What to export and how to check it (the command's options); ``None`` means the default."""

    checkpoint: Path
    format: Format | Literal["triton"] = "onnx"
    precision: str | None = None  # the format's first precision (triton: its backend's format's)
    out: Path | None = None  # beside the checkpoint, named by export_name; triton: the repository, RUN/triton
    data: Path | None = None  # the checkpoint's run config, else its Seq-DeepFake root
    parity_images: int = 256
    tolerance: float | None = None  # max |Δp|, whatever the precision; the gate's by default
    max_map_drop: float = MAX_MAP_DROP
    calibration_images: int = CALIBRATION_IMAGES
    per_channel: bool = False
    opset: int = DEFAULT_OPSET
    register: str | None = None
    thresholds: str | None = None  # a threshold policy fitted on val (f1, fpr:X, precision:X); else the checkpoint's
    with_cam: bool = False  # the class activation maps as a second ONNX output
    maps_images: int = 16  # images whose maps are compared with PyTorch's
    # --format triton: the model of the repository and how Triton serves it
    backend: Literal["onnxruntime", "tensorrt"] = "onnxruntime"
    model_name: str = MODEL_NAME
    max_batch: int = MAX_BATCH_SIZE
    queue_delay_us: int = QUEUE_DELAY_US
    instance: Literal["cpu", "gpu"] | None = None  # gpu for tensorrt, cpu for onnxruntime
    overwrite: bool = False


@dataclass(frozen=True)
class ExportResult:
    path: Path
    files: tuple[Path, ...]
    precision: str
    parity: Parity
    seconds: float
    thresholds: tuple[float, ...] | None
    threshold_policy: str | None
    registered: str | None
    maps_deviation: float | None = None  # max |Δ| of the maps / max |map|, with --with-cam
    maps_bound: float | None = None
    unreached: tuple[str, ...] = ()  # labels whose precision:X no threshold reached on val
    repository: Path | None = None  # --format triton: the model's folder in the repository

    def failure(self) -> str | None:
        """Why the export fails the gate (its probabilities, then its maps), or ``None``."""
        failure = self.parity.failure()
        deviation, bound = self.maps_deviation, self.maps_bound
        if failure is None and deviation is not None and bound is not None and deviation > bound:
            failure = f"class activation maps: max |Δ| {deviation:.1e} of their range > {bound}"
        return failure


def _parity_runtime(path: Path, precision: str) -> str:
    """ONNX Runtime on the CPU is the exact reference runtime; fp16 runs on the GPU when there is one."""
    if model_kind(path) == "tensorrt":
        return "tensorrt"
    runtimes = available_runtimes(path)
    return "ort-cuda" if precision == "fp16" and "ort-cuda" in runtimes else "ort-cpu"


def _tolerances(request: ExportRequest, precision: str) -> Tolerances:
    """The gate's table with the command's overrides: ``--tolerance`` bounds max |Δp| whatever the arithmetic."""
    if request.tolerance is None:
        return Tolerances(max_map_drop=request.max_map_drop)
    if precision == "int8":
        raise ExportError("int8 is judged by its mAP drop: give --max-map-drop, not --tolerance")
    return Tolerances(dict.fromkeys(MAX_ABS_DIFF, request.tolerance), request.max_map_drop)


def _file_format(request: ExportRequest) -> Format:
    """The format of the model file: a Triton repository holds ONNX (int8: ONNX INT8) or a TensorRT engine."""
    if request.format != "triton":
        return request.format
    if request.backend == "tensorrt":
        return "tensorrt"
    return "onnx-int8" if request.precision == "int8" else "onnx"


def _triton_model(request: ExportRequest, checkpoint: Path, info: ModelInfo) -> tuple[Path, TritonModel]:
    """The repository (``--out``, else ``triton/`` in the checkpoint's run folder) and the model to write in it.

    Checked before any work: a model already there, or a batch larger than the engine's profile, is refused.
    """
    if request.backend == "tensorrt" and request.max_batch > BatchProfile().max:
        raise ExportError(f"--max-batch {request.max_batch}: TensorRT engines take batches up to {BatchProfile().max}")
    run = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    repository = request.out or run / "triton"
    model = TritonModel(
        name=request.model_name,
        backend=request.backend,
        info=info,
        max_batch_size=request.max_batch,
        queue_delay_us=request.queue_delay_us,
        instance_kind=request.instance or ("gpu" if request.backend == "tensorrt" else "cpu"),
    )
    model_folder(repository, model.name, request.overwrite)
    return repository, model


def _write_triton(result: ExportResult, repository: Path, model: TritonModel, overwrite: bool) -> ExportResult:
    """The exported file in a Triton repository, its info (an engine's side file too) in the config."""
    name = MODEL_FILES[model.backend]
    files = {name: result.path}
    if model.backend == "tensorrt":  # the runtimes read an engine's info beside it, as for any engine
        files[engine_metadata_path(Path(name)).name] = engine_metadata_path(result.path)
    folder = write_repository(repository, replace(model, info=read_export_info(result.path)), files, overwrite)
    written = (*(folder / "1" / file for file in files), folder / CONFIG_FILE, folder / LABELS_FILE)
    return replace(result, path=written[0], files=written, repository=folder)


def run_export(request: ExportRequest, console: Console | None = None) -> ExportResult:
    """Export, check parity, register if asked and parity holds; the caller decides what a failure means.

    ``--format triton`` exports into a temporary folder, then writes the repository with that file; one that
    fails the gate goes to ``REPO-failed`` instead (like any export, it stays for inspection), so a model a
    Triton server is serving is never replaced by it.
    """
    with tempfile.TemporaryDirectory() if request.format == "triton" else nullcontext() as scratch:
        return _run_export(request, console or Console(stderr=True), scratch)


def _run_export(request: ExportRequest, console: Console, scratch: str | None) -> ExportResult:
    file_format = _file_format(request)
    precision = export_precision(file_format, request.precision)
    policy = None if request.thresholds is None else parse_policy(request.thresholds)
    tolerances = _tolerances(request, precision)
    if request.format == "triton" and request.with_cam:
        raise ExportError("--with-cam: a Triton model serves the probabilities only (export --format onnx for maps)")
    if file_format == "tensorrt":
        import_tensorrt()  # no GPU or no package: say so before any work
    start = time.perf_counter()
    checkpoint = resolve_checkpoint(request.checkpoint)
    model, cfg, meta = load_checkpoint(checkpoint)
    info = checkpoint_info(checkpoint)
    triton = _triton_model(request, checkpoint, info) if request.format == "triton" else None
    source = request.data or trained_on(checkpoint, cfg.data)
    images, targets = eval_arrays(source, info, "test", request.parity_images)  # bad data fails before exporting
    unreached: tuple[str, ...] = ()
    if policy is not None:
        fitted = fit_policy(model, info, source, policy)
        unreached = tuple(info.label_names[k] for k in fitted.unreached)
        info = info.model_copy(
            update={"thresholds": tuple(map(float, fitted.thresholds)), "threshold_policy": str(policy)}
        )
    if triton is None:
        path = request.out or checkpoint.with_name(export_name(checkpoint, file_format, precision))
        if path.suffix != SUFFIXES[file_format]:
            raise ExportError(f"--out {path}: --format {file_format} writes a {SUFFIXES[file_format]} file")
    else:
        path = Path(scratch) / export_name(checkpoint, file_format, precision)
    calibration = eval_arrays(source, info, "train", request.calibration_images)[0] if precision == "int8" else None
    with console.status(f"exporting {cfg.model.name} to {file_format} {precision} (ONNX opset {request.opset})"):
        write_export(
            checkpoint,
            path,
            file_format,
            precision,
            calibration,
            per_channel=request.per_channel,
            opset=request.opset,
            thresholds=None if policy is None else (info.decision_thresholds(), str(policy)),
            with_maps=request.with_cam,
        )
    onnx_path = engine_graph_path(path) if file_format == "tensorrt" else path
    files = (path, engine_metadata_path(path), onnx_path) if file_format == "tensorrt" else (path,)
    with console.status(f"checking parity on {len(images)} test images"):
        reference = reference_probabilities(model, info, images)
        runner = open_runner(path, _parity_runtime(path, precision))
        parity = check_parity(
            run_batched(runner, images),
            reference,
            np.asarray(info.decision_thresholds()),
            runtime=runner.name,
            precision=runner.precision,
            reference_runtime=REFERENCE_RUNTIME,
            reference_precision=REFERENCE_PRECISION,
            targets=targets,
            tolerances=tolerances,
        )
    deviation = bound = None
    if request.with_cam:
        with console.status(f"checking the class activation maps on {min(len(images), request.maps_images)} images"):
            sample = images[: request.maps_images]
            deviation = maps_deviation(model, runner.with_maps(sample)[1], sample)
            bound = tolerances.max_abs_diff[runner.precision]
    seconds = time.perf_counter() - start
    result = ExportResult(
        path,
        files,
        precision,
        parity,
        seconds,
        info.thresholds,
        info.threshold_policy,
        None,
        deviation,
        bound,
        unreached,
    )
    if triton is not None:
        repository, model = triton
        overwrite = request.overwrite
        if result.failure() is not None:  # kept for inspection, never where a Triton polling the repository loads it
            repository, overwrite = repository.with_name(f"{repository.name}-failed"), True
        result = _write_triton(result, repository, model, overwrite)
    if request.register and result.failure() is None:  # probabilities and maps both within the gate
        from deepfake_mlc.export.mlflow_registry import register_onnx

        result = replace(result, registered=register_onnx(onnx_path, request.register, checkpoint, cfg, meta))
    return result
