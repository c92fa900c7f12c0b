"""Image -> tensor pipelines (torchvision v2): resize, flip and colour jitter for training, then normalise.

The preprocessing (size, interpolation, mean, std) is part of the model: it is stored with every
checkpoint and export so inference reproduces it exactly.
"""

from __future__ import annotations

import torch
from torchvision.transforms import InterpolationMode, v2

from deepfake_mlc.config.schema import DataConfig

INTERPOLATION = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
}


def build_transform(cfg: DataConfig, train: bool) -> v2.Compose:
    """The PIL-image -> normalised float tensor pipeline of ``cfg``; augmentation only when ``train``."""
    steps: list[v2.Transform] = [
        v2.ToImage(),
        v2.Resize((cfg.image_size, cfg.image_size), interpolation=INTERPOLATION[cfg.interpolation], antialias=True),
    ]
    if train:
        if cfg.augment.hflip > 0:
            steps.append(v2.RandomHorizontalFlip(p=cfg.augment.hflip))
        if cfg.augment.color_jitter is not None:
            steps.append(v2.ColorJitter(**cfg.augment.color_jitter.model_dump()))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(cfg.mean), std=list(cfg.std))]
    return v2.Compose(steps)
