"""``deepfake-mlc evaluate``: a model on any split of any data set, with every view of its accuracy.

A checkpoint is evaluated by the training's own loop (Accelerate: one process or many); an exported model,
or a checkpoint with ``--runtime``, by that runtime. ``--perturb`` adds the robustness sweep, ``--policies``
the threshold policies' cost, in either case.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepfake_mlc.cli.options import positive
from deepfake_mlc.config.schema import SPLITS, SUBSETS
from deepfake_mlc.data.degrade import ALLOWED as PERTURBATIONS
from deepfake_mlc.metrics.thresholds import POLICY_HELP
from deepfake_mlc.runtime.runners import RUNTIMES

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


def register(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a model: the paper's metrics, per-label AP, confusion counts, real-vs-fake view, "
        "calibration; threshold policies and robustness to degradations on request",
    )
    evaluate.add_argument(
        "checkpoint", type=Path, metavar="MODEL", help="run folder, .safetensors checkpoint, .onnx model or .engine"
    )
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
        "--runtime",
        choices=RUNTIMES,
        help="run the model in this runtime (default: a checkpoint by the training loop, an export by the first "
        "runtime that runs it here)",
    )
    evaluate.add_argument(
        "--policies",
        nargs="+",
        metavar="POLICY",
        help=f"threshold policies to fit on the val split and judge on this one ({POLICY_HELP}): per label, the "
        "false-positive rate on originals and the recall each gives",
    )
    evaluate.add_argument(
        "--perturb",
        nargs="+",
        metavar="KIND:S1,S2",
        help=f"re-evaluate under each degradation and severity, applied before the model's preprocessing "
        f"({PERTURBATIONS}), e.g. jpeg:90,70,50 resize:0.5,0.25 blur:1,2 noise:0.02,0.05",
    )
    evaluate.add_argument(
        "--perturb-limit",
        type=positive(),
        metavar="N",
        help="with --perturb: N images of the split, spread evenly (default: all)",
    )
    evaluate.add_argument("--seed", type=int, help="with --perturb: seed of the noise (default: 0)")
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

    from deepfake_mlc.artifacts import model_kind
    from deepfake_mlc.data.degrade import parse_perturbations
    from deepfake_mlc.errors import ConfigError
    from deepfake_mlc.metrics.thresholds import parse_policy

    # every name and severity checked before any work
    policies = tuple(parse_policy(text) for text in args.policies or ())
    perturbations = parse_perturbations(args.perturb or [])
    if not perturbations and (args.perturb_limit is not None or args.seed is not None):
        raise ConfigError("--perturb-limit and --seed go with --perturb")
    by_runtime = args.runtime is not None or model_kind(args.checkpoint) != "checkpoint"
    if by_runtime and args.explain:
        why = "leave out --runtime" if args.runtime else f"{args.checkpoint} is an exported model"
        raise ConfigError(f"--explain needs a checkpoint evaluated by the training loop ({why})")
    if by_runtime:
        report, runner, clean = _evaluate_in_runtime(args, policies)
    else:
        from deepfake_mlc.engine.evaluate_checkpoint import ExplainRequest, evaluate_checkpoint

        explain = ExplainRequest(args.explain_method, args.explain_layer, args.explain_limit) if args.explain else None
        report = evaluate_checkpoint(
            args.checkpoint, args.data, args.split, args.out, args.subset, args.threshold, args.cpu, explain, policies
        )
        if report is None:  # not the main process of a distributed evaluation: the main one reports
            return 0
        runner, clean = None, None
    console = Console()
    _print_report(console, report, Path(args.checkpoint).name, args.split)
    if perturbations:
        clean = None if args.perturb_limit else clean  # the clean row is scored on the perturbed images
        report["robustness"] = _robustness(args, perturbations, runner, clean, console)
    if args.out:
        written = _write(args.out, report, clean if by_runtime else None, Path(args.checkpoint).name, args.split)
        console.print(f"written: {', '.join(map(str, written))}")
    return 0


def _evaluate_in_runtime(args: argparse.Namespace, policies: tuple) -> tuple[dict[str, Any], Any, Any]:
    """The report of the model in ``--runtime`` (default: the first that runs it here; on the CPU with --cpu)."""
    from deepfake_mlc.artifacts import model_kind, read_checkpoint_meta
    from deepfake_mlc.bench.evaluation import evaluate_runner
    from deepfake_mlc.errors import RuntimeUnavailable
    from deepfake_mlc.runtime import available_runtimes, open_runner

    runtime = args.runtime
    if runtime is None:
        here = [r for r in available_runtimes(args.checkpoint) if not args.cpu or r in ("pytorch", "ort-cpu")]
        if not here:
            raise RuntimeUnavailable(f"no runtime on this machine runs {args.checkpoint} (see --runtime)")
        runtime = here[0]
    runner = open_runner(args.checkpoint, runtime, device="cpu" if args.cpu else None)
    convention = "asl"
    if model_kind(args.checkpoint) == "checkpoint":  # the convention it was trained and evaluated with
        convention = read_checkpoint_meta(args.checkpoint).config.get("train", {}).get("convention", "asl")
    report, clean = evaluate_runner(runner, args.data, args.split, args.subset, args.threshold, policies, convention)
    return report, runner, clean


def _robustness(args: argparse.Namespace, perturbations: list, runner: Any, clean: Any, console: Console) -> dict:
    """The sweep, in the runtime that evaluated the model (PyTorch for a checkpoint), and its table."""
    from deepfake_mlc.bench.robustness import robustness
    from deepfake_mlc.runtime import open_runner

    if runner is None:
        runner = open_runner(args.checkpoint, "pytorch", device="cpu" if args.cpu else None)
    seed = args.seed or 0
    result = robustness(runner, args.data, perturbations, args.split, args.perturb_limit, args.subset, seed, clean)
    console.print(_robustness_table(result))
    return result


def _write(out: Path, report: dict[str, Any], clean: Any, name: str, split: str) -> list[Path]:
    """The JSON, and the figures the training loop's evaluation has not drawn (all of them for a runtime's:
    ``clean`` holds its probabilities and targets); without matplotlib (the serving image), no figures."""
    import logging

    from deepfake_mlc.artifacts import write_json_atomically

    out.mkdir(parents=True, exist_ok=True)
    written = [write_json_atomically(out / "evaluation.json", report)]
    if clean is None:  # the training loop's evaluation drew its figures
        written += [out / "pr_curves.png", out / "reliability.png"]
        written += [out / "localisation.png"] if "localisation" in report else []
    title = f"{name}: {split}"
    try:
        from deepfake_mlc.bench.robustness import plot_robustness
        from deepfake_mlc.metrics.plots import plot_pr_curves, plot_reliability
    except ImportError as err:
        logging.getLogger(__name__).warning("figures not drawn: %s", err)
        return written
    if clean is not None:
        labels = list(report["thresholds"])
        written.append(plot_pr_curves(*clean, labels, out / "pr_curves.png", title=title))
        written.append(plot_reliability({report["runtime"]: clean}, labels, out / "reliability.png", title))
    if "robustness" in report:
        result = report["robustness"]
        title += f" split, {result['images']} images, {result['runtime']} {result['precision']}"
        written.append(plot_robustness(result, out / "robustness.png", title))
    return written


def _print_report(console: Console, report: dict[str, Any], name: str, split: str) -> None:
    from rich.table import Table

    from deepfake_mlc.metrics.tables import metric_table

    where = f", {report['runtime']} {report['precision']}" if "runtime" in report else ""
    console.print(
        metric_table(
            {name: report["metrics"]},
            f"{split} split, {report['images']} images{where}, thresholds: {report['threshold_source']}",
            {name: report["params"]} if report.get("params") else None,
        )
    )
    calibration = report["calibration"]
    uncalibrated = report.get("calibration_uncalibrated")
    labels = Table(
        title="per label",
        title_justify="left",
        caption=f"ECE: expected calibration error, {calibration['bins']} {calibration['binning']} bins"
        + ("; before: without the model's temperatures" if uncalibrated else ""),
        caption_justify="left",
    )
    columns = ["label", "AP", "threshold", "TP", "FP", "FN", "TN", "ECE", "Brier"]
    if uncalibrated:
        columns.insert(7, "ECE before")
    for column in columns:
        labels.add_column(column, justify="left" if column == "label" else "right")
    for label, counts in report["confusion"].items():
        ece = calibration["per_label"][label]
        cells = [
            label,
            f"{report['metrics'][f'AP/{label}']:.1f}",
            f"{report['thresholds'][label]:.3f}",
            *(str(counts[k]) for k in ("TP", "FP", "FN", "TN")),
            *([f"{uncalibrated['per_label'][label]['ece']:.3f}"] if uncalibrated else []),
            f"{ece['ece']:.3f}",
            f"{ece['brier']:.3f}",
        ]
        labels.add_row(*cells)
    overall = ["all labels", "", "", "", "", "", ""]
    overall += [f"{uncalibrated['ece']:.3f}"] if uncalibrated else []
    labels.add_row(*overall, f"{calibration['ece']:.3f}", f"{calibration['brier']:.3f}", style="bold")
    console.print(labels)
    d = report["detection"]
    console.print(
        f"exact label set: {d['subset_accuracy']:.1f} %  |  real vs fake: accuracy {d['fake_accuracy']:.1f} %, "
        f"AUC {d['fake_auc']:.1f} %"
    )
    if "policies" in report:
        console.print(_policies_table(report["policies"], split))
    if "localisation" in report:
        console.print(_localisation_table(report["localisation"]))


def _policies_table(policies: dict[str, Any], split: str) -> Table:
    """Per policy and label: the threshold fitted on val, and on this split the FPR on originals and recall."""
    from rich.table import Table

    caption = "FPR on originals: share of the images with no manipulation that the label flags"
    if any(result["unreached"] for result in policies.values()):
        caption += "; * no threshold reached the policy's precision on val (the most precise one is used)"
    table = Table(
        title=f"threshold policies: fitted on val, judged on {split}",
        title_justify="left",
        caption=caption,
        caption_justify="left",
    )
    for column in ("policy", "label", "threshold", "FPR on originals", "flagged originals", "recall", "precision"):
        table.add_column(column, justify="left" if column in ("policy", "label") else "right")
    share = lambda value: "" if value is None else f"{100 * value:.1f} %"  # noqa: E731
    for name, result in policies.items():
        for index, (label, row) in enumerate(result["per_label"].items()):
            table.add_row(
                name if index == 0 else "",
                label + (" *" if label in result["unreached"] else ""),
                f"{row['threshold']:.3f}",
                share(row["fpr_originals"]),
                f"{row['flagged_originals']} / {row['originals']}",
                share(row["recall"]),
                share(row["precision"]),
                end_section=index == len(result["per_label"]) - 1,
            )
    return table


def _robustness_table(result: dict[str, Any]) -> Table:
    """One row per perturbation and severity: mAP, its change from the clean images, and every label's AP."""
    from rich.table import Table

    table = Table(
        title=f"robustness: {result['split']} split, {result['images']} images, {result['runtime']} "
        f"{result['precision']} (AP in %)",
        title_justify="left",
    )
    labels = list(result["rows"][0]["AP"])
    for column in ("perturbation", "mAP", "Δ mAP", *labels):
        table.add_column(column, justify="left" if column == "perturbation" else "right")
    for row in result["rows"]:
        name = "clean" if row["severity"] is None else f"{row['perturbation']}:{row['severity']:g}"
        table.add_row(
            name,
            f"{row['mAP']:.1f}",
            "" if row["severity"] is None else f"{row['mAP_change']:+.1f}",
            *(f"{row['AP'][label]:.1f}" for label in labels),
        )
    return table


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
