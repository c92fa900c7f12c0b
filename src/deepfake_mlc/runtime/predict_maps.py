"""``predict --explain``: each photo's class activation maps, from the exported model's second output.

The maps come with the probabilities from one run of a model exported with ``--with-cam`` (no gradients,
no torch), and are drawn, mapped back through the face crop and written exactly as ``deepfake-mlc
explain`` writes its Grad-CAM maps (:mod:`deepfake_mlc.explain.heatmaps`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from deepfake_mlc.explain.heatmaps import Shown, faces_on_photo, write_explanation
from deepfake_mlc.explain.places import Places
from deepfake_mlc.faces.cutter import FaceImage


class MapWriter:
    """Writes the overlays, panel and ``.npz`` of each of ``photos`` with a face, placed as ``explain`` places them."""

    def __init__(
        self,
        out: Path,
        photos: Sequence[Path],
        label_names: Sequence[str],
        crop_size: int | None,
        shown: Shown = "fired",
    ) -> None:
        self.places, self.label_names, self.crop_size, self.shown = (
            Places(out, photos),
            tuple(label_names),
            crop_size,
            shown,
        )

    def __call__(
        self,
        path: Path,
        photo: Image.Image,
        faces: Sequence[FaceImage],
        maps: np.ndarray,
        probabilities: np.ndarray,
        decisions: np.ndarray,
    ) -> list[Path]:
        """``maps`` ``[F, L, h, w]``, ``probabilities`` and ``decisions`` ``[F, L]`` of the photo's ``F`` faces.

        Faces are combined by their maps' maximum and their labels' highest probability; a label is shown
        (``fired``) when it fires on any face. A photo without a face gets no files (as with ``explain``).
        """
        if not faces:
            return []
        heatmaps = faces_on_photo(photo.size, faces, maps, self.crop_size)
        fired = decisions.any(axis=0)
        shown = range(len(self.label_names)) if self.shown == "all" else np.flatnonzero(fired).tolist()
        best = probabilities.max(axis=0).tolist()
        return write_explanation(*self.places(path), photo, heatmaps, self.label_names, best, list(shown))
