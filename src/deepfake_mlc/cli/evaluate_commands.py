"""``deepfake-mlc evaluate``: a checkpoint on any split of any data set, with every view of its accuracy."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepfake_mlc.config.schema import SPLITS, SUBSETS


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
    evaluate.add_argument("--out", type=Path, help="folder for evaluation.json and pr_curves.png")
    evaluate.add_argument("--cpu", action="store_true")
    evaluate.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from deepfake_mlc.engine.evaluate_checkpoint import evaluate_checkpoint
    from deepfake_mlc.engine.progress import metric_table

    report = evaluate_checkpoint(
        args.checkpoint, args.data, args.split, args.out, args.subset, args.threshold, args.cpu
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
    if args.out:
        console.print(f"written: {args.out / 'evaluation.json'}, {args.out / 'pr_curves.png'}")
    return 0
