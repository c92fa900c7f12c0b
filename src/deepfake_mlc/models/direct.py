"""Direct methods: one CNN maps the image to one logit per label (ResNet-50/101, TResNet-M, any timm net)."""

from __future__ import annotations

from torch import nn

from deepfake_mlc.config.schema import ModelConfig
from deepfake_mlc.models.backbone import create_timm
from deepfake_mlc.models.registry import PaperRow, register_model


def build_direct(cfg: ModelConfig, num_labels: int, default_backbone: str) -> nn.Module:
    """A timm network with a ``num_labels``-way linear head (its own pooling unless ``cfg.pool``)."""
    return create_timm(cfg, cfg.backbone or default_backbone, num_labels, cfg.pool)


def _register(name: str, description: str, paper: PaperRow) -> None:
    register_model(name, "direct", description, paper=paper)(
        lambda cfg, num_labels: build_direct(cfg, num_labels, name)
    )


_register("resnet50", "ResNet-50 with a multi-label linear head", PaperRow("ResNet50", 23.8))
_register("resnet101", "ResNet-101 with a multi-label linear head", PaperRow("ResNet101", 42.8))
_register("tresnet_m", "TResNet-M with a multi-label linear head (ASL's backbone)", PaperRow("TResNetM", 29.4))
