"""Shared test fixtures: tiny data sets written on the fly in the official Seq-DeepFake format."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfake_mlc.data.labels import SUBSET_DIRS, format_step_ids, sequence_folder


def write_image(path: Path, seed: int = 0, size: int = 24) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95)


def write_split(
    root: Path,
    subset: str,
    split: str,
    sequences: Sequence[Sequence[int]],
    extra_columns: bool = True,
    labels: Sequence[str] | None = None,
) -> list[Path]:
    """Write images and ``annotations/<split>.csv`` like the official release; returns image paths.

    ``labels`` overrides the label strings written (to write malformed rows on purpose).
    """
    subset_dir = root / SUBSET_DIRS[subset]
    (subset_dir / "annotations").mkdir(parents=True, exist_ok=True)
    paths = []
    rows = []
    for i, steps in enumerate(sequences):
        image = subset_dir / "images" / split / sequence_folder(steps, subset) / f"{i:06d}.jpg"
        write_image(image, seed=i)
        paths.append(image)
        label = labels[i] if labels is not None else format_step_ids(steps)
        row = {"file_path": image.relative_to(root).as_posix(), "label": label}
        if extra_columns:
            row = {"id": str(i), **row, "note": "extra, ignored"}
        rows.append(row)
    with (subset_dir / "annotations" / f"{split}.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return paths


SEQUENCES = [(), (1,), (2, 1), (5, 3, 1), (4, 2, 5, 1), (1, 2, 3, 4, 5), (3, 5), ()]


@pytest.fixture
def seq_root(tmp_path: Path) -> Path:
    """Both subsets, all three splits, originals and a length-5 sequence, with extra CSV columns."""
    root = tmp_path / "seqdeepfake"
    for subset in SUBSET_DIRS:
        for split in ("train", "val", "test"):
            write_split(root, subset, split, SEQUENCES)
    return root
