"""``deepfake-mlc report``: the paper's tables and figures from finished runs, configs or an MLflow store."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepfake_mlc.artifacts import find_runs
from deepfake_mlc.cli.options import add_overrides
from deepfake_mlc.config import Config, load_config
from deepfake_mlc.errors import InputNotFoundError


def register(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser(
        "report",
        help="the paper's Tables I/II (Markdown, CSV) and Fig. 2/3 bar charts from runs, configs or MLflow",
        description="Collect results from run folders, from an MLflow store, or by training configs first; "
        "with --paper, each cell shows the paper's value beside ours.",
    )
    report.add_argument(
        "runs", nargs="*", type=Path, help="run folders, or folders of runs (runs/): every finished run beneath"
    )
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
    from deepfake_mlc.engine.paper_tables import from_mlflow, from_run_dirs, write_report

    console = Console()
    runs = find_runs(args.runs)
    unfinished = [run for run in runs if not run.is_finished()]
    if unfinished:
        names = ", ".join(str(run.path) for run in unfinished)
        console.print(
            f"skipped {len(unfinished)} unfinished run(s), without a run summary yet: {names}", soft_wrap=True
        )
    finished = [run.path for run in runs if run.is_finished()]
    for config in args.configs:
        finished.append(train(load_config(Config, config, args.overrides), cpu=args.cpu).run_dir)
    results = from_run_dirs(finished) + (from_mlflow(args.mlflow, args.experiment) if args.mlflow else [])
    if not results:
        raise InputNotFoundError("nothing to report: give run folders (or a folder of runs), --configs or --mlflow")
    for path in write_report(results, args.out, args.paper):
        if path.suffix == ".md":
            console.print(path.read_text())
        console.print(f"written: {path}", soft_wrap=True)
    return 0
