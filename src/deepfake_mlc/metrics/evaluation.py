"""One evaluation's figures, whoever computed the probabilities (Accelerate on a checkpoint, or any runtime).

The paper's metrics and per-label AP at the model's decision thresholds, the real-vs-fake view, per-label
confusion counts, and how well the probabilities are calibrated; and, for chosen threshold policies, what
each costs on data it was not fitted on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deepfake_mlc.metrics.calibration import calibration_report
from deepfake_mlc.metrics.multilabel import Convention, confusion_counts, detection_metrics, summarize
from deepfake_mlc.metrics.thresholds import ThresholdPolicy, fit_thresholds, policy_outcome


def evaluation_report(
    probs: np.ndarray,
    targets: np.ndarray,
    label_names: Sequence[str],
    thresholds: np.ndarray,
    convention: Convention = "asl",
) -> dict[str, Any]:
    """Metrics, detection view, confusion counts and calibration of ``probs`` at per-label ``thresholds``."""
    thresholds = np.asarray(thresholds, dtype=np.float64)
    return {
        "images": len(probs),
        "thresholds": dict(zip(label_names, map(float, thresholds), strict=True)),
        "metrics": summarize(probs, targets, label_names, thresholds, convention),
        "detection": detection_metrics(probs, targets, thresholds),
        "confusion": {
            name: dict(zip(("TP", "FP", "FN", "TN"), map(int, row), strict=True))
            for name, row in zip(label_names, confusion_counts(probs, targets, thresholds), strict=True)
        },
        "calibration": calibration_report(probs, targets, label_names),
    }


def policy_report(
    policies: Sequence[ThresholdPolicy],
    fit: tuple[np.ndarray, np.ndarray],
    judged: tuple[np.ndarray, np.ndarray],
    label_names: Sequence[str],
    default: float,
) -> dict[str, Any]:
    """For each policy, its thresholds fitted on ``fit`` (probabilities, targets of validation data) and, per
    label, the false-positive rate on originals, recall and precision they give on ``judged`` (test data)."""
    report = {}
    for policy in policies:
        fitted = fit_thresholds(policy, *fit, default=default)
        report[str(policy)] = {
            "per_label": policy_outcome(*judged, fitted.thresholds, label_names),
            "unreached": [label_names[k] for k in fitted.unreached],
        }
    return report
