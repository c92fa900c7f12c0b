"""PyTorch as a runtime: eager or ``torch.compile``d, on the GPU when there is one.

On a GPU, float32 convolutions run as TF32 unless the process disabled it; the runner reports which
(``precision`` tf32 or fp32) rather than calling both fp32. :func:`strict_fp32` is what the export
parity reference runs under.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from deepfake_mlc.artifacts import ModelInfo
from deepfake_mlc.models.calibrated import probabilities, temperature_tensor


@contextmanager
def strict_fp32() -> Iterator[None]:
    """IEEE float32 matmuls and convolutions on GPUs (no TF32) for the duration."""
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    saved = matmul.fp32_precision, conv.fp32_precision
    matmul.fp32_precision = conv.fp32_precision = "ieee"
    try:
        yield
    finally:
        matmul.fp32_precision, conv.fp32_precision = saved


def _uses_tf32() -> bool:
    return "tf32" in (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision)


class TorchRunner:
    """A PyTorch model behind the :class:`~deepfake_mlc.runtime.base.Runner` interface, calibrated as ``info`` says."""

    def __init__(
        self,
        model: nn.Module,
        info: ModelInfo,
        *,
        compile: bool = False,
        device: str | None = None,
        threads: int | None = None,
    ) -> None:
        if threads is not None:
            torch.set_num_threads(threads)
        self.name = "pytorch-compile" if compile else "pytorch"
        self.device = device or ("cuda:0" if torch.cuda.is_available() else "cpu")
        self.precision = "tf32" if self.device.startswith("cuda") and _uses_tf32() else "fp32"
        self.info = info
        self._temperatures = temperature_tensor(info.calibration)
        model = model.to(self.device).eval()
        self._model = torch.compile(model, dynamic=True) if compile else model

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        logits = self._model(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(self.device))
        return probabilities(logits, self._temperatures).cpu().numpy()

    def details(self) -> dict[str, Any]:
        return {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": self.device}
