"""``deepfake-mlc predict``: each image's label probabilities and decisions, from any model file.

The CSV output is also a manifest (``path``, ``labels`` joined by ``|``), so predictions can be read
back as a data set. ``--check`` first holds the runtime picked to the quality gate export applies
(:func:`check_runtime`), against the file's reference runtime on the first images.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import track

from deepfake_mlc.errors import InputNotFoundError
from deepfake_mlc.metrics.parity import Parity, check_parity
from deepfake_mlc.runtime.base import Runner, run_batched
from deepfake_mlc.runtime.data import load_images
from deepfake_mlc.runtime.runners import open_reference

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


@dataclass(frozen=True)
class Prediction:
    path: Path
    probabilities: tuple[float, ...]
    decisions: tuple[bool, ...]

    def fired(self, label_names: Sequence[str]) -> list[str]:
        return [name for name, fired in zip(label_names, self.decisions, strict=True) if fired]


def collect_images(paths: Sequence[Path]) -> list[Path]:
    """Image files as given, and the images under folders (recursively, sorted); absolute paths."""
    found: list[Path] = []
    for path in (p.expanduser().resolve() for p in paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.is_file():
            found.append(path)
        else:
            raise InputNotFoundError(f"image not found: {path}")
    if not found:
        raise InputNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {', '.join(map(str, paths))}")
    return found


def predict_files(
    runner: Runner, paths: Sequence[Path], thresholds: Sequence[float], batch_size: int = 32
) -> list[Prediction]:
    """Run ``runner`` over image files; a label fires when its probability is above its threshold."""
    limits = np.asarray(thresholds, dtype=np.float64)
    predictions = []
    starts = range(0, len(paths), batch_size)
    for start in track(starts, description=f"predicting {len(paths)} images", transient=True):
        chunk = paths[start : start + batch_size]
        probs = runner(load_images(chunk, runner.info))
        for path, row in zip(chunk, probs, strict=True):
            predictions.append(Prediction(path, tuple(map(float, row)), tuple(bool(f) for f in row > limits)))
    return predictions


def check_runtime(
    runner: Runner, model: Path, paths: Sequence[Path], thresholds: Sequence[float], threads: int | None = None
) -> Parity:
    """``runner`` against ``model``'s reference runtime on the images at ``paths``, judged by the quality gate.

    The reference computes in IEEE float32 on the CPU (:func:`~deepfake_mlc.runtime.runners.open_reference`).
    Images have no labels here, so only the max |Δp| bounds can be checked: an int8 model fails, pointing
    to export and serve-bench, which measure its mAP drop.
    """
    images = load_images(paths, runner.info)
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


def write_predictions(
    out: Path,
    predictions: Sequence[Prediction],
    runner: Runner,
    model: Path,
    thresholds: Sequence[float],
    check: Parity | None = None,
) -> None:
    """JSON (everything, with the model, thresholds and ``check``) or CSV (one row per image), by ``out``'s suffix."""
    labels = runner.info.label_names
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".csv":
        with out.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(
                ["path", "labels", *(f"{n}_probability" for n in labels), *(f"{n}_decision" for n in labels)]
            )
            for p in predictions:
                writer.writerow(
                    [p.path, "|".join(p.fired(labels)), *(f"{v:.6f}" for v in p.probabilities), *map(int, p.decisions)]
                )
        return
    report: dict[str, Any] = {
        "model": str(model),
        "runtime": runner.name,
        "precision": runner.precision,
        "thresholds": dict(zip(labels, thresholds, strict=True)),
        **({} if check is None else {"check": asdict(check)}),
        "predictions": [
            {
                "path": str(p.path),
                "labels": p.fired(labels),
                "probabilities": dict(zip(labels, p.probabilities, strict=True)),
                "decisions": dict(zip(labels, p.decisions, strict=True)),
            }
            for p in predictions
        ],
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
