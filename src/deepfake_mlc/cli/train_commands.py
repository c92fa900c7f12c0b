"""``deepfake-mlc train``: the same loop under ``python``, ``deepfake-mlc`` or ``accelerate launch``."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepfake_mlc.cli.options import add_overrides
from deepfake_mlc.config.loader import load_config
from deepfake_mlc.config.schema import Config


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train a model (run it under 'accelerate launch' for DDP and mixed precision)",
        description="Train with Accelerate: one CPU, one GPU, many GPUs or many machines, unchanged. "
        "Examples: deepfake-mlc train --config configs/quickstart.yaml; "
        "accelerate launch --multi_gpu --num_processes 8 train --config configs/paper/components/resnet50_asl.yaml",
    )
    train.add_argument("--config", type=Path, help="run config YAML (required unless --resume)")
    add_overrides(train, "train.lr=3e-4")
    train.add_argument(
        "--cpu",
        action="store_true",
        help="train on the CPU even if a GPU is present "
        "(for CPU DDP: ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N ...)",
    )
    train.add_argument(
        "--resume", type=Path, metavar="RUN_DIR", help="continue a run exactly where its last saved state left it"
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from deepfake_mlc.engine import train  # torch/accelerate are imported only when training
    from deepfake_mlc.tune.trial import reporter_from_env  # set when a search runs this as a trial

    if args.resume is None and args.config is None:
        raise FileNotFoundError("train needs --config FILE (or --resume RUN_DIR)")
    cfg = load_config(Config, args.config, args.overrides) if args.resume is None else None
    result = train(
        cfg,  # type: ignore[arg-type]
        cpu=args.cpu,
        resume=args.resume,
        show_progress=not args.no_progress,
        hook=reporter_from_env(),
    )
    return 0 if result.best_epoch > 0 else 1


def register_evaluate(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a checkpoint: the paper's metrics, per-label AP, confusion counts, real-vs-fake view",
    )
    evaluate.add_argument("checkpoint", type=Path, help="run folder or .safetensors checkpoint")
    evaluate.add_argument(
        "--data", type=Path, required=True, help="Seq-DeepFake root folder, manifest .csv, or run config .yaml"
    )
    evaluate.add_argument("--split", choices=["train", "val", "test"], default="test")
    evaluate.add_argument("--subset", choices=["components", "attributes"], help="default: the checkpoint's")
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


def register_report(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser(
        "report",
        help="the paper's Tables I/II (Markdown, CSV) and Fig. 2/3 bar charts from runs, configs or MLflow",
        description="Collect results from run folders, from an MLflow store, or by training configs first; "
        "with --paper, each cell shows the paper's value beside ours.",
    )
    report.add_argument("runs", nargs="*", type=Path, help="finished run folders")
    report.add_argument("--configs", nargs="+", type=Path, default=[], help="train these configs first, then report")
    add_overrides(report, "data.root=DIR (applied to every --configs config)")
    report.add_argument("--mlflow", metavar="URI", help="collect the finished runs of an MLflow store")
    report.add_argument("--experiment", default="deepfake-mlc", help="MLflow experiment (with --mlflow)")
    report.add_argument("--paper", type=Path, help="the paper's tables.csv (e.g. ../shared/paper/tables.csv)")
    report.add_argument("--out", type=Path, default=Path("reports"), help="output folder (default: reports)")
    report.add_argument("--cpu", action="store_true", help="train --configs on the CPU")
    report.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from rich.console import Console

    from deepfake_mlc.engine import train
    from deepfake_mlc.engine.report import from_mlflow, from_run_dirs, write_report

    runs = list(args.runs)
    for config in args.configs:
        runs.append(train(load_config(Config, config, args.overrides), cpu=args.cpu).run_dir)
    results = from_run_dirs(runs) + (from_mlflow(args.mlflow, args.experiment) if args.mlflow else [])
    if not results:
        raise FileNotFoundError("nothing to report: give run folders, --configs or --mlflow")
    console = Console()
    for path in write_report(results, args.out, args.paper):
        if path.suffix == ".md":
            console.print(path.read_text())
        console.print(f"written: {path}")
    return 0
