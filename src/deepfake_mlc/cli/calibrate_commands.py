"""``deepfake-mlc calibrate``: per-label temperatures and threshold policies, fitted on validation data."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from deepfake_mlc.config.schema import SUBSETS
from deepfake_mlc.metrics.thresholds import POLICY_HELP


def register(commands: argparse._SubParsersAction) -> None:
    calibrate = commands.add_parser(
        "calibrate",
        help="fit per-label temperatures (and a threshold policy) on the val split; store them in the checkpoint",
        description="Temperature scaling per label, fitted on the validation split, then (with --thresholds) "
        "per-label decision thresholds on the calibrated probabilities. Both are stored in the checkpoint's "
        "metadata, so predict, every runtime and later exports apply them; the test split, when there is one, "
        "shows the calibration error before and after and what the thresholds cost.",
    )
    calibrate.add_argument("checkpoint", type=Path, help="run folder or .safetensors checkpoint (its file is updated)")
    calibrate.add_argument(
        "--data", type=Path, help="Seq-DeepFake root, manifest .csv or run config .yaml (default: the run's)"
    )
    calibrate.add_argument("--subset", choices=SUBSETS, help="default: the checkpoint's")
    calibrate.add_argument(
        "--thresholds",
        metavar="POLICY",
        help=f"per-label thresholds to fit: {POLICY_HELP}; fpr:X flags at most X of the originals (images with no "
        "manipulation) per label (default: refit the checkpoint's own policy, if it has one)",
    )
    calibrate.add_argument(
        "--no-temperature",
        action="store_true",
        help="fit no temperatures: the probabilities stay the raw sigmoid (an earlier calibration is removed)",
    )
    calibrate.add_argument("--out", type=Path, help="folder for calibration.json, reliability.png (RUN/calibration)")
    calibrate.add_argument("--cpu", action="store_true")
    calibrate.set_defaults(func=run_calibrate)


def run_calibrate(args: argparse.Namespace) -> int:
    from rich.console import Console

    from deepfake_mlc.engine.calibrate import calibrate_checkpoint
    from deepfake_mlc.metrics.thresholds import parse_policy

    policy = None if args.thresholds is None else parse_policy(args.thresholds)  # a bad name fails before any work
    report = calibrate_checkpoint(
        args.checkpoint, args.data, policy, not args.no_temperature, args.subset, args.out, args.cpu
    )
    if report is None:  # not the main process of a distributed run: it has printed and written nothing
        return 0
    console = Console()
    console.print(calibration_table(report))
    for label in report["unreached"]:
        console.print(
            f"[yellow]{label}: no threshold reaches {report['threshold_policy']} on val; the most precise one is used"
        )
    console.print("written: " + ", ".join(report["written"]))
    return 0


def calibration_table(report: dict[str, Any]) -> Any:
    """Per label: temperature, ECE and Brier before -> after (on test when there is one), threshold and its cost."""
    from rich.table import Table

    judged = "test" if "test" in report else "val"
    figures = report[judged]
    policy = report["threshold_policy"]
    table = Table(
        title=f"calibration fitted on val ({report['fitted_on']['images']} images), judged on {judged}"
        + (f" ({figures['images']} images)" if judged == "test" else "")
        + (f"; thresholds: {policy}" if policy else ""),
        title_justify="left",
        caption="T: temperature; ECE: expected calibration error, 15 equal-mass bins (0: a probability p is right "
        "p of the time), before → after; Brier: mean squared error of the probabilities; log loss: binary "
        "cross-entropy, what the temperatures minimise"
        + ("; FPR orig.: share of the images with no manipulation flagged" if policy else ""),
        caption_justify="left",
    )
    columns = ["label", "T", "ECE", "Brier", "log loss"]
    outcome = figures.get("thresholds") if judged == "test" else None
    columns += ["threshold"] if policy else []
    columns += ["FPR orig.", "recall"] if outcome else []
    for column in columns:
        table.add_column(column, justify="left" if column == "label" else "right", no_wrap=True)
    before, after = figures["before"], figures["after"]
    temperatures = report["temperatures"] or {}
    rows = [(name, before["per_label"][name], after["per_label"][name]) for name in before["per_label"]]
    for name, b, a in [*rows, ("all labels", before, after)]:
        cells = [
            name,
            f"{temperatures[name]:.2f}" if name in temperatures else "",
            f"{b['ece']:.3f} → {a['ece']:.3f}",
            f"{b['brier']:.3f} → {a['brier']:.3f}",
            f"{b['nll']:.3f} → {a['nll']:.3f}",
        ]
        if policy:
            cells.append(f"{report['thresholds'][name]:.3f}" if name in report["thresholds"] else "")
        if outcome:
            row = outcome.get(name)
            cells += [_share(row and row["fpr_originals"]), _share(row and row["recall"])]
        table.add_row(*cells)
    return table


def _share(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f} %"
