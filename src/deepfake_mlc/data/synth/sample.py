"""One labelled image: a camera photo of a random face, then its manipulation steps in order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from deepfake_mlc.data.labels import SUBSET_LABELS
from deepfake_mlc.data.synth import draw
from deepfake_mlc.data.synth.faces import Face, sample_face
from deepfake_mlc.data.synth.manipulations import MANIPULATIONS, apply, to_uint8


@dataclass(frozen=True)
class RenderedSample:
    """The untouched photo, the image after each step, and where each step was allowed to change pixels."""

    face: Face  # the parameters of the photographed face
    base: np.ndarray  # uint8 (H, W, 3)
    stages: tuple[np.ndarray, ...]  # uint8 image after each step
    masks: tuple[np.ndarray, ...]  # float32 (H, W) blending mask of each step, 0 = untouched

    @property
    def image(self) -> np.ndarray:
        """The final image (the base for an original)."""
        return self.stages[-1] if self.stages else self.base


def render_sample(
    subset: str,
    steps: Sequence[int],
    seed: int | Sequence[int],
    image_size: int,
    natural_attribute_rate: float = 0.3,
    trace_strength: float = 1.0,
) -> RenderedSample:
    """Draw a face, photograph it, apply ``steps`` (step ids of ``subset``) in order.

    Everything is drawn from ``np.random.default_rng(seed)``, so the result depends only on the arguments.
    """
    if subset not in SUBSET_LABELS:
        raise ValueError(f"subset must be one of {sorted(SUBSET_LABELS)}, not {subset!r}")
    rng = np.random.default_rng(seed)
    face = sample_face(rng, natural_attribute_rate)
    base = photograph(face, image_size, rng)
    image, edited, stages, masks = base, face, [], []
    for step in steps:
        image, edited, mask = apply(MANIPULATIONS[subset][step - 1], image, edited, rng, trace_strength)
        stages.append(image)
        masks.append(mask)
    return RenderedSample(face, base, tuple(stages), tuple(masks))


def photograph(face: Face, size: int, rng: np.random.Generator) -> np.ndarray:
    """The face as a camera records it: the drawing plus sensor noise."""
    noise = rng.standard_normal((size, size, 3), dtype=np.float32)
    return to_uint8(draw.render(face, size, rng) + face.scene.noise * noise)
