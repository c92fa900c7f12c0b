"""``deepfake-mlc explain``'s work on files: each photo's faces found and cut as ``predict`` cuts them, each
face's maps carried back onto the photo, and the photo's overlays, panel and maps written.

Images only (a video's frames would each need their own pictures). An unreadable file is a result too, with
its reason, and never the end of the run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deepfake_mlc.data.inputs import UNREADABLE, file_progress, unreadable_reason
from deepfake_mlc.data.preprocess import Preprocessing
from deepfake_mlc.data.reading import open_rgb
from deepfake_mlc.explain.cam import Explainer
from deepfake_mlc.explain.heatmaps import Shown, faces_on_photo, write_explanation
from deepfake_mlc.explain.places import Places
from deepfake_mlc.faces.cutter import FaceCutter


@dataclass(frozen=True)
class Explained:
    """One photo: how many faces, the labels drawn, the files written, the time it took, or why it is unreadable."""

    path: Path
    faces: int = 0
    shown: tuple[str, ...] = ()
    files: tuple[Path, ...] = ()
    seconds: float = 0.0
    error: str | None = None


class PhotoExplainer:
    """Explains photos with ``explainer``, faces cut by ``cutter``; a label is drawn when its probability (the
    highest of the photo's faces) is above its threshold, or always with ``shown="all"``."""

    def __init__(
        self,
        explainer: Explainer,
        cutter: FaceCutter,
        preprocessing: Preprocessing,
        label_names: Sequence[str],
        thresholds: Sequence[float],
        shown: Shown = "fired",
    ) -> None:
        self.explainer, self.cutter, self.preprocessing = explainer, cutter, preprocessing
        self.label_names = tuple(label_names)
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.shown = shown

    def explain(self, paths: Sequence[Path], out: Path) -> list[Explained]:
        """Every photo explained into ``out``, in the folders they have below the inputs' common folder."""
        places = Places(out, paths)
        results = []
        with file_progress() as progress:
            for path in progress.track(paths, description=f"explaining {len(paths)} images"):
                results.append(self._photo(path, *places(path)))
        return results

    def _photo(self, path: Path, folder: Path, stem: str) -> Explained:
        start = time.perf_counter()
        try:
            photo = open_rgb(path)
        except UNREADABLE as err:
            return Explained(path, error=unreadable_reason(err, path))
        faces = self.cutter(photo)
        if not faces:
            return Explained(path, seconds=time.perf_counter() - start)
        images = torch.from_numpy(np.stack([self.preprocessing(face.image) for face in faces]))
        probabilities = self.explainer.probabilities(images).max(axis=0)
        maps = self.explainer(images, range(len(self.label_names)))
        crop = self.cutter.policy.size if self.cutter.policy is not None else None
        heatmaps = faces_on_photo(photo.size, faces, maps, crop)
        shown = range(len(self.label_names)) if self.shown == "all" else np.flatnonzero(probabilities > self.thresholds)
        files = write_explanation(folder, stem, photo, heatmaps, self.label_names, probabilities, shown)
        names = tuple(self.label_names[i] for i in shown)
        return Explained(path, len(faces), names, tuple(files), time.perf_counter() - start)
