"""Optimiser and learning-rate schedule, as timm's train.py sets them up.

Weight decay is not applied to norms and biases (parameters with fewer than two dimensions). The
backbone may learn slower than the head (ML-GCN trains its CNN at a tenth of the graph's rate).
Schedules step once per optimiser step, over ``epochs × steps_per_epoch`` steps.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepfake_mlc.config.schema import TrainConfig


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """Four groups at most: (backbone | head) × (decayed | not decayed)."""
    if hasattr(model, "get_classifier"):  # a timm network: its classifier is the head, the rest the backbone
        head_params = {id(p) for p in model.get_classifier().parameters()}
        is_head = lambda name, p: id(p) in head_params  # noqa: E731
    else:  # a graph model: everything outside .backbone (the graph network) is the head
        is_head = lambda name, p: not name.startswith("backbone.")  # noqa: E731
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups.setdefault((is_head(name, param), param.ndim > 1), []).append(param)
    return [
        {
            "params": params,
            "lr": cfg.lr * (1.0 if head else cfg.backbone_lr_scale),
            "weight_decay": cfg.weight_decay if decay else 0.0,
        }
        for (head, decay), params in sorted(groups.items())
    ]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    if cfg.optimizer == "adam":  # Adam's decay is L2 in the gradient, as the ASL recipe's "true wd" is not
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total, pct_start=cfg.pct_start
        )
    if cfg.scheduler == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    warmup = int(cfg.warmup_epochs * steps_per_epoch)

    def cosine(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)
