"""Vectorised drawing on a float image in normalised coordinates.

Shapes are written as signed distances (negative inside, in normalised units) and turned into coverage
with a one-pixel ramp, which anti-aliases edges at every resolution. Each shape is evaluated only in the
window of pixels around it, so a face of two dozen parts costs little more than its large layers. The
image is held as three colour planes: a coverage then broadcasts along rows, where an (H, W, 3) image
would make numpy loop over runs of three values (many times slower, the same numbers).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

Color = np.ndarray  # float32 RGB in 0..255, shape (3, 1, 1) or a window's (3, h, w)

# The constants of the coverage ramp as 0-d float32 arrays: numpy converts a Python float on every
# operation (a third of the cost on small windows); these values are exact in float32, so every result
# (float32 or float64) is the one the Python floats give.
ZERO, HALF, ONE = (np.array(value, dtype=np.float32) for value in (0.0, 0.5, 1.0))


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
        self._scale = np.array(size, dtype=np.float32)  # exact, as ZERO, HALF and ONE
        self._column, self._row = _centres(size)
        self.img = np.zeros((3, size, size), dtype=np.float32)
        self.clip = clip or (slice(0, size), slice(0, size))

    def window(self, x0: float, y0: float, x1: float, y1: float) -> Window:
        """The pixels of the normalised box ``[x0, x1] x [y0, y1]`` plus a two-pixel border (cut to the clip)."""
        n, (rows, cols) = self.size, self.clip
        ys = _span(math.floor(y0 * n) - 2, math.ceil(y1 * n) + 2, rows)
        xs = _span(math.floor(x0 * n) - 2, math.ceil(x1 * n) + 2, cols)
        return Window(ys, xs, self._column[ys], self._row[:, xs])

    def everywhere(self) -> Window:
        return self.window(0.0, 0.0, 1.0, 1.0)

    def cover(self, sd: np.ndarray) -> np.ndarray:
        """Coverage of a shape given by its signed distance: 1 inside, 0 outside, a 1-pixel ramp between."""
        return unit(HALF - sd * self._scale)

    def paint(self, win: Window, alpha: np.ndarray, color: Color | np.ndarray) -> None:
        """Alpha-composite ``color`` over the window (``color`` may be a texture of the window's size)."""
        self.paint_layers(win, ((alpha, color),))

    def paint_layers(self, win: Window, layers: Iterable[tuple[np.ndarray, Color | np.ndarray]]) -> None:
        """Paint each ``(alpha, color)`` over the window in turn, as that many :meth:`paint` calls would.

        The window is worked on as a contiguous copy: on a view of strided rows each numpy operation loops
        row by row, which costs more than copying the pixels out and back once for all the layers.
        """
        region = self.img[:, win.ys, win.xs].copy()
        for alpha, color in layers:
            region += alpha * (color - region)
        self.img[:, win.ys, win.xs] = region


def _span(lo: int, hi: int, clip: slice) -> slice:
    """``lo:hi`` cut to ``clip`` (empty if outside it), by comparisons: cheaper than ``max`` and ``min`` calls."""
    lo = lo if lo > clip.start else clip.start
    hi = hi if hi < clip.stop else clip.stop
    return slice(lo, hi if hi > lo else lo)


_CENTRES: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _centres(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres of a ``size`` grid as a column and a row, made once per size (read-only).

    Every image makes half a dozen canvases of a few sizes; building the grid each time costs more than
    small windows do.
    """
    if size not in _CENTRES:
        coords = (np.arange(size, dtype=np.float32) + 0.5) / size
        coords.flags.writeable = False
        _CENTRES[size] = coords[:, None], coords[None, :]
    return _CENTRES[size]


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


def interleave(planes: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(3, H, W) colour planes as an (H, W, 3) image, written into ``out`` if given.

    Plane by plane: a transposed copy moves three values at a time and takes several times longer.
    """
    if out is None:
        out = np.empty((*planes.shape[1:], 3), dtype=planes.dtype)
    for channel, plane in enumerate(planes):
        out[..., channel] = plane
    return out


def unit(x: np.ndarray) -> np.ndarray:
    """``x`` clipped to [0, 1] (two ufuncs: much cheaper than ``np.clip`` on small windows)."""
    return np.minimum(np.maximum(x, ZERO), ONE)


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
