"""``deepfake-mlc explain``: where in each photo a checkpoint sees each manipulation, as heatmaps over the photo.

Exit status 0 when every image was read, 1 when some could not be (each is reported, the rest explained),
2 for a user error that stops the command (a bad checkpoint, layer or method, no images at all).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from deepfake_mlc.cli.options import add_faces_option, report_unreadable

if TYPE_CHECKING:
    from rich.table import Table

    from deepfake_mlc.explain.files import Explained


def register(commands: argparse._SubParsersAction) -> None:
    explain = commands.add_parser(
        "explain",
        help="per-label heatmaps (Grad-CAM and kin) of where a checkpoint sees each manipulation in photos",
    )
    explain.add_argument("inputs", nargs="+", type=Path, help="photos, or folders of them (searched recursively)")
    explain.add_argument("--model", type=Path, required=True, metavar="RUN|CKPT", help="run folder or .safetensors")
    explain.add_argument(
        "--method",
        default="gradcam",
        metavar="NAME",
        help="gradcam, hirescam, gradcam++ or layercam, each on the label's logit (default: gradcam)",
    )
    explain.add_argument(
        "--layer",
        metavar="NAME",
        help="the module whose activations are explained (default: the deepest stage with at least a 7×7 grid)",
    )
    explain.add_argument(
        "--labels",
        choices=("fired", "all"),
        default="fired",
        help="draw the labels over their threshold, or all of them (the .npz always has every label; default: fired)",
    )
    add_faces_option(explain)
    explain.add_argument(
        "--threshold", type=float, metavar="P", help="one threshold for every label (default: the model's)"
    )
    explain.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the pictures and maps")
    explain.set_defaults(func=run_explain)


def run_explain(args: argparse.Namespace) -> int:
    from rich.console import Console

    from deepfake_mlc.data.inputs import collect_inputs
    from deepfake_mlc.data.preprocess import Preprocessing
    from deepfake_mlc.explain.cam import Explainer
    from deepfake_mlc.explain.files import PhotoExplainer
    from deepfake_mlc.faces.cutter import FaceCutter, face_crop_for
    from deepfake_mlc.models.loading import load_checkpoint

    console = Console(highlight=False, soft_wrap=True)
    paths = collect_inputs(args.inputs)
    model, _, meta = load_checkpoint(args.model)
    labels = meta.label_names
    thresholds = (args.threshold,) * len(labels) if args.threshold is not None else meta.decision_thresholds()
    face_crop, note = face_crop_for(meta.preprocessing.face_crop, args.faces)
    if note:
        console.print(note)
    size = meta.preprocessing.image_size
    with Explainer(model, size, args.method, args.layer, calibration=meta.calibration) as explainer:
        photos = PhotoExplainer(
            explainer, FaceCutter(face_crop), Preprocessing.of(meta.preprocessing), labels, thresholds, args.labels
        )
        results = photos.explain(paths, args.out)
    crop = "whole images" if face_crop is None else f"faces cut by the {face_crop.policy} policy"
    console.print(_table(results, f"{args.method} at {explainer.layer}, {crop}", args.out))
    read = [r for r in results if r.error is None]
    if read:
        seconds = sum(r.seconds for r in read)
        console.print(
            f"{len(read)} images in {seconds:.1f} s, {seconds / len(read):.2f} s per image; written to {args.out}"
        )
    return report_unreadable(results, "images", "explained")


def _table(results: list[Explained], title: str, out: Path) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in ("image", "faces", "labels shown", "files written", "seconds"):
        table.add_column(column, justify="right" if column in ("faces", "seconds") else "left")
    common = Path(os.path.commonpath([r.path.parent for r in results]))  # show paths below it
    for r in results:
        name = str(r.path.relative_to(common))
        if r.error is not None:
            table.add_row(name, "", f"[red]error: {r.error}[/red]", "", "")
            continue
        shown = ", ".join(r.shown) or ("no face found" if not r.faces else "no label over threshold")
        stem = next((str(f.with_suffix("").relative_to(out)) for f in r.files if f.suffix == ".npz"), None)
        files = f"{len(r.files)}: {stem}_*.png, {stem}.npz" if stem else ""
        table.add_row(name, str(r.faces), shown, files, f"{r.seconds:.2f}")
    return table
