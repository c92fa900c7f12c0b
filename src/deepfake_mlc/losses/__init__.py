"""Multi-label losses by config name: BCE-with-logits, MultiLabelSoftMargin and Asymmetric Loss."""

from __future__ import annotations

from torch import nn

from deepfake_mlc.config.schema import LossConfig
from deepfake_mlc.losses.asymmetric import AsymmetricLoss


def build_loss(cfg: LossConfig) -> nn.Module:
    """The loss module of ``cfg`` (all take logits ``[n, C]`` and 0/1 targets)."""
    if cfg.name == "asl":
        return AsymmetricLoss(cfg.gamma_neg, cfg.gamma_pos, cfg.clip, cfg.eps, cfg.reduction or "sum")
    if cfg.name == "bce":
        return nn.BCEWithLogitsLoss(reduction=cfg.reduction or "mean")
    return nn.MultiLabelSoftMarginLoss(reduction=cfg.reduction or "mean")


__all__ = ["AsymmetricLoss", "build_loss"]
