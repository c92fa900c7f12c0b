"""Reader of the Seq-DeepFake data set (Shao et al., ECCV 2022) in its official on-disk layout.

::

    ROOT/facial_components/annotations/{train,val,test}.csv
    ROOT/facial_components/images/{train,val,test}/<sequence-folder>/<name>.jpg
    ROOT/facial_attributes/...   (same)

Each CSV has a header with at least ``file_path`` (relative to ROOT) and ``label`` (``"[1, 2, 4, 0, 0]"``);
other columns are ignored. Every row is validated up front so a bad row fails before training starts.
"""

from __future__ import annotations

from collections.abc import Callable
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
from deepfake_mlc.data.labels import SUBSET_DIRS, SUBSET_LABELS, LabelError, multi_hot, parse_step_ids

SPLITS = ("train", "val", "test")
REQUIRED_COLUMNS = ("file_path", "label")


def annotation_path(root: str | Path, subset: str, split: str) -> Path:
    """Where the official layout keeps the annotations of ``subset``/``split``."""
    return Path(root) / SUBSET_DIRS[subset] / "annotations" / f"{split}.csv"


def read_annotations(root: Path, subset: str, split: str) -> list[Sample]:
    """Parse and validate one annotation CSV into ``(absolute_path, multi_hot_target)`` samples."""
    subset_dir = root / SUBSET_DIRS[subset]
    if not subset_dir.is_dir():
        raise DatasetError(f"Seq-DeepFake subset '{subset}' not found: expected the folder {subset_dir}")
    csv_path = annotation_path(root, subset, split)
    if not csv_path.is_file():
        raise DatasetError(f"Seq-DeepFake split '{split}' of '{subset}' not found: expected {csv_path}")
    samples: list[Sample] = []
    for where, row in read_rows(csv_path, REQUIRED_COLUMNS):
        if not row.get("file_path") or not row.get("label"):
            raise DatasetError(f"{where}: empty file_path or label")
        try:
            steps = parse_step_ids(row["label"])
        except LabelError as err:
            raise DatasetError(f"{where}: {err}") from None
        samples.append((existing_file(root, row["file_path"], where), multi_hot(steps)))
    return samples


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
        if not root.is_dir():
            raise DatasetError(f"Seq-DeepFake root not found: {root}")
        self.root, self.subset, self.split = root, subset, split
        super().__init__(
            read_annotations(root, subset, split), SUBSET_LABELS[subset], transform, on_corrupt, augment_seed
        )
