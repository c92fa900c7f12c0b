"""Accuracy under the degradations a shared image goes through, per manipulation, in any runtime.

Each perturbation at each severity re-reads the evaluation images, alters them before the model's own
preprocessing (:mod:`deepfake_mlc.data.degrade`, deterministic and seeded), and scores the runtime's
probabilities: mAP and every label's AP against severity, beside the clean images' figures. The runtime is
any :func:`~deepfake_mlc.runtime.open_runner` can open, so an int8 or TensorRT export is checked under the
same perturbations as its checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_mlc.bench.accuracy import asl_metrics
from deepfake_mlc.bench.evaluation import split_probabilities
from deepfake_mlc.config.schema import Split
from deepfake_mlc.data.degrade import KINDS, Perturbation
from deepfake_mlc.runtime import Runner


def _row(name: str, severity: float | None, probs: np.ndarray, targets: np.ndarray, runner: Runner) -> dict[str, Any]:
    labels = runner.info.label_names
    metrics = asl_metrics(probs, targets, labels, np.asarray(runner.info.decision_thresholds()))
    return {
        "perturbation": name,
        "severity": severity,
        "mAP": metrics["mAP"],
        "AP": {label: metrics[f"AP/{label}"] for label in labels},
    }


def robustness(
    runner: Runner,
    source: Path,
    perturbations: Sequence[Perturbation],
    split: Split = "test",
    limit: int | None = None,
    subset: str | None = None,
    seed: int = 0,
    clean: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """mAP and per-label AP on the clean images (``clean``: their probabilities and targets, if already computed)
    and under each perturbation, with the change in mAP from clean."""
    clean = clean or split_probabilities(runner, source, split, limit, subset)
    rows = [_row("none", None, *clean, runner)]
    for perturbation in perturbations:
        probs, targets = split_probabilities(runner, source, split, limit, subset, perturbation, seed)
        rows.append(_row(perturbation.kind, perturbation.severity, probs, targets, runner))
    for row in rows:
        row["mAP_change"] = row["mAP"] - rows[0]["mAP"]
    return {
        "runtime": runner.name,
        "precision": runner.precision,
        "split": split,
        "images": len(clean[1]),
        "seed": seed,
        "rows": rows,
    }


def severity_order(kind: str, severities: Sequence[float]) -> list[float]:
    """Mild to strong: JPEG quality and resize scale fall as they get worse, blur and noise rise."""
    return sorted(severities, reverse=kind in ("jpeg", "resize"))


def plot_robustness(report: dict[str, Any], path: Path, title: str) -> Path:
    """One panel per perturbation kind: mAP (bold) and each label's AP against severity, clean images first."""
    from matplotlib.figure import Figure

    from deepfake_mlc.metrics.plots import save_figure

    rows = report["rows"]
    clean = rows[0]
    kinds = list(dict.fromkeys(row["perturbation"] for row in rows[1:]))
    fig = Figure(figsize=(4.2 * max(1, len(kinds)), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(1, len(kinds)), sharey=True))
    labels = list(clean["AP"])
    for ax, kind in zip(axes, kinds, strict=False):
        by_severity = {row["severity"]: row for row in rows[1:] if row["perturbation"] == kind}
        severities = severity_order(kind, list(by_severity))
        points = [clean, *(by_severity[s] for s in severities)]
        ticks = ["clean", *(f"{s:g}" for s in severities)]
        xs = range(len(points))
        for label in labels:
            ax.plot(xs, [p["AP"][label] for p in points], marker=".", linewidth=1, alpha=0.8, label=f"AP {label}")
        ax.plot(xs, [p["mAP"] for p in points], marker="o", color="black", linewidth=2.5, label="mAP")
        ax.set_xticks(list(xs), ticks)
        ax.set_xlabel(f"{kind} ({KINDS[kind].severity.lower()})")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("AP (%)")
    axes[-1].legend(loc="lower left", fontsize="small")
    fig.suptitle(title)
    return save_figure(fig, path)
