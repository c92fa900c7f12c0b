"""``deepfake-mlc predict``: label probabilities and decisions for images, from any model file we write."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from deepfake_mlc.cli.options import positive
from deepfake_mlc.runtime.runners import RUNTIMES

if TYPE_CHECKING:
    from rich.table import Table

    from deepfake_mlc.metrics.parity import Parity
    from deepfake_mlc.runtime.base import Runner
    from deepfake_mlc.runtime.predict import Prediction


def _prediction_file(text: str) -> Path:
    path = Path(text)
    if path.suffix not in (".json", ".csv"):
        raise argparse.ArgumentTypeError(f"{text}: predictions are written to a .json or .csv file")
    return path


def register(commands: argparse._SubParsersAction) -> None:
    predict = commands.add_parser(
        "predict", help="label probabilities and decisions for images, from a checkpoint, ONNX model or engine"
    )
    predict.add_argument("images", nargs="+", type=Path, help="image files or folders (searched recursively)")
    predict.add_argument(
        "--model", type=Path, required=True, metavar="PATH", help="run folder, .safetensors, .onnx or .engine"
    )
    predict.add_argument(
        "--runtime", metavar="NAME", help=f"{', '.join(RUNTIMES)} (default: the fastest this machine has for the file)"
    )
    predict.add_argument(
        "--out", type=_prediction_file, metavar="FILE", help="write the predictions to FILE.json or FILE.csv"
    )
    predict.add_argument(
        "--threshold", type=float, metavar="P", help="one threshold for every label (default: the model's)"
    )
    predict.add_argument("--batch-size", type=positive(), default=32, metavar="N")
    predict.add_argument("--threads", type=positive(), metavar="N", help="CPU threads of the runtime")
    predict.add_argument(
        "--check",
        type=positive(),
        metavar="N",
        help="first run the first N images in the reference runtime too (IEEE float32 on the CPU) and stop unless "
        "the runtime passes the quality gate export applies; the JSON output records the check",
    )
    predict.set_defaults(func=run_predict_command)


def run_predict_command(args: argparse.Namespace) -> int:
    from rich.console import Console

    from deepfake_mlc.errors import QualityGateError
    from deepfake_mlc.runtime import available_runtimes, open_runner
    from deepfake_mlc.runtime.predict import check_runtime, collect_images, predict_files, write_predictions

    images = collect_images(args.images)
    # none available only for an engine on a machine without TensorRT: opening it then says why
    runtime = args.runtime or next(iter(available_runtimes(args.model)), "tensorrt")
    runner = open_runner(args.model, runtime, threads=args.threads)
    labels = runner.info.label_names
    thresholds = (args.threshold,) * len(labels) if args.threshold is not None else runner.info.decision_thresholds()
    check = None
    if args.check is not None:
        check = check_runtime(runner, args.model, images[: args.check], thresholds, args.threads)
        failure = check.failure()
        if failure is not None:
            raise QualityGateError(f"--check failed: {failure}")
        Console().print(_check_line(check), highlight=False, soft_wrap=True)
    predictions = predict_files(runner, images, thresholds, args.batch_size)
    Console().print(_predict_table(predictions, runner, thresholds))
    if args.out is not None:
        write_predictions(args.out, predictions, runner, args.model, thresholds, check)
        Console().print(f"written: {args.out}")
    return 0


def _check_line(check: Parity) -> str:
    return (
        f"check passed: {check.where}: max |Δp| {check.max_abs_diff:.1e} ({check.bound}), "
        f"same labels on {check.identical_label_sets:.1f} % of images"
    )


def _predict_table(predictions: list[Prediction], runner: Runner, thresholds: tuple[float, ...]) -> Table:
    from rich.table import Table

    labels = runner.info.label_names
    title = f"{runner.name} ({runner.precision}, {runner.device}); a label fires above its threshold"
    table = Table(title=title, title_justify="left")
    table.add_column("image")
    for name, threshold in zip(labels, thresholds, strict=True):
        table.add_column(f"{name}\n> {threshold:.2f}", justify="right")
    table.add_column("labels")
    common = Path(os.path.commonpath([p.path.parent for p in predictions]))  # show paths below it
    for p in predictions:
        cells = [
            f"[bold]{v:.3f}[/bold]" if fired else f"{v:.3f}"
            for v, fired in zip(p.probabilities, p.decisions, strict=True)
        ]
        table.add_row(str(p.path.relative_to(common)), *cells, ", ".join(p.fired(labels)) or "original")
    return table
