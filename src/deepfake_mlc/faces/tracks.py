"""Keeping faces apart across the sampled frames of a video: a face is the same person as the track whose
last box it overlaps most (greedy IoU matching, as SORT does without its motion model)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

Box = tuple[float, float, float, float]


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@dataclass
class _Track:
    id: int
    box: Box
    missed: int = 0


@dataclass
class Tracker:
    """Gives each face of a frame a track id; a track not seen for ``patience`` frames is closed.

    ``min_iou`` is low because sampled frames are far apart in time (0.2 s at 5 fps): a face moves.
    """

    min_iou: float = 0.3
    patience: int = 5
    _open: list[_Track] = field(default_factory=list)
    _next_id: int = 0

    def update(self, boxes: Sequence[Box]) -> list[int]:
        """The track id of each box, in order: the best overlapping open track, or a new one."""
        pairs = sorted(
            ((iou(box, track.box), i, j) for i, box in enumerate(boxes) for j, track in enumerate(self._open)),
            reverse=True,
        )
        ids: list[int | None] = [None] * len(boxes)
        taken: set[int] = set()
        for overlap, i, j in pairs:
            if overlap < self.min_iou:
                break
            if ids[i] is None and j not in taken:
                ids[i], taken = self._open[j].id, taken | {j}
                self._open[j].box, self._open[j].missed = boxes[i], 0
        for j, track in enumerate(self._open):
            track.missed += j not in taken
        self._open = [t for t in self._open if t.missed <= self.patience]
        for i, box in enumerate(boxes):
            if ids[i] is None:
                ids[i] = self._next_id
                self._open.append(_Track(self._next_id, tuple(box)))
                self._next_id += 1
        return [int(i) for i in ids if i is not None]
