"""Seq-DeepFake (Shao et al., ECCV 2022) as a torch data set.

The on-disk layout and its reader are in :mod:`deepfake_mlc.data.annotations`, which needs no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from deepfake_mlc.config.schema import SPLITS
from deepfake_mlc.data.annotations import read_annotations
from deepfake_mlc.data.base import MultiLabelImageDataset, OnCorrupt
from deepfake_mlc.data.labels import SUBSET_DIRS, SUBSET_LABELS


class SeqDeepFake(MultiLabelImageDataset):
    """One subset/split of Seq-DeepFake as a multi-label data set.

    ``samples`` is a list of ``(absolute_path, target)`` with ``target`` five 0/1 ints in the order of
    ``label_names``; ``__getitem__`` returns ``(image_tensor, target_tensor)``.
    """

    def __init__(
        self,
        root: str | Path,
        subset: str,
        split: str,
        transform: Callable[[Image.Image], Any] | None = None,
        on_corrupt: OnCorrupt = "error",
        augment_seed: int | None = None,
    ) -> None:
        if subset not in SUBSET_DIRS:
            raise ValueError(f"subset must be one of {sorted(SUBSET_DIRS)}, not {subset!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, not {split!r}")
        root = Path(root).expanduser().resolve()
        self.root, self.subset, self.split = root, subset, split
        super().__init__(
            read_annotations(root, subset, split), SUBSET_LABELS[subset], transform, on_corrupt, augment_seed
        )
