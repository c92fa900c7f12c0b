"""Image -> tensor pipelines: the model's preprocessing, with augmentation around the resize for training.

Resizing and normalising are :class:`~deepfake_mlc.data.preprocess.Preprocessing`'s, the implementation
the runtimes use without torch; flip and colour jitter are torchvision v2's, on the resized uint8 image.
The degradations a shared image goes through (:class:`RandomDegradation`, off by default) come first, on
the image as read, before anyone resizes it. The preprocessing (size, interpolation, mean, std) is part
of the model: it is stored with every checkpoint and export so inference reproduces it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from deepfake_mlc.config.schema import (
    AugmentConfig,
    BlurAugment,
    DataConfig,
    DownscaleAugment,
    JpegAugment,
    NoiseAugment,
)
from deepfake_mlc.data.degrade import Perturbation
from deepfake_mlc.data.preprocess import Preprocessing


def _chance(p: float) -> bool:
    return bool(torch.rand(()) < p)


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


@dataclass(frozen=True)
class RandomDegradation:
    """Each configured degradation, with its probability, at a severity drawn uniformly from its range.

    The order is downscale, blur, noise, JPEG: JPEG last, as re-sharing ends with an encoder. A downscaled
    image stays small; the model's resize that follows brings it to the model's size, as it would a small
    shared image. The draws are torch's (a DataLoader seeds each worker's), the noise's numpy generator too.
    """

    downscale: DownscaleAugment | None = None
    blur: BlurAugment | None = None
    noise: NoiseAugment | None = None
    jpeg: JpegAugment | None = None

    @classmethod
    def of(cls, augment: AugmentConfig) -> RandomDegradation | None:
        """The step ``augment`` asks for; None when every degradation is off."""
        step = cls(augment.downscale, augment.blur, augment.noise, augment.jpeg)
        return step if any(part is not None for part in (step.downscale, step.blur, step.noise, step.jpeg)) else None

    def draw(self) -> list[Perturbation]:
        """The perturbations of one image, in the order they apply."""
        drawn = []
        if self.downscale is not None and _chance(self.downscale.p):
            drawn.append(Perturbation("resize", _uniform(*self.downscale.scale)))
        if self.blur is not None and _chance(self.blur.p):
            drawn.append(Perturbation("blur", _uniform(*self.blur.sigma)))
        if self.noise is not None and _chance(self.noise.p):
            drawn.append(Perturbation("noise", _uniform(*self.noise.std)))
        if self.jpeg is not None and _chance(self.jpeg.p):
            low, high = self.jpeg.quality
            drawn.append(Perturbation("jpeg", int(torch.randint(low, high + 1, ()))))
        return drawn

    def __call__(self, image: Image.Image) -> Image.Image:
        drawn = self.draw()
        if drawn:
            rng = np.random.default_rng(int(torch.randint(2**62, ())))
            for perturbation in drawn:
                image = perturbation(image, rng)
        return image


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
        degradation = RandomDegradation.of(cfg.augment)
        if degradation is not None:
            steps.insert(0, degradation)  # on the image as read: sharing degrades it before anyone resizes it
        if cfg.augment.hflip > 0:
            steps.append(v2.RandomHorizontalFlip(p=cfg.augment.hflip))
        if cfg.augment.color_jitter is not None:
            steps.append(v2.ColorJitter(**cfg.augment.color_jitter.model_dump()))
    steps.append(ToNormalizedTensor(preprocessing))
    return v2.Compose(steps)
