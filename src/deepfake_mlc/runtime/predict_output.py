"""What ``predict`` writes, a contract scripts rely on (see the docs' "Your own photos and videos").

JSON: the model, runtime, thresholds and face policy, then one entry per input file with ``path``,
``error`` (``null``, or why it could not be read) and, for a photo, ``faces`` (an empty list when no face
was found: a finding, not a verdict of "original"), for a video ``frames`` and ``tracks``. CSV: one row per
face (per frame for videos); a file with no face or an error still has one row, with the face columns
empty. It starts with ``path`` and ``labels`` (joined by ``|``): with faces off (a row per photo) and every
photo readable, it reads back as a manifest.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from deepfake_mlc.artifacts import replace_atomically, write_json_atomically
from deepfake_mlc.config.schema import FaceCropConfig
from deepfake_mlc.metrics.parity import Parity
from deepfake_mlc.runtime.base import Runner
from deepfake_mlc.runtime.predict import FacePrediction, FilePrediction, TrackSummary

BOX_COLUMNS = ("x0", "y0", "x1", "y1")


def fired(labels: Sequence[str], decisions: Sequence[bool]) -> list[str]:
    return [name for name, fire in zip(labels, decisions, strict=True) if fire]


def face_entry(face: FacePrediction, labels: Sequence[str]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "box": [round(v, 2) for v in face.box],
        "score": face.score,
        "probabilities": dict(zip(labels, face.probabilities, strict=True)),
        "labels": fired(labels, face.decisions),
    }
    if face.track is not None:
        entry["track"] = face.track
    return entry


def track_entry(track: TrackSummary, labels: Sequence[str]) -> dict[str, Any]:
    return {
        "id": track.id,
        "frames": track.frames,
        "probabilities": dict(zip(labels, track.probabilities, strict=True)),
        "share_over_threshold": dict(zip(labels, track.share_over_threshold, strict=True)),
        "labels": fired(labels, track.decisions),
    }


def file_entry(result: FilePrediction, labels: Sequence[str]) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": str(result.path), "kind": result.kind, "error": result.error}
    if result.kind == "image":
        entry["faces"] = [face_entry(face, labels) for face in result.faces]
    else:
        entry["frames"] = [{"t": f.t, "faces": [face_entry(face, labels) for face in f.faces]} for f in result.frames]
        entry["tracks"] = [track_entry(track, labels) for track in result.tracks]
    return entry


def write_predictions(
    out: Path,
    results: Sequence[FilePrediction],
    runner: Runner,
    model: Path,
    thresholds: tuple[Sequence[float], str],
    face_crop: FaceCropConfig | None,
    fps: float,
    check: Parity | None = None,
) -> None:
    """JSON (everything, with the model, ``thresholds`` and where they come from, and ``check``) or CSV (a row per
    face), by ``out``'s suffix.

    Written atomically: an interrupted run leaves the previous file, never half of one.
    """
    labels = runner.info.label_names
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".csv":
        replace_atomically(out, lambda tmp: _write_csv(tmp, results, labels))
        return
    report: dict[str, Any] = {
        "model": str(model),
        "runtime": runner.name,
        "precision": runner.precision,
        "thresholds": dict(zip(labels, thresholds[0], strict=True)),
        "threshold_source": thresholds[1],
        "calibration": None if runner.info.calibration is None else runner.info.calibration.model_dump(mode="json"),
        "faces": None if face_crop is None else face_crop.model_dump(mode="json"),
        "fps": fps,
        **({} if check is None else {"check": asdict(check)}),
        "predictions": [file_entry(result, labels) for result in results],
    }
    write_json_atomically(out, report)


def _write_csv(path: Path, results: Sequence[FilePrediction], labels: Sequence[str]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "path",
                "labels",
                "t",
                "track",
                *BOX_COLUMNS,
                "score",
                *(f"{n}_probability" for n in labels),
                *(f"{n}_decision" for n in labels),
                "error",
            ]
        )
        writer.writerows(_csv_rows(results, labels))


def _csv_rows(results: Sequence[FilePrediction], labels: Sequence[str]) -> Iterator[list[Any]]:
    for result in results:
        faces = [(None, face) for face in result.faces] + [(f.t, face) for f in result.frames for face in f.faces]
        for t, face in faces:
            yield [
                result.path,
                "|".join(fired(labels, face.decisions)),
                "" if t is None else t,
                "" if face.track is None else face.track,
                *(f"{v:.2f}" for v in face.box),
                "" if face.score is None else f"{face.score:.4f}",
                *(f"{v:.6f}" for v in face.probabilities),
                *map(int, face.decisions),
                result.error or "",
            ]
        if not faces:
            yield [result.path, "", "", "", *[""] * (5 + 2 * len(labels)), result.error or "no face found"]
