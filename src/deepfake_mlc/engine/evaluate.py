"""Evaluation that counts every image exactly once, on one process or many."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from deepfake_mlc.metrics import MetricAccumulator
from deepfake_mlc.models.calibrated import probabilities


@torch.no_grad()
def predict_logits(model: nn.Module, loader: DataLoader, accelerator: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (float32) and targets of the whole loader, on every process.

    ``gather_for_metrics`` collects each process's share and drops the samples the distributed sampler
    repeated to even out the last batch, so a 2-process run sees exactly the images a 1-process run sees.
    """
    was_training = model.training
    model.eval()
    results = MetricAccumulator()
    for batch in loader:
        if batch is None:  # every image of the batch was unreadable and skipped
            continue
        images, targets = batch
        with accelerator.autocast():
            logits = model(images)
        results.update(*accelerator.gather_for_metrics((logits.float(), targets)))
    model.train(was_training)
    return results.state()


def predict(model: nn.Module, loader: DataLoader, accelerator: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Sigmoid probabilities (uncalibrated: the training's validation) and targets of the whole loader."""
    logits, targets = predict_logits(model, loader, accelerator)
    return probabilities(logits, None), targets
