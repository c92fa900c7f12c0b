"""The config schema: one typed section per concern, every field with its default and its range."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from deepfake_mlc.config.loader import StrictModel

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Split = Literal["train", "val", "test"]
JitterRange = tuple[float, float] | float


class ColorJitterConfig(StrictModel):
    """Arguments of torchvision's ColorJitter; a number ``x`` means the range ``[1 - x, 1 + x]``.

    Defaults are the Seq-DeepFake (SeqFakeFormer) training recipe's.
    """

    brightness: JitterRange = (0.5, 1.3)
    contrast: JitterRange = (0.8, 1.5)
    saturation: JitterRange = (0.2, 1.5)
    hue: JitterRange = 0.0


class AugmentConfig(StrictModel):
    """Training-time augmentation; evaluation only resizes and normalises."""

    hflip: float = Field(0.5, ge=0.0, le=1.0, description="probability of a horizontal flip")
    color_jitter: ColorJitterConfig | None = Field(
        default_factory=ColorJitterConfig, description="null disables colour jitter"
    )


class ManifestSplits(StrictModel):
    """CSV manifests (columns ``path``, ``labels``) of a user's own data set, one per split."""

    train: Path
    val: Path | None = None
    test: Path | None = None


class DataConfig(StrictModel):
    """Where the images are, how they are read and how they are turned into tensors."""

    format: Literal["seqdeepfake", "manifest"] = "seqdeepfake"
    root: Path | None = Field(None, description="Seq-DeepFake root: the folder holding both subsets")
    subset: Literal["components", "attributes"] = "components"
    manifests: ManifestSplits | None = None
    labels: list[str] | None = Field(None, description="label names of a manifest data set, in order")
    image_size: int = Field(224, ge=16, le=2048)
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    batch_size: int = Field(128, ge=1, description="per-process batch size")
    eval_batch_size: int | None = Field(None, ge=1, description="defaults to batch_size")
    num_workers: int = Field(4, ge=0)
    on_corrupt: Literal["error", "skip"] = Field(
        "error", description="unreadable image: stop with its path, or skip it and count it"
    )

    @model_validator(mode="after")
    def _source_is_complete(self) -> DataConfig:
        if self.format == "seqdeepfake" and self.root is None:
            raise ValueError("data.root is required when data.format is 'seqdeepfake'")
        if self.format == "manifest":
            if self.manifests is None:
                raise ValueError("data.manifests.train is required when data.format is 'manifest'")
            if not self.labels:
                raise ValueError("data.labels is required when data.format is 'manifest'")
            if len(set(self.labels)) != len(self.labels):
                raise ValueError("data.labels has a repeated name")
        if any(s <= 0 for s in self.std):
            raise ValueError("data.std values must be positive")
        return self


class Config(StrictModel):
    """A whole run's configuration; dumped to YAML and logged with every run."""

    seed: int = 0
    data: DataConfig
