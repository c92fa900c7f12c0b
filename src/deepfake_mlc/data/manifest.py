"""Users' own data: a CSV manifest with ``path`` and ``labels`` columns and any number of labels.

``path`` is absolute or relative to the manifest's folder; ``labels`` holds label names joined by ``|``
(empty for an original). The label vocabulary comes from the config, so targets are ordered the same
way in every split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from deepfake_mlc.data.base import (
    DatasetError,
    MultiLabelImageDataset,
    OnCorrupt,
    Sample,
    existing_file,
    read_rows,
)

REQUIRED_COLUMNS = ("path", "labels")
SEPARATOR = "|"


def read_manifest(csv_path: Path, label_names: Sequence[str]) -> list[Sample]:
    """Parse and validate a manifest into ``(absolute_path, multi_hot_target)`` samples."""
    if not csv_path.is_file():
        raise DatasetError(f"manifest not found: {csv_path}")
    index = {name: i for i, name in enumerate(label_names)}
    samples: list[Sample] = []
    for where, row in read_rows(csv_path, REQUIRED_COLUMNS):
        if not row.get("path"):
            raise DatasetError(f"{where}: empty path")
        names = [n.strip() for n in (row.get("labels") or "").split(SEPARATOR) if n.strip()]
        unknown = [n for n in names if n not in index]
        if unknown:
            raise DatasetError(f"{where}: unknown label {unknown[0]!r} (known: {', '.join(label_names)})")
        if len(set(names)) != len(names):
            raise DatasetError(f"{where}: a label is repeated in {row['labels']!r}")
        target = [0] * len(label_names)
        for name in names:
            target[index[name]] = 1
        samples.append((existing_file(csv_path.parent, row["path"], where), tuple(target)))
    return samples


class ManifestDataset(MultiLabelImageDataset):
    """A multi-label data set described by a CSV manifest and a list of label names."""

    def __init__(
        self,
        manifest: str | Path,
        label_names: Sequence[str],
        transform: Callable[[Image.Image], Any] | None = None,
        on_corrupt: OnCorrupt = "error",
        augment_seed: int | None = None,
    ) -> None:
        if not label_names:
            raise ValueError("a manifest data set needs at least one label name")
        self.manifest = Path(manifest).expanduser().resolve()
        samples = read_manifest(self.manifest, label_names)
        super().__init__(samples, label_names, transform, on_corrupt, augment_seed)
