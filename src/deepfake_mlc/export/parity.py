"""What every export is compared with: PyTorch's probabilities in strict IEEE float32 (no TF32).

The comparison and its bounds are the quality gate's (:mod:`deepfake_mlc.metrics.parity`), the same for
export, serve-bench and predict; this module only computes the reference, which needs torch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from deepfake_mlc.artifacts import ModelInfo
from deepfake_mlc.models.cam import ProbabilitiesAndMaps
from deepfake_mlc.runtime import run_batched
from deepfake_mlc.runtime.torch_runner import TorchRunner, strict_fp32

REFERENCE_RUNTIME, REFERENCE_PRECISION = "pytorch", "fp32"  # how the gate names the reference below


def reference_probabilities(model: nn.Module, info: ModelInfo, images: np.ndarray) -> np.ndarray:
    """PyTorch's probabilities in IEEE float32: the reference every export is compared with."""
    with strict_fp32():
        return run_batched(TorchRunner(model, info), images)


def maps_deviation(model: nn.Module, maps: np.ndarray, images: np.ndarray) -> float:
    """Largest |Δ| between ``maps`` (an export's class activation maps of ``images``) and PyTorch's in IEEE
    float32, relative to the largest |value| of PyTorch's: maps have no fixed scale, probabilities do."""
    wrapped = ProbabilitiesAndMaps(model).eval()
    with strict_fp32(), torch.no_grad():
        reference = wrapped(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)))[1].numpy()
    return float(np.abs(maps - reference).max() / max(float(np.abs(reference).max()), 1e-12))
