"""``evaluate`` in any runtime: the figures of a checkpoint's evaluation, for an exported model too.

An exported model (ONNX, INT8, TensorRT) is scored as its runtime serves it, on the same data and with
the same figures as a checkpoint (:func:`~deepfake_mlc.metrics.evaluation.evaluation_report`); its
calibration is inside its graph, so its probabilities are the calibrated ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_mlc.config.schema import Split
from deepfake_mlc.data.degrade import Perturbation
from deepfake_mlc.data.sources import data_for, require_split
from deepfake_mlc.metrics.evaluation import evaluation_report, policy_report
from deepfake_mlc.metrics.multilabel import Convention
from deepfake_mlc.metrics.thresholds import ThresholdPolicy
from deepfake_mlc.runtime import Runner, eval_batches
from deepfake_mlc.runtime.data import preprocessing_config


def split_probabilities(
    runner: Runner,
    source: Path,
    split: Split,
    limit: int | None = None,
    subset: str | None = None,
    perturbation: Perturbation | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The runner's probabilities and the targets of a split (``limit`` images of it), perturbed if asked."""
    probs, targets = [], []
    for images, batch_targets in eval_batches(source, runner.info, split, limit, subset, perturbation, seed):
        probs.append(runner(images))
        targets.append(batch_targets)
    if not probs:
        return np.zeros((0, len(runner.info.label_names)), np.float32), np.zeros((0, len(runner.info.label_names)))
    return np.concatenate(probs), np.concatenate(targets)


def evaluate_runner(
    runner: Runner,
    source: Path,
    split: Split,
    subset: str | None = None,
    threshold: float | None = None,
    policies: Sequence[ThresholdPolicy] = (),
    convention: Convention = "asl",
) -> tuple[dict[str, Any], tuple[np.ndarray, np.ndarray]]:
    """The evaluation report of ``runner`` on ``split`` (``policies`` fitted on val), and its probabilities and
    targets, which a robustness sweep reuses as its clean row."""
    info = runner.info
    labels = info.label_names
    if policies:  # before any work
        data = data_for(Path(source), preprocessing_config(info, subset), subset)
        require_split(data, "val", "threshold policies are fitted on the val split")
    probs, targets = split_probabilities(runner, source, split, None, subset)
    thresholds = np.asarray((threshold,) * len(labels) if threshold is not None else info.decision_thresholds())
    report: dict[str, Any] = {
        "model": info.source,
        "runtime": runner.name,
        "precision": runner.precision,
        "data": str(source),
        "split": split,
        "threshold_source": "--threshold" if threshold is not None else info.threshold_source(),
        **evaluation_report(probs, targets, labels, thresholds, convention),
    }
    if policies:
        fit = split_probabilities(runner, source, "val", None, subset)
        report["policies"] = policy_report(policies, fit, (probs, targets), labels, info.threshold)
    return report, (probs, targets)
