"""What only an NVIDIA GPU can check: mixed-precision training, PyTorch on the GPU against the CPU, GPU evaluation.

Marked ``gpu`` and skipped without CUDA; ``benchmarks/gpu_check.sh`` runs them (``pytest -m gpu``) on the
first machine lent with a GPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, tiny_overrides, write_run
from deepfake_mlc.config import Config, load_config
from deepfake_mlc.engine import train
from deepfake_mlc.engine.evaluate_checkpoint import evaluate_checkpoint
from deepfake_mlc.metrics.parity import check_parity
from deepfake_mlc.runtime import eval_arrays, open_runner, run_batched
from deepfake_mlc.runtime.runners import open_reference

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU (benchmarks/gpu_check.sh)"),
]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_training_on_the_gpu_with_channels_last(
    precision: str, synth_root: Path, tmp_path: Path
) -> None:
    overrides = [
        *tiny_overrides(synth_root, tmp_path),
        f"train.mixed_precision={precision}",
        "train.channels_last=true",
    ]
    result = train(load_config(Config, REPO / "configs" / "quickstart.yaml", overrides), show_progress=False)
    assert result.best_epoch > 0 and np.isfinite([h["train/loss"] for h in result.history]).all()


def test_pytorch_on_the_gpu_passes_the_quality_gate_against_ieee_fp32_on_the_cpu(
    data_root: Path, tmp_path: Path
) -> None:
    run = write_run(tmp_path / "run", data_root)
    gpu = open_runner(run, "pytorch", device="cuda")
    assert gpu.precision in ("fp32", "tf32") and gpu.device.startswith("cuda")
    images, targets = eval_arrays(data_root, gpu.info, "test")
    reference = open_reference(run)
    parity = check_parity(
        run_batched(gpu, images),
        run_batched(reference, images),
        0.5,
        runtime=gpu.name,
        precision=gpu.precision,
        reference_runtime=reference.name,
        reference_precision=reference.precision,
        targets=targets,
    )
    assert parity.failure() is None, parity.failure()


def test_evaluation_on_the_gpu_equals_the_cpu(data_root: Path, tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", data_root)
    on_gpu = evaluate_checkpoint(run, data_root, "test")
    on_cpu = evaluate_checkpoint(run, data_root, "test", cpu=True)
    assert on_gpu["images"] == on_cpu["images"]
    assert on_gpu["metrics"] == pytest.approx(on_cpu["metrics"], abs=1e-3)  # TF32 may move a score, not a rank
