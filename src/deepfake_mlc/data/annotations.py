"""The two annotation formats read into ``(absolute_path, multi_hot_target)`` samples, without torch.

Seq-DeepFake (Shao et al., ECCV 2022) in its official layout::

    ROOT/facial_components/annotations/{train,val,test}.csv
    ROOT/facial_components/images/{train,val,test}/<sequence-folder>/<name>.jpg
    ROOT/facial_attributes/...   (same)

Each CSV has a header with at least ``file_path`` (relative to ROOT) and ``label`` (``"[1, 2, 4, 0, 0]"``);
other columns are ignored. A manifest (users' own data) is a CSV with ``path`` (absolute or relative to
the manifest's folder) and ``labels`` (label names joined by ``|``, empty for an original). Every row is
validated up front so a bad row fails before anything runs. Either may carry a ``mask_path`` column, the
ground-truth masks that :mod:`deepfake_mlc.data.masks` reads; the readers here ignore it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from deepfake_mlc.data.labels import SUBSET_DIRS, LabelError, multi_hot, parse_step_ids
from deepfake_mlc.data.reading import Sample, existing_file, read_rows
from deepfake_mlc.errors import DatasetError

SEQDEEPFAKE_COLUMNS = ("file_path", "label")
MANIFEST_COLUMNS = ("path", "labels")
SEPARATOR = "|"


def annotation_path(root: str | Path, subset: str, split: str) -> Path:
    """Where the official layout keeps the annotations of ``subset``/``split``."""
    return Path(root) / SUBSET_DIRS[subset] / "annotations" / f"{split}.csv"


def read_annotations(root: Path, subset: str, split: str) -> list[Sample]:
    """Parse and validate one Seq-DeepFake annotation CSV (``root`` resolved) into samples."""
    if not root.is_dir():
        raise DatasetError(f"Seq-DeepFake root not found: {root}")
    subset_dir = root / SUBSET_DIRS[subset]
    if not subset_dir.is_dir():
        raise DatasetError(f"Seq-DeepFake subset '{subset}' not found: expected the folder {subset_dir}")
    csv_path = annotation_path(root, subset, split)
    if not csv_path.is_file():
        raise DatasetError(f"Seq-DeepFake split '{split}' of '{subset}' not found: expected {csv_path}")
    samples: list[Sample] = []
    for where, row in read_rows(csv_path, SEQDEEPFAKE_COLUMNS):
        if not row.get("file_path") or not row.get("label"):
            raise DatasetError(f"{where}: empty file_path or label")
        try:
            steps = parse_step_ids(row["label"])
        except LabelError as err:
            raise DatasetError(f"{where}: {err}") from None
        samples.append((existing_file(root, row["file_path"], where), multi_hot(steps)))
    return samples


def read_manifest(csv_path: Path, label_names: Sequence[str]) -> list[Sample]:
    """Parse and validate a manifest into samples, targets in the order of ``label_names``."""
    if not csv_path.is_file():
        raise DatasetError(f"manifest not found: {csv_path}")
    index = {name: i for i, name in enumerate(label_names)}
    samples: list[Sample] = []
    for where, row in read_rows(csv_path, MANIFEST_COLUMNS):
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
