"""Per-label decision thresholds that maximise F1 on validation data.

One threshold for every label (0.5) is rarely right: labels differ in frequency and in how confident
the model is about them. The tuned thresholds travel in the exported model's metadata, and predict
uses them. A label fires when ``p > threshold``, as in the metrics' default convention.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from deepfake_mlc.artifacts import ModelInfo
from deepfake_mlc.config.schema import Split
from deepfake_mlc.export.parity import reference_probabilities
from deepfake_mlc.runtime import eval_batches


def best_f1_thresholds(probs: np.ndarray, targets: np.ndarray, default: float) -> np.ndarray:
    """For each label, the threshold whose decisions ``p > t`` reach the highest F1.

    Candidates lie midway between consecutive distinct scores (a threshold on a score would make the
    decision hinge on float rounding); among equally good ones the highest wins (fewest false alarms).
    A label without positives in the data keeps ``default``.
    """
    thresholds = np.full(probs.shape[1], default, dtype=np.float64)
    for label in range(probs.shape[1]):
        positives = targets[:, label].sum()
        if positives == 0:
            continue
        order = np.argsort(-probs[:, label], kind="stable")
        scores, hits = probs[order, label].astype(np.float64), targets[order, label]
        predicted = np.arange(1, len(scores) + 1)  # firing on the top k images, k = 1..n
        f1 = 2 * np.cumsum(hits) / (predicted + positives)
        is_cut = np.append(scores[1:] < scores[:-1], True)  # images with equal scores fire together
        best = int(np.argmax(np.where(is_cut, f1, -1.0)))
        below = scores[best + 1] if best + 1 < len(scores) else 0.0
        thresholds[label] = (scores[best] + below) / 2
    return thresholds


def tune_thresholds(
    model: nn.Module, info: ModelInfo, source: Path, split: Split = "val", subset: str | None = None
) -> tuple[float, ...]:
    """F1-optimal thresholds of ``model`` on a split (the whole split, streamed in batches)."""
    probs, targets = [], []
    for images, batch_targets in eval_batches(source, info, split, subset=subset):
        probs.append(reference_probabilities(model, info, images))
        targets.append(batch_targets)
    return tuple(float(t) for t in best_f1_thresholds(np.concatenate(probs), np.concatenate(targets), info.threshold))
