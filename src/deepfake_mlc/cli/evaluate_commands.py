"""``deepfake-mlc evaluate``: a checkpoint on any split of any data set, with every view of its accuracy."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from deepfake_mlc.cli.options import positive
from deepfake_mlc.config.schema import SPLITS, SUBSETS

if TYPE_CHECKING:
    from rich.table import Table


def register(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a checkpoint: the paper's metrics, per-label AP, confusion counts, real-vs-fake view",
    )
    evaluate.add_argument("checkpoint", type=Path, help="run folder or .safetensors checkpoint")
    evaluate.add_argument(
        "--data", type=Path, required=True, help="Seq-DeepFake root folder, manifest .csv, or run config .yaml"
    )
    evaluate.add_argument("--split", choices=SPLITS, default="test")
    evaluate.add_argument("--subset", choices=SUBSETS, help="default: the checkpoint's")
    evaluate.add_argument("--threshold", type=float, help="default: the checkpoint's")
    evaluate.add_argument(
        "--out", type=Path, help="folder for evaluation.json, pr_curves.png (and localisation.png with --explain)"
    )
    evaluate.add_argument("--cpu", action="store_true")
    evaluate.add_argument(
        "--explain",
        action="store_true",
        help="also score the class activation maps of each present label against its mask (energy game, pointing "
        "game, uniform baseline); the data needs masks",
    )
    evaluate.add_argument(
        "--explain-method",
        default="gradcam",
        metavar="NAME",
        help="gradcam, hirescam, gradcam++ or layercam (default: gradcam)",
    )
    evaluate.add_argument("--explain-layer", metavar="NAME", help="default: the deepest stage with at least a 7×7 grid")
    evaluate.add_argument(
        "--explain-limit",
        type=positive(),
        metavar="N",
        help="explain N of the images with masks, spread evenly over the split (default: all of them)",
    )
    evaluate.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from deepfake_mlc.engine.evaluate_checkpoint import ExplainRequest, evaluate_checkpoint
    from deepfake_mlc.engine.progress import metric_table

    explain = ExplainRequest(args.explain_method, args.explain_layer, args.explain_limit) if args.explain else None
    report = evaluate_checkpoint(
        args.checkpoint, args.data, args.split, args.out, args.subset, args.threshold, args.cpu, explain
    )
    console = Console()
    name = Path(args.checkpoint).name
    console.print(
        metric_table(
            {name: report["metrics"]},
            f"{args.split} split, {report['images']} images, threshold {report['threshold']}",
            {name: report["params"]} if report["params"] else None,
        )
    )
    labels = Table(title="per label", title_justify="left")
    for column in ("label", "AP", "TP", "FP", "FN", "TN"):
        labels.add_column(column, justify="left" if column == "label" else "right")
    for label, counts in report["confusion"].items():
        labels.add_row(
            label, f"{report['metrics'][f'AP/{label}']:.1f}", *(str(counts[k]) for k in ("TP", "FP", "FN", "TN"))
        )
    console.print(labels)
    d = report["detection"]
    console.print(
        f"exact label set: {d['subset_accuracy']:.1f} %  |  real vs fake: accuracy {d['fake_accuracy']:.1f} %, "
        f"AUC {d['fake_auc']:.1f} %"
    )
    if "localisation" in report:
        console.print(_localisation_table(report["localisation"]))
    if args.out:
        figures = ("pr_curves.png", "localisation.png") if "localisation" in report else ("pr_curves.png",)
        console.print(f"written: {', '.join(str(args.out / name) for name in ('evaluation.json', *figures))}")
    return 0


def _localisation_table(localisation: dict) -> Table:
    """Per label and overall: energy game, pointing game and uniform baseline, and how many images scored it."""
    from rich.table import Table

    table = Table(
        title=f"localisation: {localisation['method']} at {localisation['layer']}, {localisation['images']} images",
        title_justify="left",
        caption="energy game: share of the map's energy in the mask; pointing game: its maximum in the mask; "
        "uniform baseline: the mask's share of the image (a flat map's energy game)",
        caption_justify="left",
    )
    table.add_column("label", no_wrap=True)
    for column in ("energy game", "pointing game", "uniform baseline", "images"):
        table.add_column(column, justify="right")
    over_labels, over_instances = localisation["mean_over_labels"], localisation["mean_over_instances"]
    share = lambda value: "" if value is None else f"{value:.3f}"  # noqa: E731
    rows = [
        *localisation["per_label"].items(),
        ("mean over labels", {**over_labels, "images": f"{over_labels['labels']} labels"}),
        ("mean over instances", {**over_instances, "images": f"{over_instances['instances']} pairs"}),
    ]
    for name, row in rows:
        metrics = (share(row[m]) for m in ("energy_game", "pointing_game", "uniform_baseline"))
        table.add_row(name, *metrics, str(row["images"]))
    return table
