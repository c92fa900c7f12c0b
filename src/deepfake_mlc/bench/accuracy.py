"""A runtime's accuracy columns: the paper's metrics on the evaluation set, and its parity with the reference.

Parity is three figures, because they fail differently: ``max |Δp|`` catches any numeric drift, the share
of images whose predicted label set is unchanged is what a user of the labels sees, and the mAP change is
what a quantised model is allowed to trade. Which of them must hold, and how tightly, is the quality
gate's call (:mod:`deepfake_mlc.metrics.parity`), the same as export's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepfake_mlc.metrics import summarize
from deepfake_mlc.metrics.parity import Parity


def asl_metrics(probs: np.ndarray, targets: np.ndarray, label_names: tuple[str, ...], threshold: Any) -> dict[str, Any]:
    """The paper's seven metrics and per-label AP, in ASL's convention (the project's default).

    ``threshold`` is one number or one per label (an array broadcast over the label axis).
    """
    return summarize(probs, targets, label_names, threshold, "asl")


def accuracy_columns(
    parity: Parity, probs: np.ndarray, targets: np.ndarray, label_names: tuple[str, ...], threshold: Any
) -> dict[str, Any]:
    """A row's metrics, its parity figures, the gate's bound and the failure if it is out of it."""
    failure = parity.failure()
    return {
        "metrics": asl_metrics(probs, targets, label_names, threshold),
        "map_delta": parity.map_delta,
        "max_abs_diff": parity.max_abs_diff,
        "identical_label_sets": parity.identical_label_sets,
        "gate": str(parity.bound),
        "failures": [] if failure is None else [failure],
    }
