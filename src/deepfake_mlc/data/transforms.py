"""Image -> tensor pipelines: the model's preprocessing, with flip and colour jitter in between for training.

Resizing and normalising are :class:`~deepfake_mlc.data.preprocess.Preprocessing`'s, the implementation
the runtimes use without torch; the augmentations are torchvision v2's, on the resized uint8 image. The
preprocessing (size, interpolation, mean, std) is part of the model: it is stored with every checkpoint
and export so inference reproduces it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms import v2

from deepfake_mlc.config.schema import DataConfig
from deepfake_mlc.data.preprocess import Preprocessing


@dataclass(frozen=True)
class ToNormalizedTensor:
    """The last step: a ``(3, H, W)`` uint8 tensor -> the normalised float tensor ``preprocessing`` makes."""

    preprocessing: Preprocessing

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.preprocessing.normalize(image.numpy()))


def build_transform(cfg: DataConfig, train: bool) -> v2.Compose:
    """The PIL-image -> normalised float tensor pipeline of ``cfg``; augmentation only when ``train``."""
    preprocessing = Preprocessing.of(cfg)
    steps = [preprocessing.resize, v2.ToImage()]
    if train:
        if cfg.augment.hflip > 0:
            steps.append(v2.RandomHorizontalFlip(p=cfg.augment.hflip))
        if cfg.augment.color_jitter is not None:
            steps.append(v2.ColorJitter(**cfg.augment.color_jitter.model_dump()))
    steps.append(ToNormalizedTensor(preprocessing))
    return v2.Compose(steps)
