"""Image degradations: JPEG re-compression, downscaling, blur and noise, at a stated severity.

A shared image is re-compressed and downscaled (by the platform, by every re-share) before anyone checks
it, and the traces a manipulation leaves are fine-grained and fragile: a detector that is only ever shown
pristine images may fail on the ones it is meant for. The same functions measure that (evaluation under
``--perturb``) and train against it (:class:`~deepfake_mlc.data.transforms.RandomDegradation`), so a
severity means one thing in both. numpy and PIL only: the serving image, which has no torch, runs them too.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from deepfake_mlc.errors import ConfigError


def _jpeg(image: Image.Image, quality: float, rng: np.random.Generator) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _resize(image: Image.Image, scale: float, rng: np.random.Generator) -> Image.Image:
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if size == image.size:
        return image
    # BOX: each output pixel is the mean of the input area it covers, the plainest antialiased downscale;
    # bicubic or Lanczos would add sharpening lobes of their own, edges a detector could take for traces.
    return image.resize(size, Image.Resampling.BOX)


def _blur(image: Image.Image, sigma: float, rng: np.random.Generator) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius=sigma))  # PIL's radius is the standard deviation


def _noise(image: Image.Image, std: float, rng: np.random.Generator) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float64) + rng.normal(0.0, std * 255.0, (image.height, image.width, 3))
    return Image.fromarray(np.rint(np.clip(pixels, 0, 255)).astype(np.uint8), "RGB")


@dataclass(frozen=True)
class Kind:
    """One kind of degradation: what its severity is and which values it takes."""

    name: str
    severity: str  # the severity's name in messages (jpeg:QUALITY)
    low: float
    high: float
    integer: bool  # integers low..high; otherwise numbers low < s <= high
    apply: Callable[[Image.Image, float, np.random.Generator], Image.Image]

    @property
    def range(self) -> str:
        return f"{self.low:g}..{self.high:g}" if self.integer else f"{self.low:g}<s<={self.high:g}"

    @property
    def usage(self) -> str:
        """E.g. ``jpeg:QUALITY, an integer 1..100``: the end of an error message about a value."""
        return f"{self.name}:{self.severity}, {'an integer' if self.integer else 'a number'} {self.range}"

    def allows(self, severity: float) -> bool:
        if self.integer:
            return float(severity).is_integer() and self.low <= severity <= self.high
        return self.low < severity <= self.high


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("jpeg", "QUALITY", 1, 100, True, _jpeg),  # re-encoded at this quality, decoded back
        Kind("resize", "SCALE", 0, 1, False, _resize),  # downscaled to this share of width and height, kept small
        Kind("blur", "SIGMA", 0, 10, False, _blur),  # Gaussian, standard deviation in pixels
        Kind("noise", "STD", 0, 1, False, _noise),  # additive Gaussian, standard deviation in units of full range
    )
}
ALLOWED = ", ".join(f"{kind.name}:{kind.severity} {kind.range}" for kind in KINDS.values())


def _known(kind: str, spec: str) -> Kind:
    if kind not in KINDS:
        raise ConfigError(f"unknown perturbation '{kind}' in '{spec}' (one of {ALLOWED})")
    return KINDS[kind]


def _check(kind: str, severity: float, spec: str) -> None:
    """Raise one ConfigError line unless ``kind`` is known and allows ``severity``; ``spec`` is what was written."""
    entry = _known(kind, spec)
    if not entry.allows(severity):
        problem = "not an integer" if entry.integer and not float(severity).is_integer() else "out of range"
        raise ConfigError(f"{kind} severity {severity:g} {problem} in '{spec}' ({entry.usage})")


@dataclass(frozen=True)
class Perturbation:
    """One degradation at one severity, e.g. ``jpeg:50``: RGB image in, RGB image out (``resize`` smaller)."""

    kind: str
    severity: float

    def __post_init__(self) -> None:
        _check(self.kind, self.severity, str(self))

    def __str__(self) -> str:
        value = float(self.severity)
        return f"{self.kind}:{int(value) if value.is_integer() else value!r}"

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        """``image`` degraded; ``rng`` draws the noise (the other kinds are deterministic)."""
        return KINDS[self.kind].apply(image, self.severity, rng)


def parse_perturbations(specs: Sequence[str]) -> list[Perturbation]:
    """``["jpeg:90,70", "resize:0.5"]`` -> ``[jpeg:90, jpeg:70, resize:0.5]``, in the order given."""
    out = []
    for spec in specs:
        kind, sep, values = spec.partition(":")
        kind, texts = kind.strip(), [text.strip() for text in values.split(",")]
        if not sep or not kind or not all(texts):
            raise ConfigError(f"perturbation '{spec}' is not of the form KIND:V1,V2,... (one of {ALLOWED})")
        entry = _known(kind, spec)
        for text in texts:
            try:
                severity = float(text)
            except ValueError:
                raise ConfigError(f"{kind} severity '{text}' is not a number in '{spec}' ({entry.usage})") from None
            _check(kind, severity, spec)
            out.append(Perturbation(kind, severity))
    return out


def perturbation_seed(key: str, perturbation: Perturbation, seed: int = 0) -> np.random.Generator:
    """The generator of ``perturbation`` on the image named ``key``: the same noise on every run and in any order.

    ``key`` should not depend on where the data are mounted: :func:`pixels_key` names an image by its pixels.
    """
    return np.random.default_rng([seed, zlib.crc32(key.encode()), zlib.crc32(str(perturbation).encode())])


def pixels_key(image: Image.Image) -> str:
    """A name of an image from its pixels (CRC-32): the same on every machine, wherever the file lies."""
    return f"{image.width}x{image.height}:{zlib.crc32(image.tobytes()):08x}"
