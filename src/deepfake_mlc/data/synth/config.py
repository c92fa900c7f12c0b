"""The typed generator config: how many images, how big, which label prior, how strong the traces."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from deepfake_mlc.config.loader import StrictModel
from deepfake_mlc.config.schema import Subset
from deepfake_mlc.data.labels import SEQUENCE_LENGTH

NonNegative = Annotated[float, Field(ge=0.0)]
Row = Annotated[list[NonNegative], Field(min_length=SEQUENCE_LENGTH, max_length=SEQUENCE_LENGTH)]
Matrix = Annotated[list[Row], Field(min_length=SEQUENCE_LENGTH, max_length=SEQUENCE_LENGTH)]
LengthWeights = Annotated[list[NonNegative], Field(min_length=SEQUENCE_LENGTH + 1, max_length=SEQUENCE_LENGTH + 1)]


class SplitSizes(StrictModel):
    """Images per split, for each subset (the defaults give 5,000 per subset, 10,000 in all)."""

    train: int = Field(4000, ge=0)
    val: int = Field(500, ge=0)
    test: int = Field(500, ge=0)


class CorrelatedPrior(StrictModel):
    """Co-occurrence structure of the ``correlated`` prior.

    A sequence length ``L`` is drawn with probability proportional to ``length_weights[L]``; then steps
    are chosen one after the other, step ``i`` with probability proportional to
    ``base[i] * prod(affinity[j][i] for the steps j already chosen)``. An affinity above 1 makes two
    labels co-occur more often, below 1 less often, 0 never (the sequence then stops early).
    Indices are step ids minus one, of whichever subset is generated.
    """

    length_weights: LengthWeights = [1.0] * (SEQUENCE_LENGTH + 1)
    base: Row = [1.0] * SEQUENCE_LENGTH
    affinity: Matrix = Field(default_factory=lambda: [[1.0] * SEQUENCE_LENGTH for _ in range(SEQUENCE_LENGTH)])

    @field_validator("length_weights", "base")
    @classmethod
    def _not_all_zero(cls, value: list[float]) -> list[float]:
        if not any(value):
            raise ValueError("at least one weight must be positive")
        return value

    @field_validator("affinity")
    @classmethod
    def _symmetric(cls, value: list[list[float]]) -> list[list[float]]:
        for i, row in enumerate(value):
            for j, entry in enumerate(row):
                if entry != value[j][i]:
                    raise ValueError(f"must be symmetric: [{i}][{j}] = {entry} but [{j}][{i}] = {value[j][i]}")
        return value


class SynthConfig(StrictModel):
    """Everything that determines the generated data set; the same config gives byte-identical files."""

    seed: int = Field(0, ge=0)
    image_size: int = Field(128, ge=32, le=1024, description="side of the square images in pixels")
    subsets: list[Subset] = Field(default_factory=lambda: ["components", "attributes"], min_length=1)
    splits: SplitSizes = Field(default_factory=SplitSizes)
    prior: Literal["uniform", "correlated"] = Field(
        "uniform", description="uniform: Seq-DeepFake-like; correlated: labels co-occur as configured"
    )
    correlated: CorrelatedPrior = Field(default_factory=CorrelatedPrior)
    natural_attribute_rate: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="chance that a face naturally has each attribute (bangs, glasses, beard, smile, "
        "young), drawn cleanly, so that content alone does not give the label away",
    )
    trace_strength: float = Field(
        2.0,
        ge=0.0,
        le=4.0,
        description="scales the colour shift, noise mismatch and upsampling pattern of manipulated "
        "regions; 2 is learnable by a small CNN from scratch on a CPU in minutes, 1 is subtler",
    )
    jpeg_quality: int = Field(95, ge=1, le=100)
    masks: bool = Field(
        False,
        description="also write where each manipulation changed pixels: a PNG per image (bit i: label i, "
        "where its blending weight is >= 0.5) under <subset>/masks/, named in a mask_path column of the CSVs",
    )
    workers: int = Field(2, ge=0, description="worker processes; 0 renders in-process")

    @field_validator("subsets")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("subsets must not repeat")
        return value
