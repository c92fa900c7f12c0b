"""Vectorised drawing on a float image in normalised coordinates.

Shapes are written as signed distances (negative inside, in normalised units) and turned into coverage
with a one-pixel ramp, which anti-aliases edges at every resolution. Each shape is evaluated only in the
window of pixels around it, so a face of two dozen parts costs little more than its large layers. The
image is held as three colour planes: a coverage then broadcasts along rows, where an (H, W, 3) image
would make numpy loop over runs of three values (many times slower, the same numbers).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

Color = np.ndarray  # float32 RGB in 0..255, shape (3, 1, 1) or a window's (3, h, w)


def rgb(*values: float) -> Color:
    return np.asarray(values, dtype=np.float32).reshape(3, 1, 1)


class Window(NamedTuple):
    """A rectangle of pixels with the normalised coordinates of their centres (``v`` column, ``u`` row)."""

    ys: slice
    xs: slice
    v: np.ndarray  # (h, 1)
    u: np.ndarray  # (1, w)

    def full(self, size: int, alpha: np.ndarray) -> np.ndarray:
        """``alpha`` (given on this window) placed on a zero ``size`` x ``size`` frame."""
        out = np.zeros((size, size), dtype=np.float32)
        out[self.ys, self.xs] = alpha
        return out


Box = tuple[slice, slice]  # rows, columns of pixels (starts and stops given)


class Canvas:
    """A ``size`` x ``size`` float32 RGB image (``img``, planes first) plus the helpers the face parts are drawn with.

    With a ``clip`` box only its pixels are drawn (every window is cut to it) and the rest stays 0: a
    part of an image costs what its pixels cost, and each drawn pixel is the one the whole image has.
    """

    def __init__(self, size: int, clip: Box | None = None) -> None:
        self.size = size
        self.px = 1.0 / size
        self.coords = (np.arange(size, dtype=np.float32) + 0.5) / size
        self._column, self._row = self.coords[:, None], self.coords[None, :]
        self.img = np.zeros((3, size, size), dtype=np.float32)
        self.clip = clip or (slice(0, size), slice(0, size))

    def window(self, x0: float, y0: float, x1: float, y1: float) -> Window:
        """The pixels of the normalised box ``[x0, x1] x [y0, y1]`` plus a two-pixel border (cut to the clip)."""
        n, (rows, cols) = self.size, self.clip
        lo_x, lo_y = max(math.floor(x0 * n) - 2, cols.start), max(math.floor(y0 * n) - 2, rows.start)
        hi_x, hi_y = min(math.ceil(x1 * n) + 2, cols.stop), min(math.ceil(y1 * n) + 2, rows.stop)
        ys, xs = slice(lo_y, max(hi_y, lo_y)), slice(lo_x, max(hi_x, lo_x))
        return Window(ys, xs, self._column[ys], self._row[:, xs])

    def everywhere(self) -> Window:
        return self.window(0.0, 0.0, 1.0, 1.0)

    def cover(self, sd: np.ndarray) -> np.ndarray:
        """Coverage of a shape given by its signed distance: 1 inside, 0 outside, a 1-pixel ramp between."""
        return unit(0.5 - sd * self.size)

    def paint(self, win: Window, alpha: np.ndarray, color: Color | np.ndarray) -> None:
        """Alpha-composite ``color`` over the window (``color`` may be a texture of the window's size)."""
        region = self.img[:, win.ys, win.xs]
        region += alpha * (color - region)


def bounds(a: np.ndarray, margin: int = 0) -> Box | None:
    """The smallest box around the non-zero pixels of ``a``, grown by ``margin`` (cut to ``a``); None if all 0."""
    rows, cols = np.flatnonzero(a.any(axis=1)), np.flatnonzero(a.any(axis=0))
    if not rows.size:
        return None
    height, width = a.shape[:2]
    return (
        slice(max(int(rows[0]) - margin, 0), min(int(rows[-1]) + 1 + margin, height)),
        slice(max(int(cols[0]) - margin, 0), min(int(cols[-1]) + 1 + margin, width)),
    )


def unit(x: np.ndarray) -> np.ndarray:
    """``x`` clipped to [0, 1] (two ufuncs: much cheaper than ``np.clip`` on small windows)."""
    return np.minimum(np.maximum(x, 0.0), 1.0)


def ellipse_sd(win: Window, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse (exact on the axes of a circle)."""
    dx = (win.u - cx) / rx
    dy = (win.v - cy) / ry
    return (np.sqrt(dx * dx + dy * dy) - 1.0) * min(rx, ry)


def segment_sd(win: Window, a: tuple[float, float], b: tuple[float, float], half_width: float) -> np.ndarray:
    """Signed distance to a straight stroke from ``a`` to ``b`` (points are ``(u, v)``)."""
    (ax, ay), (bx, by) = a, b
    ex, ey = bx - ax, by - ay
    px, py = win.u - ax, win.v - ay
    t = unit((px * ex + py * ey) / (ex * ex + ey * ey))
    return np.hypot(px - t * ex, py - t * ey) - half_width
