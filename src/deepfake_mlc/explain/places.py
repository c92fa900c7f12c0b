"""Where each photo's explanation files go: ``out`` mirrors the photos' folders below their common folder, and
two photos of one stem in one folder (``a.png``, ``a.jpg``) keep their suffix apart (``a_png``, ``a_jpg``).

``explain`` and ``predict --explain`` name their files alike, so one script reads either's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


class Places:
    """``places(photo) -> (folder, stem)`` for the photos of one run."""

    def __init__(self, out: Path, photos: Sequence[Path]) -> None:
        self.out = out
        self.common = Path(os.path.commonpath([p.parent for p in photos])) if photos else Path()
        stems = [(p.parent, p.stem) for p in photos]
        self._clashing = {key for key in stems if stems.count(key) > 1}

    def __call__(self, photo: Path) -> tuple[Path, str]:
        clash = (photo.parent, photo.stem) in self._clashing
        stem = f"{photo.stem}_{photo.suffix.lstrip('.')}" if clash else photo.stem
        return self.out / photo.parent.relative_to(self.common), stem
