"""A model's probabilities as its metadata says: ``sigmoid(logits / T)`` with its per-label temperatures.

Temperature scaling (Guo et al., 2017) divides each label's logit by a number fitted on held-out data, so a
probability of 0.8 is right about 80 % of the time; the ranking, and so every AP, is unchanged. One function
for every place that turns logits into probabilities (evaluation, the PyTorch runtime, the exported graph),
so none of them can forget it.
"""

from __future__ import annotations

import torch

from deepfake_mlc.artifacts import Calibration


def temperature_tensor(calibration: Calibration | None) -> torch.Tensor | None:
    """The temperatures ``[L]`` as a float32 tensor, ``None`` for an uncalibrated model."""
    return None if calibration is None else torch.tensor(calibration.temperatures, dtype=torch.float32)


def probabilities(logits: torch.Tensor, temperatures: torch.Tensor | None) -> torch.Tensor:
    """``sigmoid(logits / T)`` per label, in float32; plain ``sigmoid`` without temperatures."""
    logits = logits.float()
    return torch.sigmoid(logits if temperatures is None else logits / temperatures.to(logits.device))
