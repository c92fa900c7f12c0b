"""The quality gate: how far a runtime's probabilities may stray from the reference's, one table for every command.

Export, serve-bench and ``predict --check`` all judge a runtime here. Float arithmetics are held to the
largest probability difference against the reference (max |Δp|, probabilities in [0, 1]); int8 changes
probabilities by design and is held to what it may trade instead, its mAP drop. The bounds:

* fp32 1e-4: the same IEEE arithmetic, only kernels and summation order differ (measured ~1e-6).
* tf32 1e-3: only the inputs of matmuls and convolutions are rounded, to a 10-bit mantissa (relative
  error ≤ 2^-11 ≈ 5e-4); sums and the activations between layers stay float32, so the error does not
  compound as fp16's does, and the sigmoid (slope ≤ 1/4) shrinks a logit's error. fp16's 1e-2 would let
  a tenfold drift through unseen; fp32's 1e-4 would fail a healthy GPU.
* fp16, bf16 1e-2: weights and activations are stored in 16 bits and the rounding compounds layer after
  layer. No runtime here computes in bf16 yet: it shares fp16's bound until one is measured.
* int8: a mAP drop of at most 1 point.

A comparison is held to the looser of the runtime's and the reference's bounds: a TF32 reference (PyTorch
on a GPU, by default) cannot vouch for an fp32 runtime to 1e-4. Needs numpy only (the serving image has
no torch).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from deepfake_mlc.metrics import per_label_ap

MAX_ABS_DIFF: dict[str, float] = {"fp32": 1e-4, "tf32": 1e-3, "bf16": 1e-2, "fp16": 1e-2}
MAX_MAP_DROP = 1.0  # int8, in mAP points


@dataclass(frozen=True)
class Bound:
    """What a comparison is held to: ``limit`` on max |Δp|, or for int8 on the mAP drop in points."""

    precision: str  # whose bound it is: the looser of the runtime's and the reference's arithmetic
    limit: float

    @property
    def on_map(self) -> bool:
        return self.precision == "int8"

    def __str__(self) -> str:
        return f"mAP drop ≤ {self.limit:g} points" if self.on_map else f"max |Δp| ≤ {self.limit:g}"


@dataclass(frozen=True)
class Tolerances:
    """The gate's table: ``max_abs_diff`` per float arithmetic and ``max_map_drop`` (points) for int8.

    The defaults are the bounds above; the command lines replace entries (``--tolerance-tf32``, ...).
    """

    max_abs_diff: Mapping[str, float] = field(default_factory=lambda: dict(MAX_ABS_DIFF))
    max_map_drop: float = MAX_MAP_DROP

    def bound(self, precision: str, reference: str) -> Bound | None:
        """The looser of the two arithmetics' bounds; ``None`` for a precision the table does not have."""
        if "int8" in (precision, reference):
            return Bound("int8", self.max_map_drop)
        if precision not in self.max_abs_diff or reference not in self.max_abs_diff:
            return None
        looser = max(precision, reference, key=self.max_abs_diff.__getitem__)
        return Bound(looser, self.max_abs_diff[looser])

    def __str__(self) -> str:
        """The table in one line, as the help texts and reports show it."""
        floats = ", ".join(f"{precision} {limit:g}" for precision, limit in self.max_abs_diff.items())
        return f"max |Δp| {floats}; int8 mAP drop {self.max_map_drop:g} points"


@dataclass(frozen=True)
class Parity:
    """A runtime's probabilities against the reference's on the same images, and the bound they are held to."""

    runtime: str
    precision: str
    reference_runtime: str
    reference_precision: str
    images: int
    max_abs_diff: float
    identical_label_sets: float  # % of images whose predicted label set is the reference's
    map: float | None  # in points; None without labels
    map_reference: float | None
    bound: Bound | None  # None: a precision the table does not have

    @property
    def map_delta(self) -> float | None:
        """The runtime's mAP minus the reference's, in points (negative: a drop); ``None`` without labels."""
        return None if self.map is None or self.map_reference is None else self.map - self.map_reference

    @property
    def where(self) -> str:
        return (
            f"{self.runtime} ({self.precision}) against {self.reference_runtime} ({self.reference_precision}) "
            f"on {self.images} images"
        )

    def failure(self) -> str | None:
        """Why the runtime fails the gate, in one line that names it; ``None`` when it passes."""
        bound = self.bound
        if bound is None:
            return f"{self.where}: the gate has no bound for these precisions (it has {', '.join(MAX_ABS_DIFF)}, int8)"
        if not bound.on_map:
            if self.max_abs_diff <= bound.limit:  # NaN fails
                return None
            return f"{self.where}: max |Δp| {self.max_abs_diff:.2e} > {bound.limit:g}"
        if self.map_delta is None:
            return f"{self.where}: int8 is judged by its mAP drop, which needs labelled images (export, serve-bench)"
        if -self.map_delta <= bound.limit:
            return None
        change = f"{self.map_reference:.2f} -> {self.map:.2f}"
        return f"{self.where}: mAP drop {-self.map_delta:.2f} points ({change}) > {bound.limit:g}"


def check_parity(
    probs: np.ndarray,
    reference: np.ndarray,
    threshold: float | np.ndarray,
    *,
    runtime: str,
    precision: str,
    reference_runtime: str,
    reference_precision: str,
    targets: np.ndarray | None = None,
    tolerances: Tolerances | None = None,
) -> Parity:
    """``runtime``'s probabilities against ``reference_runtime``'s on the same images, judged by ``tolerances``.

    ``threshold`` (one, or one per label) decides the label sets compared; ``targets`` (0/1 labels) add the
    mAP figures, without which int8 cannot be judged. ``tolerances``: the table above unless given.
    """
    if probs.shape != reference.shape:
        raise ValueError(f"outputs of shape {probs.shape} cannot be compared with the reference's {reference.shape}")
    same = ((probs > threshold) == (reference > threshold)).all(axis=1)
    maps: tuple[float | None, ...] = (None, None)
    if targets is not None:
        maps = tuple(100.0 * float(per_label_ap(p, targets).mean()) for p in (probs, reference))
    return Parity(
        runtime=runtime,
        precision=precision,
        reference_runtime=reference_runtime,
        reference_precision=reference_precision,
        images=len(probs),
        max_abs_diff=float(np.abs(probs.astype(np.float64) - reference).max()),
        identical_label_sets=100.0 * float(same.mean()),
        map=maps[0],
        map_reference=maps[1],
        bound=(tolerances or Tolerances()).bound(precision, reference_precision),
    )
