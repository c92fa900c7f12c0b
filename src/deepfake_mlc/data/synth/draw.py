"""Drawing a :class:`Face`, and the region masks the manipulations edit.

Every part is a signed-distance shape (see :mod:`canvas`), so the same function both paints the part
and tells a manipulation which pixels the part covers. ``render`` gives the clean, noise-free drawing at
any resolution: the camera image adds sensor noise on top, the "generator" images of manipulations are
rendered at a lower resolution and upsampled.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from PIL import Image

from deepfake_mlc.data.synth.canvas import Box, Canvas, Window, ellipse_sd, interleave, rgb, segment_sd, unit
from deepfake_mlc.data.synth.faces import Face

TEETH, SCLERA, PUPIL, LINE = rgb(236, 230, 218), rgb(236, 232, 226), rgb(14, 10, 10), rgb(62, 34, 32)
NOSTRIL = rgb(52, 30, 28)


class Layout(NamedTuple):
    """Absolute positions (image units) of the parts of one face (a named tuple: quick to build, ~10 per image)."""

    cx: float
    cy: float
    hw: float
    hh: float
    eye_y: float
    eye_dx: float
    ew: float
    eh: float
    brow_y: float  # centre line of the brows at their middle
    nose_y: float
    nw: float
    mouth_y: float
    mw: float
    up: float
    lo: float
    lift: float  # rise of the mouth corners
    gap: float  # half opening of the lips (teeth showing)
    hairline_y: float  # at the centre line

    def eye_x(self, side: int) -> float:
        return self.cx + side * self.eye_dx

    def hairline(self, u: np.ndarray) -> np.ndarray:
        """The hairline drops towards the temples."""
        return self.hairline_y + 0.35 * self.hh * ((u - self.cx) / self.hw) ** 2


def layout(face: Face) -> Layout:
    h, e, m = face.head, face.eyes, face.mouth
    ew = e.w * h.width
    eh = ew * e.h
    eye_y = h.cy - e.y * h.height
    brows = face.brows
    nose_y = h.cy + face.nose.tip * h.height
    up, lo = m.upper * h.height, m.lower * h.height
    return Layout(
        cx=h.cx,
        cy=h.cy,
        hw=h.width,
        hh=h.height,
        eye_y=eye_y,
        eye_dx=e.dx * h.width,
        ew=ew,
        eh=eh,
        brow_y=eye_y - eh - (brows.gap + brows.thick) * h.height,
        nose_y=nose_y,
        nw=face.nose.w * h.width,
        mouth_y=nose_y + m.drop * h.height,
        mw=m.w * h.width,
        up=up,
        lo=lo,
        lift=m.smile * 0.1 * h.height,
        gap=max(m.smile - 0.4, 0.0) * 0.6 * (up + lo),
        hairline_y=h.cy - face.hair.hairline * h.height,
    )


# --- shapes shared by drawing and region masks ------------------------------------------------------


def head_sd(c: Canvas, face: Face, lay: Layout, grow: float = 0.0) -> tuple[Window, np.ndarray, np.ndarray]:
    """Window, signed distance and normalised radius of the head outline (narrowing to the chin)."""
    win = c.window(lay.cx - lay.hw - grow, lay.cy - lay.hh - grow, lay.cx + lay.hw + grow, lay.cy + lay.hh + grow)
    dy = (win.v - lay.cy) / lay.hh
    narrow = 1.0 - face.head.taper * np.maximum(dy, 0.0) ** 2
    dx = (win.u - lay.cx) / (lay.hw * narrow)
    r = np.sqrt(dx * dx + dy * dy)
    return win, (r - 1.0) * lay.hw - grow, r


def skin_cover(c: Canvas, face: Face, lay: Layout) -> tuple[Window, np.ndarray, np.ndarray]:
    """Coverage of the face skin (the head below the hairline), with the head radius for shading."""
    win, sd, r = head_sd(c, face, lay)
    return win, c.cover(sd) * c.cover(lay.hairline(win.u) - win.v), r


def hair_cover(c: Canvas, face: Face, lay: Layout) -> tuple[Window, np.ndarray]:
    hair = face.hair
    rx, ry = lay.hw * (1.0 + hair.volume), lay.hh * (1.0 + 0.8 * hair.volume)
    top = lay.cy - 0.12 * lay.hh
    bottom = {0: lay.cy + 0.05 * lay.hh, 1: lay.cy + hair.length * lay.hh, 2: lay.cy + 0.35 * lay.hh}[hair.style]
    win = c.window(lay.cx - rx * 1.1, top - ry * 1.1, lay.cx + rx * 1.1, max(bottom, top + ry))
    dx, dy = (win.u - lay.cx) / rx, (win.v - top) / ry
    r = np.sqrt(dx * dx + dy * dy)
    if hair.style == 2:  # curls: a bumpy outline
        r = r * (1.0 + 0.07 * np.sin(11.0 * dx + hair.phase) * np.sin(11.0 * dy + hair.phase))
    sd = (r - 1.0) * rx
    if hair.style == 1:  # long: the top ellipse plus a curtain down to the shoulders
        curtain = np.maximum(np.maximum(np.abs(win.u - lay.cx) - rx, win.v - bottom), top - win.v)
        sd = np.minimum(sd, curtain)
    else:
        sd = np.maximum(sd, win.v - bottom)
    return win, c.cover(sd)


def neck_cover(c: Canvas, lay: Layout) -> tuple[Window, np.ndarray]:
    win = c.window(lay.cx - 0.55 * lay.hw, lay.cy + 0.3 * lay.hh, lay.cx + 0.55 * lay.hw, 1.0)
    sd = np.maximum(np.abs(win.u - lay.cx) - 0.5 * lay.hw, lay.cy + 0.4 * lay.hh - win.v)
    return win, c.cover(sd)


def eye_sds(c: Canvas, lay: Layout) -> Iterator[tuple[int, Window, np.ndarray]]:
    """Almond-shaped eye openings, one per side."""
    for side in (-1, 1):
        ex = lay.eye_x(side)
        win = c.window(ex - lay.ew, lay.eye_y - lay.eh, ex + lay.ew, lay.eye_y + lay.eh)
        t = (win.u - ex) / lay.ew
        sd = np.maximum(np.abs(win.v - lay.eye_y) - lay.eh * (1.0 - t * t), (np.abs(t) - 1.0) * lay.ew)
        yield side, win, sd


def brow_sds(c: Canvas, face: Face, lay: Layout, pad: float = 0.0) -> Iterator[tuple[Window, np.ndarray]]:
    """Arched brows, thinning towards their outer ends (windows grown by ``pad``)."""
    b = face.brows
    half_len, thick, arch = b.length * lay.ew, b.thick * lay.hh, b.arch * lay.hh
    for side in (-1, 1):
        bx = lay.eye_x(side) + side * 0.08 * lay.ew
        win = c.window(
            bx - half_len - pad, lay.brow_y - arch - thick - pad, bx + half_len + pad, lay.brow_y + thick + pad
        )
        t = (win.u - bx) / half_len
        centre = lay.brow_y - arch * (1.0 - t * t)
        outer = unit((side * t + 1.0) / 2.0)
        sd = np.maximum(np.abs(win.v - centre) - thick * (1.0 - 0.55 * outer**2), (np.abs(t) - 1.0) * half_len)
        yield win, sd


@dataclass(frozen=True)
class MouthShape:
    """Signed distances of the mouth parts on one window."""

    win: Window
    upper: np.ndarray
    lower: np.ndarray
    opening: np.ndarray  # between the lips (teeth)
    outline: np.ndarray  # the whole mouth


def mouth_shape(c: Canvas, lay: Layout) -> MouthShape:
    top = lay.mouth_y - max(lay.lift, 0.0) - lay.gap - lay.up
    win = c.window(lay.cx - lay.mw, top, lay.cx + lay.mw, lay.mouth_y + max(-lay.lift, 0.0) + lay.gap + lay.lo)
    t = (win.u - lay.cx) / lay.mw
    env = np.sqrt(np.maximum(1.0 - t * t, 0.0))
    edge = (np.abs(t) - 1.0) * lay.mw
    centre = lay.mouth_y - lay.lift * t * t
    upper_in, lower_in = centre - lay.gap * env, centre + lay.gap * env
    upper_out, lower_out = upper_in - lay.up * env, lower_in + lay.lo * env
    return MouthShape(
        win=win,
        upper=np.maximum(np.maximum(upper_out - win.v, win.v - upper_in), edge),
        lower=np.maximum(np.maximum(lower_in - win.v, win.v - lower_out), edge),
        opening=np.maximum(np.abs(win.v - centre) - lay.gap * env, edge),
        outline=np.maximum(np.maximum(upper_out - win.v, win.v - lower_out), edge),
    )


def beard_cover(c: Canvas, face: Face, lay: Layout) -> tuple[Window, np.ndarray]:
    """The lower face from the moustache line down past the jaw, with the lips left bare."""
    beard = face.beard
    assert beard is not None
    win, sd, _ = head_sd(c, face, lay, grow=beard.length * lay.hh)
    top = lay.nose_y + beard.top * (lay.mouth_y - lay.nose_y)
    alpha = c.cover(np.maximum(sd, top - win.v))
    mouth = mouth_shape(c, lay)
    lips = np.ones_like(alpha)
    lips[_sub(win, mouth.win)] = 1.0 - c.cover(mouth.outline - 1.5 * c.px)
    return win, alpha * lips


def bangs_cover(c: Canvas, face: Face, lay: Layout) -> tuple[Window, np.ndarray]:
    """A fringe from the crown down the forehead, ending in strand tips."""
    bangs = face.bangs
    assert bangs is not None
    top = lay.cy - 1.15 * lay.hh
    bottom = lay.hairline_y + bangs.depth * (lay.brow_y - face.brows.thick * lay.hh - lay.hairline_y)
    win = c.window(lay.cx - lay.hw, top, lay.cx + lay.hw, bottom)
    x = (win.u - lay.cx) / lay.hw
    tips = bangs.zig * lay.hh * np.abs(np.sin(bangs.tips * np.pi * x + bangs.phase))
    edge = bottom - tips - 0.25 * lay.hh * x * x
    sd = np.maximum(np.maximum(win.v - edge, (np.abs(x) - 0.92) * lay.hw), top - win.v)
    return win, c.cover(sd)


def glasses_parts(c: Canvas, face: Face, lay: Layout) -> Iterator[tuple[Window, np.ndarray, np.ndarray | None]]:
    """Per lens: (window, frame sd, lens sd); then the bridge and temples: (window, sd, None)."""
    g = face.glasses
    assert g is not None
    rx = g.r * lay.ew
    ry = rx * g.aspect
    bar_y = lay.eye_y - 0.3 * ry
    for side in (-1, 1):
        ex = lay.eye_x(side)
        win = c.window(ex - rx - g.thick, lay.eye_y - ry - g.thick, ex + rx + g.thick, lay.eye_y + ry + g.thick)
        q = (np.abs((win.u - ex) / rx) ** g.square + np.abs((win.v - lay.eye_y) / ry) ** g.square) ** (1.0 / g.square)
        lens = (q - 1.0) * min(rx, ry)
        yield win, np.abs(lens) - g.thick, lens
        outer = (ex + side * rx, bar_y)
        temple_end = (lay.cx + side * lay.hw * 1.02, bar_y - 0.1 * ry)
        yield _stroke(c, outer, temple_end, g.thick)
    inner = lay.eye_dx - rx
    yield _stroke(c, (lay.cx - inner, bar_y), (lay.cx + inner, bar_y), 0.8 * g.thick)


def _stroke(
    c: Canvas, a: tuple[float, float], b: tuple[float, float], half_width: float
) -> tuple[Window, np.ndarray, None]:
    pad = half_width
    win = c.window(min(a[0], b[0]) - pad, min(a[1], b[1]) - pad, max(a[0], b[0]) + pad, max(a[1], b[1]) + pad)
    return win, segment_sd(win, a, b, half_width), None


def _sub(outer: Window, inner: Window) -> tuple[slice, slice]:
    """Index of ``inner`` inside an array laid out on ``outer`` (clipped to ``outer``)."""
    ys = slice(max(inner.ys.start, outer.ys.start) - outer.ys.start, min(inner.ys.stop, outer.ys.stop) - outer.ys.start)
    xs = slice(max(inner.xs.start, outer.xs.start) - outer.xs.start, min(inner.xs.stop, outer.xs.stop) - outer.xs.start)
    return ys, xs


# --- drawing ----------------------------------------------------------------------------------------


def render(
    face: Face, size: int, rng: np.random.Generator, texture: float = 1.0, clip: Box | None = None
) -> np.ndarray:
    """The face drawn at ``size`` x ``size`` (float32 RGB, 0..255, no sensor noise).

    ``rng`` only drives the textures (pores, hair and beard grain), scaled by ``texture``: two renders
    of the same face differ where a re-synthesis would, in texture, not in content.
    """
    c = Canvas(size, clip)
    grain = _grain(size, rng, texture)
    lay = layout(face)
    _background(c, face)
    _hair(c, face, lay, grain)
    _skin(c, face, lay, grain)
    if face.age > 0.0:
        _wrinkles(c, face, lay)
    _nose(c, face, lay)
    _mouth(c, face, lay)
    if face.beard is not None:
        win, alpha = beard_cover(c, face, lay)
        c.paint(win, face.beard.density * alpha, _texture(face.beard.color, grain, win, 0.25))
    _eyes(c, face, lay)
    for win, sd in brow_sds(c, face, lay):
        c.paint(win, 0.92 * c.cover(sd), _texture(face.brows.color, grain, win, 0.15))
    if face.bangs is not None:
        _bangs(c, face, lay, grain)
    if face.glasses is not None:
        _glasses(c, face, lay)
    _lighting(c, face)
    return interleave(c.img)


def _grain(size: int, rng: np.random.Generator, amount: float) -> np.ndarray | None:
    """About unit-variance noise with detail at one and two pixels, so that it survives a 2x downscale.

    With ``amount`` 0 (a generator's smooth texture) the noise is still drawn, so the random stream goes on
    the same, but None is returned: no grain, where a zero grain would only add zeros (see :func:`_grained`).
    """
    fine = rng.standard_normal((size, size), dtype=np.float32)
    coarse = rng.standard_normal(((size + 1) // 2, (size + 1) // 2), dtype=np.float32)
    if amount == 0.0:
        return None
    coarse_up = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BILINEAR))
    return amount * (0.6 * fine + 1.2 * coarse_up)


def _grained(x: np.ndarray | float, grain: np.ndarray | None, win: Window, amount: float) -> np.ndarray | float:
    """``x + amount * grain`` on the window; ``x`` itself without grain (what adding zeros gives, cheaper)."""
    return x if grain is None else x + amount * grain[win.ys, win.xs]


def _texture(color: tuple[float, float, float], grain: np.ndarray | None, win: Window, amount: float) -> np.ndarray:
    return rgb(*color) * _grained(1.0, grain, win, amount)


def _background(c: Canvas, face: Face) -> None:
    s = face.scene
    win = c.everywhere()
    t = unit(0.5 + (win.u - 0.5) * np.cos(s.bg_angle) + (win.v - 0.5) * np.sin(s.bg_angle))
    # np.add, not +: numpy would add into the float64 temporary in place, a slow path for a float32 operand
    np.add(rgb(*s.bg_a), t * (rgb(*s.bg_b) - rgb(*s.bg_a)), out=c.img[:, win.ys, win.xs], casting="same_kind")


def _hair(c: Canvas, face: Face, lay: Layout, grain: np.ndarray | None) -> None:
    """The hair mass behind the head (the skin is painted over it below the hairline)."""
    hair = face.hair
    win, alpha = hair_cover(c, face, lay)
    crown = lay.cy - 0.2 * lay.hh
    angle = np.arctan2(win.u - lay.cx, win.v - crown)
    radius = np.hypot(win.u - lay.cx, win.v - crown)
    strands = np.sin(hair.strands * angle + hair.wave * np.sin(40.0 * radius) + hair.phase)
    shade = _grained(1.0 + 0.16 * strands, grain, win, 0.08)
    c.paint(win, alpha, rgb(*hair.color) * shade)
    neck, neck_alpha = neck_cover(c, lay)
    c.paint(neck, neck_alpha, _texture(face.head.skin, grain, neck, face.head.pores) * 0.8)


def _skin(c: Canvas, face: Face, lay: Layout, grain: np.ndarray | None) -> None:
    head = face.head
    win, alpha, r = skin_cover(c, face, lay)
    shade = (1.0 - head.shade * np.minimum(r, 1.0) ** 4) * _grained(1.0, grain, win, head.pores)
    c.paint(win, alpha, rgb(*head.skin) * shade)


def _wrinkles(c: Canvas, face: Face, lay: Layout) -> None:
    """Forehead lines, nasolabial folds and under-eye creases, stronger with age."""
    dark = rgb(*face.head.skin) * 0.68
    line = 0.6 * c.px
    forehead_top, forehead_bottom = lay.hairline_y, lay.brow_y - 2 * face.brows.thick * lay.hh
    win = c.window(lay.cx - 0.45 * lay.hw, forehead_top, lay.cx + 0.45 * lay.hw, forehead_bottom)
    bend = 0.04 * lay.hh * ((win.u - lay.cx) / lay.hw) ** 2
    rows = [forehead_top + f * (forehead_bottom - forehead_top) for f in (0.4, 0.6, 0.8)]
    dist = functools.reduce(np.minimum, [np.abs(win.v + bend - y) for y in rows])
    sd = np.maximum(dist - line, np.abs(win.u - lay.cx) - 0.45 * lay.hw)
    c.paint(win, 0.55 * face.age * c.cover(sd), dark)
    for side in (-1, 1):
        fold = (
            (lay.cx + side * 0.8 * lay.nw, lay.nose_y - 0.03 * lay.hh),
            (lay.cx + side * 1.05 * lay.mw, lay.mouth_y + 0.05 * lay.hh),
        )
        ex = lay.eye_x(side)
        crease = ((ex - 0.6 * lay.ew, lay.eye_y + 1.6 * lay.eh), (ex + 0.6 * lay.ew, lay.eye_y + 1.7 * lay.eh))
        for a, b in (fold, crease):
            win, sd, _ = _stroke(c, a, b, line)
            c.paint(win, 0.5 * face.age * c.cover(sd), dark)


def _nose(c: Canvas, face: Face, lay: Layout) -> None:
    """Side shadows along the bridge, a shadow under the tip, a highlight on it, and the nostrils."""
    nose = face.nose
    top, tip, nw = lay.eye_y, lay.nose_y, lay.nw
    for side in (-1, 1):
        x = lay.cx + side * 0.5 * nw
        win = c.window(x - 0.5 * nw, top, x + 0.5 * nw, tip)
        ramp = unit((win.v - top) / (tip - top))
        c.paint(win, nose.shade * ramp * np.exp(-(((win.u - x) / (0.22 * nw)) ** 2)), PUPIL)
    win = c.window(lay.cx - nw, tip - 0.4 * nw, lay.cx + nw, tip + 0.8 * nw)
    rx = 0.2 * nw * nose.nostril
    nostrils = (ellipse_sd(win, lay.cx + side * 0.42 * nw, tip + 0.22 * nw, rx, 0.55 * rx) for side in (-1, 1))
    c.paint_layers(
        win,
        (
            (0.8 * nose.shade * _blob(win, lay.cx, tip + 0.3 * nw, 0.9 * nw, 0.3 * nw), PUPIL),
            (0.2 * _blob(win, lay.cx, tip - 0.15 * nw, 0.35 * nw, 0.3 * nw), TEETH),
            *((0.8 * c.cover(sd), NOSTRIL) for sd in nostrils),
        ),
    )


def _blob(win: Window, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    return np.exp(-(((win.u - cx) / rx) ** 2) - ((win.v - cy) / ry) ** 2)


def _mouth(c: Canvas, face: Face, lay: Layout) -> None:
    m = mouth_shape(c, lay)
    lips = rgb(*face.mouth.color)
    teeth = ((c.cover(m.opening), TEETH),) if lay.gap > 0.0 else ()
    c.paint_layers(
        m.win,
        (
            *teeth,
            (c.cover(m.upper), lips * 0.9),
            (c.cover(m.lower), lips),
            (0.7 * c.cover(np.abs(m.opening) - 0.5 * c.px), LINE),
        ),
    )


def _eyes(c: Canvas, face: Face, lay: Layout) -> None:
    eyes = face.eyes
    iris_r = eyes.iris_r * lay.eh
    for side, win, sd in eye_sds(c, lay):
        white = c.cover(sd)
        ix = lay.eye_x(side) + eyes.gaze * lay.ew
        dist = np.hypot(win.u - ix, win.v - lay.eye_y)
        glint = np.hypot(win.u - ix - 0.3 * iris_r, win.v - lay.eye_y + 0.3 * iris_r)
        c.paint_layers(
            win,
            (
                (white, SCLERA),
                (white * c.cover(dist - iris_r), rgb(*eyes.iris)),
                (white * c.cover(dist - 0.45 * iris_r), PUPIL),
                (white * c.cover(glint - 0.2 * iris_r), SCLERA),
                (0.85 * c.cover(np.abs(sd) - 0.7 * c.px) * (win.v < lay.eye_y), LINE),
            ),
        )


def _bangs(c: Canvas, face: Face, lay: Layout, grain: np.ndarray | None) -> None:
    win, alpha = bangs_cover(c, face, lay)
    strands = np.sin(2.0 * np.pi * 26.0 * (win.u - lay.cx) + face.bangs.phase + 3.0 * (win.v - lay.cy))  # type: ignore[union-attr]
    shade = _grained(1.0 + 0.18 * strands, grain, win, 0.08)
    c.paint(win, alpha, rgb(*face.hair.color) * shade)


def _glasses(c: Canvas, face: Face, lay: Layout) -> None:
    g = face.glasses
    assert g is not None
    for win, frame, lens in glasses_parts(c, face, lay):
        tint = ((g.tint_alpha * c.cover(lens), rgb(*g.tint)),) if lens is not None else ()
        c.paint_layers(win, (*tint, (c.cover(frame), rgb(*g.color))))


def _lighting(c: Canvas, face: Face) -> None:
    s = face.scene
    win = c.everywhere()
    gain = 1.0 + s.light * ((win.u - 0.5) * np.cos(s.light_angle) + (win.v - 0.5) * np.sin(s.light_angle))
    # the float64 product stored as float32, as *= would do, but without its slower casting loop
    c.img[:, win.ys, win.xs] = c.img[:, win.ys, win.xs] * gain


# --- regions ----------------------------------------------------------------------------------------

Region = Callable[[Canvas, Face], np.ndarray]


def region_eyes(c: Canvas, face: Face) -> np.ndarray:
    lay = layout(face)
    out = np.zeros((c.size, c.size), np.float32)
    for side in (-1, 1):
        ex = lay.eye_x(side)
        rx, ry = 1.4 * lay.ew, 2.2 * lay.eh
        win = c.window(ex - rx, lay.eye_y - ry, ex + rx, lay.eye_y + ry)
        out[win.ys, win.xs] = c.cover(ellipse_sd(win, ex, lay.eye_y, rx, ry))
    return out


def region_brows(c: Canvas, face: Face) -> np.ndarray:
    """The brows with a margin of skin around them (a thin stroke alone leaves too few traced pixels)."""
    lay = layout(face)
    pad = 0.8 * face.brows.thick * lay.hh + 0.015
    out = np.zeros((c.size, c.size), np.float32)
    for win, sd in brow_sds(c, face, lay, pad):
        np.maximum(out[win.ys, win.xs], c.cover(sd - pad), out=out[win.ys, win.xs])
    return out


def region_nose(c: Canvas, face: Face) -> np.ndarray:
    lay = layout(face)
    cy = 0.5 * (lay.eye_y + lay.nose_y) + 0.15 * lay.nw
    rx, ry = 1.5 * lay.nw, 0.5 * (lay.nose_y - lay.eye_y) + 0.65 * lay.nw
    win = c.window(lay.cx - rx, cy - ry, lay.cx + rx, cy + ry)
    return win.full(c.size, c.cover(ellipse_sd(win, lay.cx, cy, rx, ry)))


def region_mouth(c: Canvas, face: Face) -> np.ndarray:
    lay = layout(face)
    cy = lay.mouth_y - 0.5 * lay.lift + 0.5 * (lay.lo - lay.up)
    rx, ry = 1.2 * lay.mw, 0.5 * (lay.up + lay.lo) + lay.gap + abs(lay.lift) + 0.03 * lay.hh
    win = c.window(lay.cx - rx, cy - ry, lay.cx + rx, cy + ry)
    return win.full(c.size, c.cover(ellipse_sd(win, lay.cx, cy, rx, ry)))


def region_bangs(c: Canvas, face: Face) -> np.ndarray:
    if face.bangs is None:
        return np.zeros((c.size, c.size), np.float32)
    win, alpha = bangs_cover(c, face, layout(face))
    return win.full(c.size, alpha)


def region_beard(c: Canvas, face: Face) -> np.ndarray:
    if face.beard is None:
        return np.zeros((c.size, c.size), np.float32)
    win, alpha = beard_cover(c, face, layout(face))
    return win.full(c.size, alpha)


def region_glasses(c: Canvas, face: Face) -> np.ndarray:
    out = np.zeros((c.size, c.size), np.float32)
    if face.glasses is None:
        return out
    for win, frame, lens in glasses_parts(c, face, layout(face)):
        part = c.cover(frame if lens is None else np.minimum(frame, lens))
        np.maximum(out[win.ys, win.xs], part, out=out[win.ys, win.xs])
    return out


def region_hair(c: Canvas, face: Face) -> np.ndarray:
    """Visible hair: the hair mass minus neck and skin, plus any bangs."""
    lay = layout(face)
    win, hair = hair_cover(c, face, lay)
    out = win.full(c.size, hair)
    neck, neck_alpha = neck_cover(c, lay)
    out[neck.ys, neck.xs] *= 1.0 - neck_alpha
    skin, skin_alpha, _ = skin_cover(c, face, lay)
    out[skin.ys, skin.xs] *= 1.0 - skin_alpha
    return np.maximum(out, region_bangs(c, face))


def region_skin(c: Canvas, face: Face) -> np.ndarray:
    """Visible face skin: the face below the hairline, without features, beard, bangs or glasses."""
    win, alpha, _ = skin_cover(c, face, layout(face))
    covered = functools.reduce(
        np.maximum,
        (
            region(c, face)
            for region in (region_eyes, region_brows, region_mouth, region_bangs, region_beard, region_glasses)
        ),
    )
    return win.full(c.size, alpha) * (1.0 - covered)
