"""The ten manipulations and the generator-like traces they leave.

Every manipulation changes the face's parameters (a donor's part, an added attribute), re-draws the
face as a *generator* would (at a lower resolution, upsampled, with shifted colour statistics, a
periodic upsampling fingerprint and the wrong noise level) and blends that into its own region with a
feathered mask. Only the region's pixels change, and the traces, not the content, are what separates a
manipulated region from a natural one: originals may have bangs, glasses, a beard or a smile as well.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageFilter

from deepfake_mlc.data.synth import draw
from deepfake_mlc.data.synth.canvas import Box, Canvas, bounds, interleave
from deepfake_mlc.data.synth.faces import (
    Face,
    sample_bangs,
    sample_beard,
    sample_face,
    sample_glasses,
    sample_smile,
)

UPSAMPLING = (Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.NEAREST)
SIGNS = (np.float64(-1.0), np.float64(1.0))


@dataclass(frozen=True)
class Manipulation:
    """What a step changes (``edit``) and where it may change pixels (``region``)."""

    region: draw.Region
    edit: Callable[[Face, np.random.Generator], Face]
    moves_region: bool = True  # False: the edit changes only colours, so the region is computed once


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
        Manipulation(draw.region_skin, _make_young, moves_region=False),
    ),
}


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def apply(
    manipulation: Manipulation, image: np.ndarray, face: Face, rng: np.random.Generator, strength: float
) -> tuple[np.ndarray, Face, np.ndarray]:
    """One step on a uint8 image of ``face``: the new image, the new face and the blending mask.

    The mask covers the region before and after the edit (a part may move or grow), slightly dilated and
    feathered; pixels where it is 0 are returned unchanged, bit for bit. Only the mask's bounding box is
    rendered, traced and blended: the pixels are those of whole-image work, at a fraction of its cost.
    """
    size = image.shape[0]
    edited = manipulation.edit(face, rng)
    canvas = Canvas(size)
    region = manipulation.region(canvas, face)
    if manipulation.moves_region:
        region = np.maximum(region, manipulation.region(canvas, edited))
    mask = _feather(region, rng)
    box = bounds(mask)
    fake = _generator_image(edited, size, rng, strength, box)
    out = image.copy()
    if box is not None:
        traced = _traces(fake, rng, strength, face.scene.noise)
        blended = _blend(planes(out[box], np.float32), traced, mask[box], rng, strength)
        interleave(to_uint8(blended), out=out[box])
    return out, edited, mask


def planes(image: np.ndarray, dtype: type | None = None) -> np.ndarray:
    """An (H, W, 3) image as (3, H, W) colour planes, where per-pixel weights broadcast fast (see :mod:`canvas`)."""
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=dtype)


def _blend(
    below: np.ndarray, above: np.ndarray, alpha: np.ndarray, rng: np.random.Generator, strength: float
) -> np.ndarray:
    """Alpha blending plus the halo that imperfect (e.g. Poisson) blending leaves along the seam."""
    halo = strength * _sign(rng) * rng.uniform(4.0, 10.0) * 4.0 * alpha * (1.0 - alpha)
    return below + alpha * (above - below) + halo


def _feather(region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur the region and double it: a slightly dilated region with a soft edge, the blending seam.

    The blur (three box passes, each reaching ``int(radius) + 1`` pixels) runs on the region's box grown
    by that reach and a zero edge: PIL repeats edge pixels, so the result equals blurring the whole image.
    """
    size = region.shape[0]
    radius = rng.uniform(1.5, 3.0) * size / 128
    mask = np.zeros_like(region)
    box = bounds(region, margin=3 * (int(radius) + 1) + 1)
    if box is not None:
        soft = Image.fromarray(to_uint8(region[box] * 255.0)).filter(ImageFilter.GaussianBlur(radius))
        mask[box] = np.minimum(np.asarray(soft, dtype=np.float32) / 127.5, 1.0)
    return mask


def _generator_image(
    face: Face, size: int, rng: np.random.Generator, strength: float, box: Box | None
) -> np.ndarray | None:
    """``box`` of the edited face as a generator's decoder makes it (smoothed texture, low resolution,
    upsampled), as float32 planes; None without a box (the random draws are made all the same).

    The low-resolution drawing is clipped to the pixels the upsampling filters read for ``box`` (bicubic
    reaches 2 pixels) and left black elsewhere.
    """
    texture = max(0.0, 1.0 - strength * rng.uniform(0.6, 1.0))
    low_size = max(size // int(rng.integers(2, 5)), 8)
    clip = _scaled(box, low_size / size, low_size, reach=3) if box is not None else (slice(0, 0), slice(0, 0))
    low = to_uint8(draw.render(face, low_size, rng, texture, clip))
    up = Image.fromarray(low).resize((size, size), UPSAMPLING[int(rng.integers(len(UPSAMPLING)))])
    if box is None:
        return None
    rows, cols = box
    return planes(np.asarray(up.crop((cols.start, rows.start, cols.stop, rows.stop))), np.float32)


def _scaled(box: Box, scale: float, size: int, reach: int) -> Box:
    """``box`` in an image scaled by ``scale`` (of side ``size``), grown by ``reach`` pixels."""

    def grow(pixels: slice) -> slice:
        return slice(
            max(math.floor(pixels.start * scale) - reach, 0), min(math.ceil(pixels.stop * scale) + reach, size)
        )

    return grow(box[0]), grow(box[1])


def _traces(fake: np.ndarray, rng: np.random.Generator, strength: float, noise: float) -> np.ndarray:
    """Shifted colour statistics, a periodic upsampling fingerprint and a too-low noise level (on planes)."""
    _, h, w = fake.shape
    gain = 1.0 + strength * rng.uniform(-0.08, 0.08, 3)
    offset = strength * (_sign(rng) * rng.uniform(4.0, 10.0) + rng.uniform(-3.0, 3.0, 3))
    period = int(rng.integers(2, 5))
    kernel = rng.normal(0.0, strength * rng.uniform(0.5, 2.0), (period, period))
    fingerprint = np.tile(kernel - kernel.mean(), (h // period + 1, w // period + 1))[:h, :w]
    sigma = noise * max(0.0, 1.0 - strength * rng.uniform(0.6, 1.0))
    grain = planes(rng.standard_normal((h, w, 3), dtype=np.float32))
    grain *= sigma
    # in place where the dtype stays: the same sums in the same order as one expression, fewer temporaries
    traced = fake * _per_plane(gain)
    traced += _per_plane(offset)
    shifted = traced + fingerprint  # float64, as the kernel
    shifted += grain
    return shifted.astype(np.float32)


def _sign(rng: np.random.Generator) -> np.float64:
    """-1 or +1 as ``rng.choice((-1.0, 1.0))`` gives it (one ``integers(0, 2)`` draw, a NumPy float64, which
    keeps products with float32 arrays in float64), without the overhead of ``choice``."""
    return SIGNS[int(rng.integers(0, 2))]


def _per_plane(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float32).reshape(3, 1, 1)
