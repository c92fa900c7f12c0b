"""What every runtime shares: the runner interface and batched running."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from deepfake_mlc.artifacts import ModelInfo

GPU_HINT = "pip install 'deepfake-mlc[gpu]'"


class Runner(Protocol):
    """A loaded model that turns normalised images into sigmoid probabilities, whatever runs it.

    ``name``: pytorch, pytorch-compile, ort-cpu, ort-cuda, ort-tensorrt or tensorrt; ``precision``:
    fp32, tf32 (GPU float32 with TensorFloat-32 matmuls and convolutions), fp16 or int8.
    """

    name: str
    precision: str
    device: str
    info: ModelInfo

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """``(N, 3, H, W)`` float32, already normalised -> ``(N, labels)`` float32 probabilities."""
        ...

    def details(self) -> dict[str, Any]:
        """Threads, providers and library versions: what a benchmark table must name."""
        ...


def run_batched(runner: Runner, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Probabilities of many images, ``batch_size`` at a time (memory stays bounded)."""
    chunks = [runner(images[start : start + batch_size]) for start in range(0, len(images), batch_size)]
    return np.concatenate(chunks) if chunks else np.zeros((0, len(runner.info.label_names)), np.float32)
