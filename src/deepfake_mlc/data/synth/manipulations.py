"""The ten manipulations and the generator-like traces they leave.

Every manipulation changes the face's parameters (a donor's part, an added attribute), re-draws the
face as a *generator* would (at a lower resolution, upsampled, with shifted colour statistics, a
periodic upsampling fingerprint and the wrong noise level) and blends that into its own region with a
feathered mask. Only the region's pixels change, and the traces, not the content, are what separates a
manipulated region from a natural one: originals may have bangs, glasses, a beard or a smile as well.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageFilter

from deepfake_mlc.data.synth import draw
from deepfake_mlc.data.synth.canvas import Canvas
from deepfake_mlc.data.synth.faces import (
    Face,
    sample_bangs,
    sample_beard,
    sample_face,
    sample_glasses,
    sample_smile,
)

UPSAMPLING = (Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.NEAREST)


@dataclass(frozen=True)
class Manipulation:
    """What a step changes (``edit``) and where it may change pixels (``region``)."""

    region: draw.Region
    edit: Callable[[Face, np.random.Generator], Face]


def _swap(part: str) -> Callable[[Face, np.random.Generator], Face]:
    """Component swap: the part of a random donor face, aligned on this one."""

    def edit(face: Face, rng: np.random.Generator) -> Face:
        donor = getattr(sample_face(rng, 0.0), part)
        if part == "mouth":  # the donor's lips, the target's expression
            donor = replace(donor, smile=face.mouth.smile)
        return replace(face, **{part: donor})

    return edit


def _make_young(face: Face, rng: np.random.Generator) -> Face:
    skin = tuple(min(255.0, v * rng.uniform(1.02, 1.08)) for v in face.head.skin)
    head = replace(face.head, skin=skin, pores=face.head.pores * rng.uniform(0.3, 0.6))  # type: ignore[arg-type]
    return replace(face, head=head, age=0.0)


MANIPULATIONS: dict[str, tuple[Manipulation, ...]] = {  # step id i is entry i - 1, as in SUBSET_LABELS
    "components": (
        Manipulation(draw.region_nose, _swap("nose")),
        Manipulation(draw.region_eyes, _swap("eyes")),
        Manipulation(draw.region_brows, _swap("brows")),
        Manipulation(draw.region_mouth, _swap("mouth")),
        Manipulation(draw.region_hair, _swap("hair")),
    ),
    "attributes": (
        Manipulation(draw.region_bangs, lambda f, rng: replace(f, bangs=sample_bangs(rng))),
        Manipulation(draw.region_glasses, lambda f, rng: replace(f, glasses=sample_glasses(rng))),
        Manipulation(draw.region_beard, lambda f, rng: replace(f, beard=sample_beard(rng, f.hair.color))),
        Manipulation(draw.region_mouth, lambda f, rng: replace(f, mouth=replace(f.mouth, smile=sample_smile(rng)))),
        Manipulation(draw.region_skin, _make_young),
    ),
}


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def apply(
    manipulation: Manipulation, image: np.ndarray, face: Face, rng: np.random.Generator, strength: float
) -> tuple[np.ndarray, Face, np.ndarray]:
    """One step on a uint8 image of ``face``: the new image, the new face and the blending mask.

    The mask covers the region before and after the edit (a part may move or grow), slightly dilated and
    feathered; pixels where it is 0 are returned unchanged, bit for bit.
    """
    size = image.shape[0]
    edited = manipulation.edit(face, rng)
    canvas = Canvas(size)
    mask = _feather(np.maximum(manipulation.region(canvas, face), manipulation.region(canvas, edited)), rng)
    fake = _generator_image(edited, size, rng, strength)
    out = image.copy()
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size:  # the traces are only computed where they are blended in
        box = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
        traced = _traces(fake[box], rng, strength, face.scene.noise)
        out[box] = to_uint8(_blend(out[box].astype(np.float32), traced, mask[box][..., None], rng, strength))
    return out, edited, mask


def _blend(
    below: np.ndarray, above: np.ndarray, alpha: np.ndarray, rng: np.random.Generator, strength: float
) -> np.ndarray:
    """Alpha blending plus the halo that imperfect (e.g. Poisson) blending leaves along the seam."""
    halo = strength * rng.choice((-1.0, 1.0)) * rng.uniform(4.0, 10.0) * 4.0 * alpha * (1.0 - alpha)
    return below + alpha * (above - below) + halo


def _feather(region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur the region and double it: a slightly dilated region with a soft edge, the blending seam."""
    size = region.shape[0]
    radius = rng.uniform(1.5, 3.0) * size / 128
    soft = Image.fromarray(to_uint8(region * 255.0)).filter(ImageFilter.GaussianBlur(radius))
    return np.minimum(np.asarray(soft, dtype=np.float32) / 127.5, 1.0)


def _generator_image(face: Face, size: int, rng: np.random.Generator, strength: float) -> np.ndarray:
    """The edited face as a generator's decoder makes it: smoothed texture, low resolution, upsampled."""
    texture = max(0.0, 1.0 - strength * rng.uniform(0.6, 1.0))
    low = to_uint8(draw.render(face, max(size // int(rng.integers(2, 5)), 8), rng, texture))
    up = Image.fromarray(low).resize((size, size), UPSAMPLING[int(rng.integers(len(UPSAMPLING)))])
    return np.asarray(up, dtype=np.float32)


def _traces(fake: np.ndarray, rng: np.random.Generator, strength: float, noise: float) -> np.ndarray:
    """Shifted colour statistics, a periodic upsampling fingerprint and a too-low noise level."""
    h, w, _ = fake.shape
    gain = 1.0 + strength * rng.uniform(-0.08, 0.08, 3)
    offset = strength * (rng.choice((-1.0, 1.0)) * rng.uniform(4.0, 10.0) + rng.uniform(-3.0, 3.0, 3))
    period = int(rng.integers(2, 5))
    kernel = rng.normal(0.0, strength * rng.uniform(0.5, 2.0), (period, period))
    fingerprint = np.tile(kernel - kernel.mean(), (h // period + 1, w // period + 1))[:h, :w]
    sigma = noise * max(0.0, 1.0 - strength * rng.uniform(0.6, 1.0))
    grain = rng.standard_normal((h, w, 3), dtype=np.float32) * sigma
    return (fake * gain.astype(np.float32) + offset.astype(np.float32) + fingerprint[..., None] + grain).astype(
        np.float32
    )
