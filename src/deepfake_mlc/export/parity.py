"""Does the exported model compute what PyTorch computes? Judged on real evaluation images.

fp32 and fp16 exports are judged by the largest absolute probability difference against PyTorch in
strict float32 (no TF32); int8 changes probabilities by design and is judged by its mAP drop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from deepfake_mlc.metrics import multilabel_metrics
from deepfake_mlc.runtime import ModelInfo, Runner, run_batched
from deepfake_mlc.runtime.torch_runner import TorchRunner, strict_fp32

# max |Δp| per precision; tf32 is what a GPU float32 runtime gives unless TF32 is switched off
TOLERANCES = {"fp32": 1e-4, "tf32": 1e-3, "fp16": 1e-2}
DEFAULT_MAX_MAP_DROP = 1.0  # mAP points, for int8


@dataclass(frozen=True)
class ParityReport:
    """The exported model against PyTorch fp32 on the same images."""

    runtime: str
    precision: str
    images: int
    max_abs_diff: float
    tolerance: float | None
    map_reference: float
    map_exported: float
    max_map_drop: float | None

    @property
    def map_drop(self) -> float:
        return self.map_reference - self.map_exported

    def failure(self) -> str | None:
        """Why the export fails parity, in one line; ``None`` when it passes."""
        where = f"on {self.images} images with {self.runtime} ({self.precision})"
        if self.tolerance is not None and not self.max_abs_diff <= self.tolerance:
            return f"max |Δp| {self.max_abs_diff:.2e} > tolerance {self.tolerance:.0e} {where}"
        if self.max_map_drop is not None and not self.map_drop <= self.max_map_drop:
            return (
                f"mAP dropped {self.map_drop:.2f} points (fp32 {self.map_reference:.2f} -> {self.map_exported:.2f}) "
                f"> allowed {self.max_map_drop:.2f} {where}"
            )
        return None


def reference_probabilities(model: nn.Module, info: ModelInfo, images: np.ndarray) -> np.ndarray:
    """PyTorch's probabilities in IEEE float32: the reference every export is compared with."""
    with strict_fp32():
        return run_batched(TorchRunner(model, info), images)


def check_parity(
    runner: Runner,
    images: np.ndarray,
    targets: np.ndarray,
    reference: np.ndarray,
    tolerance: float | None = None,
    max_map_drop: float = DEFAULT_MAX_MAP_DROP,
) -> ParityReport:
    """Run ``runner`` on ``images`` and compare with ``reference``; int8 is judged by ``max_map_drop``.

    ``tolerance`` defaults to the runner's precision's (:data:`TOLERANCES`); none for int8 unless given.
    """
    probs = run_batched(runner, images)
    int8 = runner.precision == "int8"
    return ParityReport(
        runtime=runner.name,
        precision=runner.precision,
        images=len(images),
        max_abs_diff=float(np.abs(probs - reference).max()),
        tolerance=tolerance if tolerance is not None else TOLERANCES.get(runner.precision),
        map_reference=float(multilabel_metrics(reference, targets)["mAP"]),
        map_exported=float(multilabel_metrics(probs, targets)["mAP"]),
        max_map_drop=max_map_drop if int8 else None,
    )
