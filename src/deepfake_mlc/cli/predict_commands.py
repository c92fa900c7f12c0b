"""``deepfake-mlc predict``: label probabilities for every face of photos and videos, from any model file we write.

Exit status 0 when every input was read, 1 when some could not be (each is reported, the rest predicted
and written), 2 for a user error that stops the command (a bad model file, no inputs at all).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from deepfake_mlc.cli.options import add_faces_option, positive, report_unreadable
from deepfake_mlc.faces.cutter import MIN_FACE
from deepfake_mlc.runtime.runners import RUNTIMES

if TYPE_CHECKING:
    from rich.table import Table

    from deepfake_mlc.config.schema import FaceCropConfig
    from deepfake_mlc.metrics.parity import Parity
    from deepfake_mlc.runtime.base import Runner
    from deepfake_mlc.runtime.predict import FilePrediction


def _prediction_file(text: str) -> Path:
    path = Path(text)
    if path.suffix not in (".json", ".csv"):
        raise argparse.ArgumentTypeError(f"{text}: predictions are written to a .json or .csv file")
    return path


def register(commands: argparse._SubParsersAction) -> None:
    predict = commands.add_parser(
        "predict",
        help="label probabilities for every face of photos and videos, from a checkpoint, ONNX model or engine",
    )
    predict.add_argument(
        "inputs", nargs="+", type=Path, help="photos, videos, or folders of them (searched recursively)"
    )
    predict.add_argument(
        "--model", type=Path, required=True, metavar="PATH", help="run folder, .safetensors, .onnx or .engine"
    )
    add_faces_option(predict)
    predict.add_argument(
        "--fps", type=positive(float), default=5.0, metavar="N", help="video frames sampled per second (default: 5)"
    )
    predict.add_argument(
        "--min-face",
        type=positive(),
        default=MIN_FACE,
        metavar="PX",
        help=f"smallest face searched for, in pixels (default: {MIN_FACE}; a smaller face would be enlarged over 5x "
        "to a 224 px model input, with little of its manipulation traces left, and the search takes twice as long)",
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
    predict.add_argument("--threads", type=positive(), metavar="N", help="CPU threads of the runtime and detector")
    predict.add_argument(
        "--explain",
        type=Path,
        metavar="DIR",
        help="also write each photo's per-label heatmaps into DIR (overlays, a panel, an .npz), from the class "
        "activation maps of a model exported with --with-cam: no torch, no second pass",
    )
    predict.add_argument(
        "--explain-labels",
        choices=("fired", "all"),
        default="fired",
        help="labels drawn with --explain: those over threshold (default) or all",
    )
    predict.add_argument(
        "--check",
        type=positive(),
        metavar="N",
        help="first run the first N photos (whole) in the reference runtime too (IEEE float32 on the CPU) and stop "
        "unless the runtime passes the quality gate export applies; the JSON output records the check",
    )
    predict.set_defaults(func=run_predict_command)


def run_predict_command(args: argparse.Namespace) -> int:
    from rich.console import Console

    from deepfake_mlc.data.inputs import collect_inputs
    from deepfake_mlc.errors import QualityGateError, RuntimeUnavailable
    from deepfake_mlc.faces.cutter import FaceCutter, face_crop_for
    from deepfake_mlc.runtime import available_runtimes, open_runner
    from deepfake_mlc.runtime.predict import INPUT_SUFFIXES, Predictor, check_runtime, is_video
    from deepfake_mlc.runtime.predict_maps import MapWriter
    from deepfake_mlc.runtime.predict_output import write_predictions

    console = Console(highlight=False, soft_wrap=True)
    inputs = collect_inputs(args.inputs, INPUT_SUFFIXES)
    # none available only for an engine on a machine without TensorRT: opening it then says why
    runtime = args.runtime or next(iter(available_runtimes(args.model)), "tensorrt")
    runner = open_runner(args.model, runtime, threads=args.threads)
    labels = runner.info.label_names
    thresholds = (args.threshold,) * len(labels) if args.threshold is not None else runner.info.decision_thresholds()
    decided = "--threshold" if args.threshold is not None else runner.info.threshold_source()
    check = None
    if args.check is not None:
        check = check_runtime(runner, args.model, inputs, thresholds, args.threads, limit=args.check)
        failure = check.failure()
        if failure is not None:
            raise QualityGateError(f"--check failed: {failure}")
        console.print(_check_line(check))
    face_crop, note = face_crop_for(runner.info.preprocessing.face_crop, args.faces)
    if note:
        console.print(note)
    cutter = FaceCutter(face_crop, threads=args.threads, min_face=args.min_face)
    maps = None
    if args.explain is not None:
        if not getattr(runner, "has_maps", False):
            raise RuntimeUnavailable(
                f"--explain draws the class activation maps of an ONNX model exported with --with-cam; {args.model} "
                "has none (re-export it, or explain the checkpoint with deepfake-mlc explain)"
            )
        crop_size = None if face_crop is None else face_crop.size
        photos = [path for path in dict.fromkeys(inputs) if not is_video(path)]  # videos get no pictures
        maps = MapWriter(args.explain, photos, labels, crop_size, args.explain_labels)
    results = Predictor(runner, cutter, thresholds, args.batch_size, maps).predict(inputs, fps=args.fps)
    console.print(_predict_table(results, runner, thresholds, decided, face_crop))
    if args.out is not None:
        write_predictions(args.out, results, runner, args.model, (thresholds, decided), face_crop, args.fps, check)
        console.print(f"written: {args.out}")
    if args.explain is not None:
        console.print(f"heatmaps written to {args.explain} (photos only)")
    return report_unreadable(results, "inputs", "predicted")


def _check_line(check: Parity) -> str:
    return (
        f"check passed: {check.where}: max |Δp| {check.max_abs_diff:.1e} ({check.bound}), "
        f"same labels on {check.identical_label_sets:.1f} % of images"
    )


def _predict_table(
    results: list[FilePrediction],
    runner: Runner,
    thresholds: tuple[float, ...],
    decided: str,
    face_crop: FaceCropConfig | None,
) -> Table:
    """A row per face of a photo, per track of a video, and per file without a face or unreadable; the title says
    where the thresholds come from (``decided``) and whether the probabilities are calibrated."""
    from rich.table import Table

    labels = runner.info.label_names
    crop = "whole images" if face_crop is None else f"faces cut by the {face_crop.policy} policy"
    calibrated = "calibrated probabilities" if runner.info.calibration else "uncalibrated probabilities"
    title = (
        f"{runner.name} ({runner.precision}, {runner.device}), {crop}, {calibrated}; a label fires above its "
        f"threshold ({decided})"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("file")
    table.add_column("face")
    for name, threshold in zip(labels, thresholds, strict=True):
        table.add_column(f"{name}\n> {threshold:.2f}", justify="right")
    table.add_column("labels")
    common = Path(os.path.commonpath([r.path.parent for r in results]))  # show paths below it
    for result in results:
        name = str(result.path.relative_to(common))
        rows = [
            (f"#{i} box {_box(face.box)}", face.probabilities, face.decisions) for i, face in enumerate(result.faces)
        ] + [(f"track {t.id}, {t.frames} frames", t.probabilities, t.decisions) for t in result.tracks]
        for what, probabilities, decisions in rows:
            cells = [
                f"[bold]{v:.3f}[/bold]" if fire else f"{v:.3f}"
                for v, fire in zip(probabilities, decisions, strict=True)
            ]
            fired = ", ".join(n for n, fire in zip(labels, decisions, strict=True) if fire)
            table.add_row(name, what, *cells, fired or "original")
        if result.error is not None:
            table.add_row(name, f"[red]error: {result.error}[/red]", *[""] * (len(labels) + 1))
        elif not rows:
            table.add_row(name, "no face found", *[""] * (len(labels) + 1))
    return table


def _box(box: tuple[float, ...]) -> str:
    return "[" + ", ".join(f"{v:.0f}" for v in box) + "]"
