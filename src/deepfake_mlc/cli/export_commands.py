"""``deepfake-mlc export``: a checkpoint as ONNX, ONNX INT8, a TensorRT engine or a Triton model repository of one,
proven against PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from deepfake_mlc.artifacts import PRECISIONS, export_name
from deepfake_mlc.cli.options import positive
from deepfake_mlc.export import CALIBRATION_IMAGES
from deepfake_mlc.metrics.parity import MAX_MAP_DROP, Tolerances
from deepfake_mlc.metrics.thresholds import POLICY_HELP
from deepfake_mlc.serving.repository import BACKENDS, MAX_BATCH_SIZE, MODEL_NAME, QUEUE_DELAY_US

if TYPE_CHECKING:
    from rich.table import Table

    from deepfake_mlc.export.pipeline import ExportResult


def register(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export",
        help="export a checkpoint to ONNX, ONNX INT8, a TensorRT engine or a Triton model repository, checked "
        "against PyTorch",
        description="Export, then run the exported model on real test images and compare it with PyTorch: "
        "exit status 2 when it fails the quality gate, the one serve-bench and predict --check apply "
        "(max |Δp| for float precisions, the mAP drop for int8). --format triton writes a model repository for "
        "NVIDIA Triton Inference Server (REPO/NAME/config.pbtxt, labels.txt, 1/model.onnx or 1/model.plan) with "
        "the file --format onnx, onnx-int8 or tensorrt writes, checked the same way.",
    )
    export.add_argument("checkpoint", type=Path, help="run folder or .safetensors checkpoint")
    export.add_argument("--format", choices=[*PRECISIONS, "triton"], default="onnx")
    export.add_argument(
        "--precision",
        choices=list(dict.fromkeys(p for precisions in PRECISIONS.values() for p in precisions)),
        help="; ".join(f"{f}: {', '.join(p)}" for f, p in PRECISIONS.items())
        + " (the first is the default); triton: those of its backend's format (onnxruntime: fp32, fp16, int8 "
        "= onnx-int8; tensorrt: fp16, fp32, int8)",
    )
    export.add_argument(
        "--out",
        type=Path,
        metavar="PATH",
        help=f"output file (default: beside the checkpoint, e.g. {export_name(Path('best'), 'onnx', 'fp32')}); "
        "triton: the model repository folder (default: triton/ in the checkpoint's run folder)",
    )
    export.add_argument(
        "--data",
        type=Path,
        metavar="PATH",
        help="Seq-DeepFake root, manifest .csv or run config .yaml (default: the checkpoint's)",
    )
    export.add_argument("--parity-images", type=positive(), metavar="N", help="test images compared (256)")
    export.add_argument(
        "--tolerance",
        type=float,
        metavar="P",
        help=f"max |Δp| allowed, whatever the precision (default: the quality gate's: {Tolerances()})",
    )
    export.add_argument(
        "--max-map-drop", type=float, metavar="POINTS", help=f"int8: mAP points it may lose ({MAX_MAP_DROP:g})"
    )
    export.add_argument(
        "--calibration-images", type=positive(), metavar="N", help=f"int8: training images ({CALIBRATION_IMAGES})"
    )
    export.add_argument("--per-channel", action="store_true", help="onnx-int8: per-channel weights (slower on CPU)")
    export.add_argument("--opset", type=int, metavar="N", help="ONNX opset, 18 or later (18)")
    export.add_argument("--register", metavar="NAME", help="log the ONNX model to MLflow and register it as NAME")
    export.add_argument(
        "--thresholds",
        metavar="POLICY",
        help=f"fit per-label thresholds on the val split by this policy ({POLICY_HELP}) and store them with its "
        "name (default: the checkpoint's, see deepfake-mlc calibrate)",
    )
    export.add_argument(
        "--with-cam",
        action="store_true",
        help="onnx: add the class activation maps (W · features, per label) as a second output, checked against "
        "PyTorch's; predict --explain draws them without torch",
    )
    triton = export.add_argument_group("--format triton")
    triton.add_argument(
        "--backend",
        choices=BACKENDS,
        help="Triton's backend: onnxruntime (an ONNX model, the default) or tensorrt (an engine)",
    )
    triton.add_argument("--name", help=f"the model's name in the repository ({MODEL_NAME})")
    triton.add_argument(
        "--max-batch",
        type=positive(),
        metavar="N",
        help=f"largest batch Triton's dynamic batcher forms ({MAX_BATCH_SIZE})",
    )
    triton.add_argument(
        "--queue-delay-us",
        type=positive(zero_allowed=True),
        metavar="US",
        help=f"how long a request may wait for others to batch with ({QUEUE_DELAY_US} µs)",
    )
    triton.add_argument(
        "--instance",
        choices=("cpu", "gpu"),
        help="where Triton runs the model (default: gpu for tensorrt, cpu for onnxruntime)",
    )
    triton.add_argument(
        "--overwrite", action="store_true", default=None, help="replace the model if the repository has it"
    )
    export.set_defaults(func=run_export_command)


TRITON_OPTIONS = {
    "backend": "--backend",
    "name": "--name",
    "max_batch": "--max-batch",
    "queue_delay_us": "--queue-delay-us",
    "instance": "--instance",
    "overwrite": "--overwrite",
}


def run_export_command(args: argparse.Namespace) -> int:
    from rich.console import Console

    from deepfake_mlc.errors import ExportError, QualityGateError
    from deepfake_mlc.export.pipeline import ExportRequest, run_export

    stray = [option for key, option in TRITON_OPTIONS.items() if getattr(args, key) is not None]
    if stray and args.format != "triton":
        raise ExportError(f"{', '.join(stray)}: only with --format triton")
    options = {
        "format": args.format,
        "precision": args.precision,
        "out": args.out,
        "data": args.data,
        "parity_images": args.parity_images,
        "tolerance": args.tolerance,
        "max_map_drop": args.max_map_drop,
        "calibration_images": args.calibration_images,
        "per_channel": args.per_channel,
        "opset": args.opset,
        "register": args.register,
        "thresholds": args.thresholds,
        "with_cam": args.with_cam,
        "backend": args.backend,
        "model_name": args.name,
        "max_batch": args.max_batch,
        "queue_delay_us": args.queue_delay_us,
        "instance": args.instance,
        "overwrite": args.overwrite,
    }
    # options left out keep ExportRequest's defaults, the one place they are set
    request = ExportRequest(args.checkpoint, **{key: value for key, value in options.items() if value is not None})
    result = run_export(request)
    console = Console()
    console.print(_export_table(result))
    failure = result.failure()
    if failure is not None:
        raise QualityGateError(f"parity failed: {failure}; {result.path} is kept for inspection")
    if result.thresholds is not None:
        fitted = ", ".join(f"{t:.3f}" for t in result.thresholds)
        console.print(f"per-label thresholds ({result.threshold_policy or 'fitted'}): {fitted}")
    for label in result.unreached:
        console.print(f"[yellow]{label}: no threshold reaches {result.threshold_policy} on val; the most precise one")
    if result.registered:
        console.print(f"registered: {result.registered}")
    return 0


def _export_table(result: ExportResult) -> Table:
    """One row per figure: fits a narrow terminal whatever the path length."""
    from rich.table import Table

    parity = result.parity
    rows = {
        "file": "\n".join(map(str, result.files)),  # the model first, then what travels with it
        **(
            {}
            if result.repository is None
            else {"Triton model": f"{result.repository.name} in the repository {result.repository.parent}"}
        ),
        "size": f"{result.path.stat().st_size / 1e6:.1f} MB",
        "precision": result.precision,
        "parity": parity.where,
        "max |Δp|": f"{parity.max_abs_diff:.1e}",
        "mAP": f"{parity.map_reference:.2f} (PyTorch) -> {parity.map:.2f} ({parity.map_delta:+.2f})",
        "same labels": f"{parity.identical_label_sets:.1f} % of images",
        "gate": f"{parity.bound}: {'FAIL' if parity.failure() else 'pass'}",
        **(
            {}
            if result.maps_deviation is None
            else {
                "class activation maps": f"max |Δ| {result.maps_deviation:.1e} of their range "
                f"(bound {result.maps_bound}): {'FAIL' if result.failure() else 'pass'}"
            }
        ),
        "time": f"{result.seconds:.1f} s",
    }
    table = Table(title="export", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in rows.items():
        table.add_row(name, value)
    return table
