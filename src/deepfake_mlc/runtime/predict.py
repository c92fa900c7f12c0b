"""``deepfake-mlc predict``: label probabilities for every face of photos and videos, from any model file.

Each face is cut as the model's training faces were (its crop policy, :mod:`deepfake_mlc.faces`), then
preprocessed as in training. A file that cannot be read is a result too (its ``error``), never the end
of the run: the rest is still predicted and written. Videos are sampled at ``fps`` frames a second and
their faces followed across frames (tracks), each track summarised per label.

``--check`` first holds the runtime picked to the quality gate export applies (:func:`check_runtime`),
against the file's reference runtime on the first images.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Literal

import numpy as np
from rich.progress import Progress

from deepfake_mlc.data.inputs import IMAGE_SUFFIXES, UNREADABLE, file_progress, unreadable_reason
from deepfake_mlc.data.preprocess import Preprocessing
from deepfake_mlc.data.reading import open_rgb
from deepfake_mlc.errors import InputNotFoundError
from deepfake_mlc.faces.cutter import Box, FaceCutter, FaceImage
from deepfake_mlc.faces.tracks import Tracker
from deepfake_mlc.faces.video import VIDEO_SUFFIXES, read_ahead, sample_frames, video_info
from deepfake_mlc.metrics.parity import Parity, check_parity
from deepfake_mlc.runtime.base import Runner, run_batched
from deepfake_mlc.runtime.predict_maps import MapWriter
from deepfake_mlc.runtime.runners import open_reference

INPUT_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES


@dataclass(frozen=True)
class FacePrediction:
    """One face: where (the photo's pixels), how sure the detector was, and the model's answer."""

    box: Box
    score: float | None
    probabilities: tuple[float, ...]
    decisions: tuple[bool, ...]
    track: int | None = None


@dataclass(frozen=True)
class FramePrediction:
    t: float
    faces: list[FacePrediction]


@dataclass(frozen=True)
class TrackSummary:
    """A face followed through a video: mean probability and share of its frames over threshold, per label."""

    id: int
    frames: int
    probabilities: tuple[float, ...]
    share_over_threshold: tuple[float, ...]
    decisions: tuple[bool, ...]


@dataclass
class FilePrediction:
    """One input file: its faces (photos) or frames and tracks (videos), or why it could not be read."""

    path: Path
    kind: Literal["image", "video"]
    error: str | None = None
    faces: list[FacePrediction] = field(default_factory=list)
    frames: list[FramePrediction] = field(default_factory=list)
    tracks: list[TrackSummary] = field(default_factory=list)


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


class Predictor:
    """Runs ``runner`` on the faces ``cutter`` finds; a label fires when its probability is above its threshold."""

    def __init__(
        self,
        runner: Runner,
        cutter: FaceCutter,
        thresholds: Sequence[float],
        batch_size: int = 32,
        maps: MapWriter | None = None,
    ) -> None:
        """``maps``: also write each photo's class activation maps (``runner`` must have them: ``with_maps``)."""
        self.runner, self.cutter, self.batch_size, self.maps = runner, cutter, batch_size, maps
        self.preprocessing = Preprocessing.of(runner.info.preprocessing)
        self.thresholds = np.asarray(thresholds, dtype=np.float64)

    def predict(self, paths: Sequence[Path], fps: float = 5.0) -> list[FilePrediction]:
        """Every file's prediction, in the order given; photos are batched together, videos go frame by frame."""
        results: list[FilePrediction | None] = [None] * len(paths)
        with file_progress() as progress:
            files = progress.add_task(f"predicting {len(paths)} files", total=len(paths))
            images: list[int] = []  # positions of the photos waiting for a batch

            def flush() -> None:
                for i, result in zip(images, self._images([paths[i] for i in images]), strict=True):
                    results[i] = result
                images.clear()

            for i, path in enumerate(paths):
                if is_video(path):
                    results[i] = self._video(path, fps, progress)
                else:
                    images.append(i)
                    if len(images) == self.batch_size:
                        flush()
                progress.advance(files)
            flush()
        return [result for result in results if result is not None]

    def _images(self, paths: Sequence[Path]) -> list[FilePrediction]:
        results, found = [], []
        for path in paths:
            result = FilePrediction(path, "image")
            try:
                photo = open_rgb(path)
                # the photo is kept only to draw on: a batch of 12-megapixel photos is a gigabyte
                found.append((result, photo if self.maps is not None else None, self.cutter(photo)))
            except UNREADABLE as err:
                result.error = unreadable_reason(err, path)
            results.append(result)
        faces = [face for _, _, faces in found for face in faces]
        predictions, maps = self._run(faces, with_maps=self.maps is not None)
        start = 0
        for result, photo, faces in found:
            result.faces = predictions[start : start + len(faces)]
            if self.maps is not None and maps is not None and photo is not None:
                scores = np.asarray([face.probabilities for face in result.faces]).reshape(len(faces), -1)
                fired = np.asarray([face.decisions for face in result.faces], bool).reshape(len(faces), -1)
                self.maps(result.path, photo, faces, maps[start : start + len(faces)], scores, fired)
            start += len(faces)
        return results

    def _video(self, path: Path, fps: float, progress: Progress) -> FilePrediction:
        result = FilePrediction(path, "video")
        tracker = Tracker(patience=max(2, round(fps)))  # a face unseen for about a second is someone else
        try:
            task = progress.add_task(f"  {path.name}", total=video_info(path).samples(fps))
            for chunk in _chunks(read_ahead(sample_frames(path, fps)), self.batch_size):
                found = [(t, self.cutter(frame)) for t, frame in chunk]
                predictions = iter(self._run([face for _, faces in found for face in faces])[0])
                for t, faces in found:
                    ids = tracker.update([face.box for face in faces])
                    frame = [_with_track(next(predictions), track) for track in ids]
                    result.frames.append(FramePrediction(round(t, 3), frame))
                progress.advance(task, len(chunk))
            progress.remove_task(task)
        except UNREADABLE as err:  # frames read before a broken part are kept
            result.error = unreadable_reason(err, path)
        result.tracks = self._tracks(result.frames)
        return result

    def _run(
        self, faces: Sequence[FaceImage], with_maps: bool = False
    ) -> tuple[list[FacePrediction], np.ndarray | None]:
        """The faces' predictions, and their class activation maps ``[F, L, h, w]`` when asked for."""
        if not faces:
            return [], None
        images = np.stack([self.preprocessing(face.image) for face in faces])
        maps = None
        if with_maps:
            runs = [
                self.runner.with_maps(images[i : i + self.batch_size]) for i in range(0, len(images), self.batch_size)
            ]  # type: ignore[attr-defined]
            probabilities, maps = np.concatenate([p for p, _ in runs]), np.concatenate([m for _, m in runs])
        else:
            probabilities = run_batched(self.runner, images, self.batch_size)
        return [
            FacePrediction(face.box, face.score, tuple(map(float, p)), tuple(map(bool, p > self.thresholds)))
            for face, p in zip(faces, probabilities.astype(np.float64), strict=True)
        ], maps

    def _tracks(self, frames: Sequence[FramePrediction]) -> list[TrackSummary]:
        by_track: dict[int, list[tuple[float, ...]]] = {}
        for frame in frames:
            for face in frame.faces:
                by_track.setdefault(int(face.track or 0), []).append(face.probabilities)
        summaries = []
        for track, rows in sorted(by_track.items()):
            p = np.asarray(rows)
            mean = p.mean(0)
            share = (p > self.thresholds).mean(0)
            summaries.append(
                TrackSummary(
                    track,
                    len(rows),
                    tuple(map(float, mean)),
                    tuple(map(float, share)),
                    tuple(map(bool, mean > self.thresholds)),
                )
            )
        return summaries


def _with_track(face: FacePrediction, track: int) -> FacePrediction:
    return FacePrediction(face.box, face.score, face.probabilities, face.decisions, track)


def _chunks(items: Iterable[tuple[float, object]], size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def check_runtime(
    runner: Runner,
    model: Path,
    paths: Sequence[Path],
    thresholds: Sequence[float],
    threads: int | None = None,
    limit: int | None = None,
) -> Parity:
    """``runner`` against ``model``'s reference runtime on the first ``limit`` readable photos among ``paths``
    (whole, in the model's preprocessing), judged by the quality gate.

    The reference computes in IEEE float32 on the CPU (:func:`~deepfake_mlc.runtime.runners.open_reference`).
    Images have no labels here, so only the max |Δp| bounds can be checked: an int8 model fails, pointing
    to export and serve-bench, which measure its mAP drop.
    """
    preprocessing = Preprocessing.of(runner.info.preprocessing)
    images = list(islice(_readable(paths, preprocessing), limit))
    if not images:
        raise InputNotFoundError("--check needs at least one readable photo among the inputs")
    images = np.stack(images)
    reference = open_reference(model, threads=threads)
    return check_parity(
        run_batched(runner, images),
        run_batched(reference, images),
        np.asarray(thresholds),
        runtime=runner.name,
        precision=runner.precision,
        reference_runtime=reference.name,
        reference_precision=reference.precision,
    )


def _readable(paths: Sequence[Path], preprocessing: Preprocessing) -> Iterator[np.ndarray]:
    for path in paths:
        if not is_video(path):
            try:
                yield preprocessing(open_rgb(path))
            except UNREADABLE:
                continue
