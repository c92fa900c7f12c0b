"""Does a runtime give the answers PyTorch gives? Metrics on the evaluation set and parity with the reference.

Three figures, because they fail differently: ``max |Δp|`` catches any numeric drift (an fp32 runtime
should be within ~1e-5), the share of images whose predicted label set is unchanged is what a user of the
labels sees, and the mAP change is what a quantised model is allowed to trade.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepfake_mlc.metrics import summarize

LOOSENESS = {"fp32": 0, "tf32": 1, "bf16": 2, "fp16": 2, "int8": 3}  # larger: further from fp32 arithmetic


def accuracy(probs: np.ndarray, targets: np.ndarray, label_names: tuple[str, ...], threshold: Any) -> dict[str, Any]:
    """The paper's seven metrics and per-label AP (ASL's convention, the project's default).

    ``threshold`` is one number or one per label (an array broadcast over the label axis).
    """
    return summarize(probs, targets, label_names, threshold, "asl")


def parity(probs: np.ndarray, reference: np.ndarray, threshold: Any) -> dict[str, float]:
    """``max_abs_diff`` of the probabilities and the percentage of images with the same predicted label set."""
    if probs.shape != reference.shape:
        raise ValueError(f"outputs of shape {probs.shape} cannot be compared with the reference's {reference.shape}")
    same = ((probs > threshold) == (reference > threshold)).all(axis=1)
    return {
        "max_abs_diff": float(np.abs(probs.astype(np.float64) - reference).max()),
        "identical_label_sets": 100.0 * float(same.mean()),
    }


def compare(
    probs: np.ndarray, reference: np.ndarray, targets: np.ndarray, label_names: tuple[str, ...], threshold: Any
) -> dict[str, Any]:
    """A runtime's metrics, its mAP change from the reference's and the parity figures."""
    metrics = accuracy(probs, targets, label_names, threshold)
    map_delta = metrics["mAP"] - accuracy(reference, targets, label_names, threshold)["mAP"]
    return {"metrics": metrics, "map_delta": map_delta, **parity(probs, reference, threshold)}


@dataclass(frozen=True)
class Tolerances:
    """Release gate: ``max |Δp|`` per arithmetic (none for int8, judged by mAP alone) and the largest mAP drop."""

    fp32: float = 1e-4
    fp16: float = 1e-2
    max_map_drop: float = 1.0

    def max_abs_diff(self, precision: str, reference_precision: str) -> float | None:
        """The bound for the looser of the two arithmetics (a TF32 reference cannot check fp32 to 1e-4)."""
        looseness = max(LOOSENESS.get(precision, 3), LOOSENESS.get(reference_precision, 3))
        return self.fp32 if looseness == 0 else self.fp16 if looseness <= 2 else None

    def failures(self, name: str, precision: str, reference_precision: str, row: Mapping[str, Any]) -> list[str]:
        """One message per figure of ``row`` that is out of tolerance, naming the runtime and the figure."""
        found = []
        bound = self.max_abs_diff(precision, reference_precision)
        if bound is not None and row["max_abs_diff"] > bound:
            found.append(f"{name} ({precision}): max |Δp| {row['max_abs_diff']:.2e} > {bound:.0e}")
        if -row["map_delta"] > self.max_map_drop:
            found.append(f"{name} ({precision}): mAP drop {-row['map_delta']:.2f} > {self.max_map_drop:g} points")
        return found
