"""Per-label decision thresholds fitted at export, by a policy (:mod:`deepfake_mlc.metrics.thresholds`).

One threshold for every label (0.5) is rarely right: labels differ in frequency and in how confident
the model is about them. The thresholds are fitted on the validation split with the probabilities the
export serves (calibrated, when the checkpoint has temperatures), travel in the exported model's metadata
with the policy's name, and predict uses them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from deepfake_mlc.artifacts import ModelInfo
from deepfake_mlc.config.schema import Split
from deepfake_mlc.export.parity import reference_probabilities
from deepfake_mlc.metrics.thresholds import FittedThresholds, ThresholdPolicy, fit_thresholds
from deepfake_mlc.runtime import eval_batches


def fit_policy(
    model: nn.Module,
    info: ModelInfo,
    source: Path,
    policy: ThresholdPolicy,
    split: Split = "val",
    subset: str | None = None,
) -> FittedThresholds:
    """``policy``'s thresholds for ``model`` on a split (the whole split, streamed in batches)."""
    probs, targets = [], []
    for images, batch_targets in eval_batches(source, info, split, subset=subset):
        probs.append(reference_probabilities(model, info, images))
        targets.append(batch_targets)
    return fit_thresholds(policy, np.concatenate(probs), np.concatenate(targets), info.threshold)
