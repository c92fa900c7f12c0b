"""The Seq-DeepFake reader reads the official format exactly and rejects what does not follow it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from conftest import SEQUENCES, write_split
from deepfake_mlc.config import DataConfig
from deepfake_mlc.data import SeqDeepFake, build_dataset, build_loader
from deepfake_mlc.data.labels import LabelError, multi_hot, parse_step_ids
from deepfake_mlc.errors import CorruptImageError, DatasetError


def test_targets_are_order_free_multi_hot(seq_root: Path) -> None:
    ds = SeqDeepFake(seq_root, "components", "train")
    assert ds.label_names == ("nose", "eye", "eyebrow", "lip", "hair")
    assert [t for _, t in ds.samples] == [
        (0, 0, 0, 0, 0),
        (1, 0, 0, 0, 0),
        (1, 1, 0, 0, 0),
        (1, 0, 1, 0, 1),
        (1, 1, 0, 1, 1),
        (1, 1, 1, 1, 1),
        (0, 0, 1, 0, 1),
        (0, 0, 0, 0, 0),
    ]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p, _ in ds.samples)
    assert Path(ds.samples[0][0]).parent.name == "original"
    assert Path(ds.samples[3][0]).parent.name == "hair-eyebrow-nose"


def test_attributes_subset_and_getitem(seq_root: Path) -> None:
    ds = SeqDeepFake(seq_root, "attributes", "test")
    assert ds.label_names == ("Bangs", "Eyeglasses", "Beard", "Smiling", "Young")
    assert Path(ds.samples[2][0]).parent.name == "Eyeglasses-Bangs"
    image, target = SeqDeepFake(seq_root, "attributes", "val", transform=lambda im: torch.zeros(3, 4, 4))[4]
    assert image.shape == (3, 4, 4)
    assert target.dtype == torch.float32 and target.tolist() == [1.0, 1.0, 0.0, 1.0, 1.0]
    raw, _ = ds[0]
    assert raw.mode == "RGB"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("[0, 0, 0, 0, 0]", (0,) * 5), ("[5, 4, 3, 2, 1]", (5, 4, 3, 2, 1)), (" [2,1,0,0,0] ", (2, 1, 0, 0, 0))],
)
def test_parse_step_ids_accepts_valid(text: str, expected: tuple[int, ...]) -> None:
    assert parse_step_ids(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[1, 2, 0, 0]", "has 4 step ids"),
        ("[1, 6, 0, 0, 0]", "outside 0..5"),
        ("[0, 1, 0, 0, 0]", "zeros pad only the end"),
        ("[1, 1, 0, 0, 0]", "repeats"),
        ("12000", "not a list"),
        ("[1, 2.0, 0, 0, 0]", "not a list of integers"),
        ("nose-eye", "not a list"),
    ],
)
def test_parse_step_ids_rejects_malformed(text: str, problem: str) -> None:
    with pytest.raises(LabelError, match=problem):
        parse_step_ids(text)


def test_multi_hot_ignores_order() -> None:
    assert multi_hot((4, 1, 0, 0, 0)) == multi_hot((1, 4, 0, 0, 0)) == (1, 0, 0, 1, 0)


def test_bad_row_names_file_and_line(tmp_path: Path) -> None:
    labels = ["[1, 0, 0, 0, 0]", "[2, 0, 0, 0, 0]", "[3, 3, 0, 0, 0]"]
    write_split(tmp_path, "components", "train", [(1,), (2,), (3,)], labels=labels)
    csv_path = tmp_path / "facial_components" / "annotations" / "train.csv"
    with pytest.raises(DatasetError) as err:
        SeqDeepFake(tmp_path, "components", "train")
    assert str(err.value).startswith(f"{csv_path.resolve()}:4: ")
    assert "repeats a step id" in str(err.value)


def test_missing_image_names_row_and_path(tmp_path: Path) -> None:
    paths = write_split(tmp_path, "attributes", "val", [(1,), (2, 3)])
    paths[1].unlink()
    with pytest.raises(DatasetError, match=r"val\.csv:3: image file not found: .*Beard.*000001\.jpg"):
        SeqDeepFake(tmp_path, "attributes", "val")


def test_missing_subset_split_and_root_name_expected_path(seq_root: Path, tmp_path: Path) -> None:
    shutil.rmtree(seq_root / "facial_attributes")
    with pytest.raises(DatasetError, match=r"subset 'attributes' not found: expected the folder .*facial_attributes"):
        SeqDeepFake(seq_root, "attributes", "train")
    (seq_root / "facial_components" / "annotations" / "val.csv").unlink()
    with pytest.raises(DatasetError, match=r"split 'val' of 'components' not found: expected .*annotations/val\.csv"):
        SeqDeepFake(seq_root, "components", "val")
    with pytest.raises(DatasetError, match="root not found"):
        SeqDeepFake(tmp_path / "nowhere", "components", "train")
    with pytest.raises(ValueError, match="subset must be one of"):
        SeqDeepFake(seq_root, "faces", "train")


def test_header_without_required_columns(tmp_path: Path) -> None:
    write_split(tmp_path, "components", "test", [(1,)])
    csv_path = tmp_path / "facial_components" / "annotations" / "test.csv"
    csv_path.write_text("path,labels\nx.jpg,[1, 0, 0, 0, 0]\n")
    with pytest.raises(DatasetError, match=r"test\.csv:1: header lacks column\(s\) file_path, label"):
        SeqDeepFake(tmp_path, "components", "test")


def test_header_only_csv_is_an_error(tmp_path: Path) -> None:
    write_split(tmp_path, "components", "test", [(1,)])
    (tmp_path / "facial_components" / "annotations" / "test.csv").write_text("file_path,label\n")
    with pytest.raises(DatasetError, match="no samples"):
        SeqDeepFake(tmp_path, "components", "test")


def _corrupt(seq_root: Path) -> Path:
    victim = seq_root / "facial_components" / "images" / "train" / "eye-nose" / "000002.jpg"
    victim.write_bytes(victim.read_bytes()[:40])  # truncated JPEG
    return victim


def test_corrupt_image_error_policy_names_the_path(seq_root: Path) -> None:
    victim = _corrupt(seq_root)
    ds = SeqDeepFake(seq_root, "components", "train")
    ds[1]  # others still load
    with pytest.raises(CorruptImageError, match=str(victim)):
        ds[2]


def test_corrupt_image_skip_policy_counts_and_logs(seq_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    victim = _corrupt(seq_root)
    ds = SeqDeepFake(seq_root, "components", "train", on_corrupt="skip")
    assert ds[2] is None
    assert ds.num_skipped == 1
    assert str(victim) in caplog.text


def test_skip_policy_through_worker_processes(seq_root: Path) -> None:
    _corrupt(seq_root)
    cfg = DataConfig(root=seq_root, image_size=16, batch_size=4, num_workers=2, on_corrupt="skip")
    ds = build_dataset(cfg, "train", train=False)
    loader = build_loader(ds, cfg, train=False)
    seen = sum(len(targets) for _, targets in loader)
    assert seen == len(SEQUENCES) - 1
    assert ds.num_skipped == 1


def test_unreadable_non_image_file(tmp_path: Path) -> None:
    paths = write_split(tmp_path, "components", "train", [(1,)])
    paths[0].write_text("not an image")
    with pytest.raises(CorruptImageError, match="cannot read image"):
        SeqDeepFake(tmp_path, "components", "train")[0]
