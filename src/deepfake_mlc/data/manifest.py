"""Users' own data as a torch data set: a CSV manifest with ``path`` and ``labels`` columns, any number of labels.

The label vocabulary comes from the config, so targets are ordered the same way in every split; the
format and its reader are in :mod:`deepfake_mlc.data.annotations`, which needs no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from deepfake_mlc.data.annotations import read_manifest
from deepfake_mlc.data.base import MultiLabelImageDataset, OnCorrupt


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
