"""The parametric face: one frozen record per part, and how random faces are sampled.

Part positions are stored relative to the head (in head widths / heights), so a part copied from another
face lands aligned on this one, the way a face-swap tool aligns a donor region. Optional attributes
(bangs, glasses, beard) are ``None`` when absent; smile and age are continuous.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RGB = tuple[float, float, float]

SKIN_DARK, SKIN_LIGHT = np.array([92.0, 58.0, 42.0]), np.array([246.0, 214.0, 192.0])
HAIR_COLORS: tuple[RGB, ...] = (
    (24, 20, 18), (58, 40, 28), (105, 72, 44), (196, 164, 108), (146, 68, 34), (150, 148, 146),
)  # fmt: skip
IRIS_COLORS: tuple[RGB, ...] = (
    (88, 58, 34), (46, 30, 20), (78, 118, 168), (86, 128, 88), (118, 128, 140), (128, 98, 50),
)  # fmt: skip
FRAME_COLORS: tuple[RGB, ...] = (
    (20, 20, 22), (70, 42, 26), (182, 150, 80), (172, 172, 178), (150, 30, 40), (40, 60, 140),
)  # fmt: skip


@dataclass(frozen=True)
class Head:
    cx: float  # centre, image units
    cy: float
    width: float  # half width, image units
    height: float  # half height, image units
    taper: float  # narrowing towards the chin
    skin: RGB
    pores: float  # relative amplitude of the skin texture
    shade: float  # darkening towards the face outline


@dataclass(frozen=True)
class Eyes:
    y: float  # above the head centre, head heights
    dx: float  # from the centre line, head widths
    w: float  # half width, head widths
    h: float  # half height / half width
    iris: RGB
    iris_r: float  # iris radius / eye half height
    gaze: float  # iris offset, eye half widths


@dataclass(frozen=True)
class Brows:
    gap: float  # above the eye, head heights
    length: float  # half length / eye half width
    thick: float  # half thickness, head heights
    arch: float  # rise of the middle, head heights
    color: RGB


@dataclass(frozen=True)
class Nose:
    tip: float  # below the head centre, head heights
    w: float  # half width, head widths
    shade: float
    nostril: float  # nostril size factor


@dataclass(frozen=True)
class Mouth:
    drop: float  # below the nose tip, head heights
    w: float  # half width, head widths
    upper: float  # lip thicknesses, head heights
    lower: float
    color: RGB
    smile: float  # 0 neutral .. 1 broad smile (corners up, teeth showing)


@dataclass(frozen=True)
class Hair:
    color: RGB
    style: int  # 0 short, 1 long, 2 curly
    volume: float  # extent beyond the head, head widths
    hairline: float  # above the head centre, head heights
    length: float  # how far long hair falls below the head centre, head heights
    strands: float  # strand frequency around the crown
    wave: float  # strand waviness
    phase: float


@dataclass(frozen=True)
class Bangs:
    depth: float  # how far down the forehead, 0 (hairline) .. 1 (brows)
    zig: float  # depth of the strand tips, head heights
    tips: float  # number of strand tips across the face
    phase: float


@dataclass(frozen=True)
class Glasses:
    color: RGB
    r: float  # lens half width / eye half width
    aspect: float  # lens half height / half width
    square: float  # superellipse exponent: 2 round .. 5 rectangular
    thick: float  # frame half thickness, image units
    tint: RGB
    tint_alpha: float


@dataclass(frozen=True)
class Beard:
    color: RGB
    density: float
    length: float  # extension below the jaw, head heights
    top: float  # where it starts between nose tip (0) and mouth (1)


@dataclass(frozen=True)
class Scene:
    bg_a: RGB
    bg_b: RGB
    bg_angle: float
    light_angle: float
    light: float  # strength of the lighting gradient
    noise: float  # sensor noise sigma, 0..255 units


@dataclass(frozen=True)
class Face:
    head: Head
    eyes: Eyes
    brows: Brows
    nose: Nose
    mouth: Mouth
    hair: Hair
    scene: Scene
    bangs: Bangs | None
    glasses: Glasses | None
    beard: Beard | None
    age: float  # wrinkle strength; 0 is young


def _color(rng: np.random.Generator, palette: tuple[RGB, ...], jitter: float) -> RGB:
    base = np.asarray(palette[int(rng.integers(len(palette)))], dtype=np.float64)
    return _rgb(base + rng.normal(0.0, jitter, 3))


def _rgb(values: np.ndarray) -> RGB:
    """``values`` clipped to 0..255 as floats: ``max`` then ``min`` pick what ``np.clip`` does, with less overhead."""
    r, g, b = (min(255.0, max(0.0, v)) for v in values.tolist())
    return (r, g, b)


def sample_head(rng: np.random.Generator) -> Head:
    width = rng.uniform(0.22, 0.28)
    tone = rng.uniform() ** 0.8
    skin = SKIN_DARK + tone * (SKIN_LIGHT - SKIN_DARK) + rng.normal(0.0, 7.0, 3)
    return Head(
        cx=rng.uniform(0.44, 0.56),
        cy=rng.uniform(0.50, 0.57),
        width=width,
        height=width * rng.uniform(1.22, 1.4),
        taper=rng.uniform(0.05, 0.3),
        skin=_rgb(skin),
        pores=rng.uniform(0.025, 0.06),
        shade=rng.uniform(0.08, 0.22),
    )


def sample_eyes(rng: np.random.Generator) -> Eyes:
    return Eyes(
        y=rng.uniform(0.1, 0.2),
        dx=rng.uniform(0.36, 0.46),
        w=rng.uniform(0.16, 0.21),
        h=rng.uniform(0.42, 0.6),
        iris=_color(rng, IRIS_COLORS, 10.0),
        iris_r=rng.uniform(0.8, 1.05),
        gaze=rng.uniform(-0.2, 0.2),
    )


def sample_brows(rng: np.random.Generator, hair: RGB) -> Brows:
    return Brows(
        gap=rng.uniform(0.06, 0.11),
        length=rng.uniform(1.05, 1.4),
        thick=rng.uniform(0.018, 0.035),
        arch=rng.uniform(0.0, 0.04),
        color=_rgb(np.asarray(hair) * rng.uniform(0.45, 0.8) + rng.normal(0.0, 5.0, 3)),
    )


def sample_nose(rng: np.random.Generator) -> Nose:
    return Nose(
        tip=rng.uniform(0.1, 0.22),
        w=rng.uniform(0.13, 0.2),
        shade=rng.uniform(0.12, 0.28),
        nostril=rng.uniform(0.7, 1.2),
    )


def sample_mouth(rng: np.random.Generator, skin: RGB, smile: float) -> Mouth:
    red = np.array([196.0, 78.0, 88.0])
    lips = np.asarray(skin) * rng.uniform(0.55, 0.8) + red * rng.uniform(0.2, 0.45)
    return Mouth(
        drop=rng.uniform(0.2, 0.28),
        w=rng.uniform(0.28, 0.42),
        upper=rng.uniform(0.025, 0.045),
        lower=rng.uniform(0.03, 0.06),
        color=_rgb(lips + rng.normal(0.0, 6.0, 3)),
        smile=smile,
    )


def sample_smile(rng: np.random.Generator) -> float:
    return float(rng.uniform(0.55, 1.0))


def sample_hair(rng: np.random.Generator) -> Hair:
    return Hair(
        color=_color(rng, HAIR_COLORS, 8.0),
        style=int(rng.integers(3)),
        volume=rng.uniform(0.06, 0.22),
        hairline=rng.uniform(0.52, 0.72),
        length=rng.uniform(0.9, 1.6),
        strands=float(rng.integers(18, 40)),
        wave=rng.uniform(0.0, 0.6),
        phase=rng.uniform(0.0, 2 * np.pi),
    )


def sample_bangs(rng: np.random.Generator) -> Bangs:
    return Bangs(
        depth=rng.uniform(0.55, 1.05),
        zig=rng.uniform(0.02, 0.08),
        tips=rng.uniform(3.0, 9.0),
        phase=rng.uniform(0.0, 2 * np.pi),
    )


def sample_glasses(rng: np.random.Generator) -> Glasses:
    return Glasses(
        color=_color(rng, FRAME_COLORS, 8.0),
        r=rng.uniform(1.25, 1.6),
        aspect=rng.uniform(0.65, 0.95),
        square=rng.uniform(2.0, 5.0),
        thick=rng.uniform(0.005, 0.011),
        tint=_rgb(rng.uniform(40.0, 200.0, 3)),
        tint_alpha=rng.uniform(0.05, 0.3),
    )


def sample_beard(rng: np.random.Generator, hair: RGB) -> Beard:
    return Beard(
        color=_rgb(np.asarray(hair) * rng.uniform(0.6, 1.0) + rng.normal(0.0, 6.0, 3)),
        density=rng.uniform(0.65, 0.95),
        length=rng.uniform(0.02, 0.12),
        top=rng.uniform(0.15, 0.6),
    )


def sample_age(rng: np.random.Generator) -> float:
    return float(rng.uniform(0.5, 1.0))


def sample_scene(rng: np.random.Generator) -> Scene:
    bg_a = rng.uniform(25.0, 230.0, 3)
    return Scene(
        bg_a=_rgb(bg_a),
        bg_b=_rgb(bg_a + rng.normal(0.0, 45.0, 3)),
        bg_angle=rng.uniform(0.0, 2 * np.pi),
        light_angle=rng.uniform(0.0, 2 * np.pi),
        light=rng.uniform(0.0, 0.35),
        noise=rng.uniform(3.0, 7.0),
    )


def sample_face(rng: np.random.Generator, natural_rate: float) -> Face:
    """A random face; each attribute is naturally present with probability ``natural_rate``."""
    natural = rng.uniform(size=5) < natural_rate  # bangs, glasses, beard, smile, young
    head = sample_head(rng)
    hair = sample_hair(rng)
    return Face(
        head=head,
        eyes=sample_eyes(rng),
        brows=sample_brows(rng, hair.color),
        nose=sample_nose(rng),
        mouth=sample_mouth(rng, head.skin, sample_smile(rng) if natural[3] else rng.uniform(-0.15, 0.15)),
        hair=hair,
        scene=sample_scene(rng),
        bangs=sample_bangs(rng) if natural[0] else None,
        glasses=sample_glasses(rng) if natural[1] else None,
        beard=sample_beard(rng, hair.color) if natural[2] else None,
        age=0.0 if natural[4] else sample_age(rng),
    )
