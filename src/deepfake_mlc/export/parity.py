"""What every export is compared with: PyTorch's probabilities in strict IEEE float32 (no TF32).

The comparison and its bounds are the quality gate's (:mod:`deepfake_mlc.metrics.parity`), the same for
export, serve-bench and predict; this module only computes the reference, which needs torch.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from deepfake_mlc.artifacts import ModelInfo
from deepfake_mlc.runtime import run_batched
from deepfake_mlc.runtime.torch_runner import TorchRunner, strict_fp32

REFERENCE_RUNTIME, REFERENCE_PRECISION = "pytorch", "fp32"  # how the gate names the reference below


def reference_probabilities(model: nn.Module, info: ModelInfo, images: np.ndarray) -> np.ndarray:
    """PyTorch's probabilities in IEEE float32: the reference every export is compared with."""
    with strict_fp32():
        return run_batched(TorchRunner(model, info), images)
