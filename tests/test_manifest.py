"""Users' own data: a manifest CSV with any number of labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import write_image
from deepfake_mlc.data import ManifestDataset
from deepfake_mlc.errors import DatasetError

LABELS = ["splice", "inpaint", "faceswap", "relight", "retouch", "upscale", "reenact"]


def _manifest(tmp_path: Path, rows: str) -> Path:
    for name in ("a.jpg", "b.jpg", "sub/c.png"):
        write_image(tmp_path / name)
    path = tmp_path / "train.csv"
    path.write_text("path,labels,source\n" + rows)
    return path


def test_manifest_targets_any_number_of_labels(tmp_path: Path) -> None:
    path = _manifest(tmp_path, "a.jpg,,camera\nb.jpg,reenact|splice,gan\nsub/c.png, upscale | faceswap ,x\n")
    ds = ManifestDataset(path, LABELS)
    assert ds.label_names == tuple(LABELS)
    assert [t for _, t in ds.samples] == [
        (0, 0, 0, 0, 0, 0, 0),
        (1, 0, 0, 0, 0, 0, 1),
        (0, 0, 1, 0, 0, 1, 0),
    ]
    assert ds.samples[2][0] == str((tmp_path / "sub" / "c.png").resolve())
    assert ds[1][1].tolist() == [1.0, 0, 0, 0, 0, 0, 1.0]


def test_unknown_label_names_line_and_known_labels(tmp_path: Path) -> None:
    path = _manifest(tmp_path, "a.jpg,splice\nb.jpg,splice|morph\n")
    with pytest.raises(DatasetError, match=r"train\.csv:3: unknown label 'morph' \(known: splice, inpaint"):
        ManifestDataset(path, LABELS)


def test_repeated_label_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r":2: a label is repeated"):
        ManifestDataset(_manifest(tmp_path, "a.jpg,splice|splice\n"), LABELS)
    with pytest.raises(DatasetError, match=r":2: image file not found: .*gone\.jpg"):
        ManifestDataset(_manifest(tmp_path, "gone.jpg,splice\n"), LABELS)
    with pytest.raises(DatasetError, match="manifest not found"):
        ManifestDataset(tmp_path / "none.csv", LABELS)
