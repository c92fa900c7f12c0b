"""The model's preprocessing in PIL and numpy: resize, scale to [0, 1], standardise per channel.

The one implementation of it: the torch data pipelines wrap it (:func:`~deepfake_mlc.data.transforms.build_transform`)
and the runtimes call it directly, so a served model, which has no torch, sees the bytes it was trained and
evaluated on. The arithmetic is torchvision's (``Resize`` on a PIL image, ``ToDtype(scale=True)``,
``Normalize``), to the bit. Resizing in PIL rather than on a tensor also keeps the pixels the same on every
CPU: torch's uint8 resize takes another rounding path on CPUs without AVX2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image

PIL_FILTERS = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
}


class HasPreprocessing(Protocol):
    """Anything that carries a preprocessing: a data config, a model's info."""

    image_size: int
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class Preprocessing:
    """Image -> ``(3, image_size, image_size)`` float32: ``(pixel / 255 - mean) / std``."""

    image_size: int
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, source: HasPreprocessing) -> Preprocessing:
        return cls(source.image_size, source.interpolation, tuple(source.mean), tuple(source.std))

    def resize(self, image: Image.Image) -> Image.Image:
        """To ``image_size`` square with the model's filter (PIL antialiases when it shrinks)."""
        size = (self.image_size, self.image_size)
        return image if image.size == size else image.resize(size, PIL_FILTERS[self.interpolation])

    def normalize(self, pixels: np.ndarray) -> np.ndarray:
        """``(3, H, W)`` uint8 -> float32, as torchvision: a float32 multiply by 1/255, then ``(x - mean) / std``."""
        x = pixels.astype(np.float32) * np.float32(1 / 255)
        return (x - np.asarray(self.mean, np.float32)[:, None, None]) / np.asarray(self.std, np.float32)[:, None, None]

    def __call__(self, image: Image.Image) -> np.ndarray:
        """An RGB image, preprocessed."""
        return self.normalize(np.asarray(self.resize(image)).transpose(2, 0, 1))
