"""Ground-truth masks: written by ``data synth --masks``, read back per label, listed per split in sample order."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import write_image
from deepfake_mlc.cli import main
from deepfake_mlc.config import DataConfig
from deepfake_mlc.data import SeqDeepFake
from deepfake_mlc.data.labels import SUBSET_DIRS, SUBSET_LABELS, parse_step_ids, steps_of
from deepfake_mlc.data.masks import read_label_masks, split_masks, write_label_masks
from deepfake_mlc.data.sources import read_split
from deepfake_mlc.data.synth import SynthConfig, generate, render_sample
from deepfake_mlc.data.synth.writer import PIXEL_STREAM, image_seed, plan
from deepfake_mlc.errors import CorruptImageError, DatasetError

SIZE = 32


def _cfg(masks: bool = True) -> SynthConfig:
    return SynthConfig(
        image_size=SIZE, splits={"train": 8, "val": 2, "test": 0}, workers=0, trace_strength=2.0, masks=masks
    )


@pytest.fixture(scope="module")
def masked_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth_masks")
    generate(_cfg(), root, progress=False)
    return root


def _rows(root: Path, subset: str, split: str) -> list[dict[str, str]]:
    with (root / SUBSET_DIRS[subset] / "annotations" / f"{split}.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_a_mask_per_image_with_the_bits_of_exactly_its_labels(masked_root: Path) -> None:
    for subset in SUBSET_DIRS:
        rows = _rows(masked_root, subset, "train")
        assert list(rows[0]) == ["file_path", "label", "mask_path"]
        for row in rows:
            image, mask = Path(row["file_path"]), Path(row["mask_path"])
            assert mask.parts[1] == "masks" and mask.parts[2:-1] == image.parts[2:-1] and mask.stem == image.stem
            with Image.open(masked_root / mask) as png:
                assert (png.format, png.mode, png.size) == ("PNG", "L", (SIZE, SIZE))
            applied = {step - 1 for step in steps_of(parse_step_ids(row["label"]))}
            labels = read_label_masks(masked_root / mask, len(SUBSET_LABELS[subset]))
            assert labels.shape == (5, SIZE, SIZE) and labels.dtype == bool
            assert {i for i in range(5) if labels[i].any()} == applied  # an original is all zeros


def test_bits_mark_where_each_step_blended_its_edit_in(masked_root: Path) -> None:
    cfg = _cfg()
    for subset, split, index, steps in (job for job in plan(cfg) if job[1] == "train"):
        sample = render_sample(
            subset,
            steps,
            image_seed(cfg.seed, subset, split, index, PIXEL_STREAM),
            SIZE,
            cfg.natural_attribute_rate,
            cfg.trace_strength,
        )
        row = _rows(masked_root, subset, split)[index]
        labels = read_label_masks(masked_root / row["mask_path"], 5)
        for step, weight in zip(steps, sample.masks, strict=True):
            assert np.array_equal(labels[step - 1], weight >= 0.5)
        changed = (sample.image != sample.base).any(axis=2)
        union = np.max(sample.masks, axis=0) if steps else np.zeros((SIZE, SIZE))
        assert not (changed & (union == 0)).any()  # no pixel changes outside the steps' regions
        if steps:
            assert changed[labels.any(axis=0)].mean() > 0.5  # and the marked pixels did change


def test_masks_leave_images_and_the_training_reader_unchanged(masked_root: Path, tmp_path: Path) -> None:
    generate(_cfg(masks=False), tmp_path, progress=False)
    assert not (tmp_path / "facial_components" / "masks").exists()
    for subset in SUBSET_DIRS:
        plain = _rows(tmp_path, subset, "train")
        assert list(plain[0]) == ["file_path", "label"]
        for row, masked in zip(plain, _rows(masked_root, subset, "train"), strict=True):
            assert (row["file_path"], row["label"]) == (masked["file_path"], masked["label"])
            assert (tmp_path / row["file_path"]).read_bytes() == (masked_root / row["file_path"]).read_bytes()
        with_masks, without = SeqDeepFake(masked_root, subset, "train"), SeqDeepFake(tmp_path, subset, "train")
        assert [t for _, t in with_masks.samples] == [t for _, t in without.samples]
        with pytest.raises(DatasetError, match=r"train\.csv has no mask_path column: generate .* data synth --masks"):
            split_masks(DataConfig(root=tmp_path, subset=subset), "train")


def test_cli_flag_and_config_key(tmp_path: Path) -> None:
    tiny = ["--size", "32", "--train", "2", "--val", "1", "--test", "1", "--workers", "0", "--no-progress"]
    assert main(["data", "synth", "--out", str(tmp_path / "flag"), "--subsets", "components", "--masks", *tiny]) == 0
    config = tmp_path / "masks.yaml"
    config.write_text("masks: true\n")
    assert main(["data", "synth", "--out", str(tmp_path / "key"), "--config", str(config), *tiny]) == 0  # kept
    for root in (tmp_path / "flag", tmp_path / "key"):
        assert len(split_masks(DataConfig(root=root, subset="components"), "test")) == 1


def test_split_masks_follow_the_samples_of_read_split(masked_root: Path) -> None:
    cfg = DataConfig(root=masked_root, subset="attributes")
    for split in ("train", "val"):
        samples, _ = read_split(cfg, split)
        masks = split_masks(cfg, split)
        assert len(masks) == len(samples)
        for (image, _), mask in zip(samples, masks, strict=True):
            assert mask is not None and Path(mask).is_absolute()
            assert Path(mask).parent.name == Path(image).parent.name and Path(mask).stem == Path(image).stem


def test_manifest_with_a_mask_column(tmp_path: Path) -> None:
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        write_image(tmp_path / name, size=16)
    (tmp_path / "m").mkdir()
    lip = np.zeros((16, 16), bool)
    lip[10:13, 4:12] = True
    write_label_masks(tmp_path / "m" / "b.png", (16, 16), {1: lip, 2: lip.T})
    manifest = tmp_path / "train.csv"
    manifest.write_text("path,labels,mask_path\na.jpg,,\nb.jpg,inpaint|faceswap,m/b.png\nc.jpg,splice,\n")
    cfg = DataConfig(format="manifest", manifests={"train": manifest}, labels=["splice", "inpaint", "faceswap"])
    assert len(read_split(cfg, "train")[0]) == 3
    assert split_masks(cfg, "train") == [None, str((tmp_path / "m" / "b.png").resolve()), None]
    manifest.write_text("path,labels\na.jpg,\n")
    with pytest.raises(DatasetError, match=r"train\.csv has no mask_path column: add one"):
        split_masks(cfg, "train")
    labels = read_label_masks(tmp_path / "m" / "b.png", 3)
    assert not labels[0].any() and np.array_equal(labels[1], lip) and np.array_equal(labels[2], lip.T)
    big = read_label_masks(tmp_path / "m" / "b.png", 3, size=(32, 48))  # (width, height), nearest
    assert big.shape == (3, 48, 32) and np.array_equal(big[1, ::3, ::2], lip)


def test_missing_unreadable_and_foreign_masks_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"mask file not found: .*nowhere\.png"):
        read_label_masks(tmp_path / "nowhere.png", 5)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(CorruptImageError, match=r"cannot read mask .*broken\.png"):
        read_label_masks(tmp_path / "broken.png", 5)
    Image.new("RGB", (4, 4)).save(tmp_path / "rgb.png")
    with pytest.raises(DatasetError, match=r"rgb\.png is a RGB image, not single-channel 8-bit"):
        read_label_masks(tmp_path / "rgb.png", 5)
    Image.fromarray(np.full((4, 4), 1 << 5, np.uint8)).save(tmp_path / "six.png")
    with pytest.raises(DatasetError, match=r"six\.png has bits beyond its 5 labels"):
        read_label_masks(tmp_path / "six.png", 5)
    write_image(tmp_path / "a.jpg", size=16)
    manifest = tmp_path / "train.csv"
    manifest.write_text("path,labels,mask_path\na.jpg,splice,gone.png\n")
    cfg = DataConfig(format="manifest", manifests={"train": manifest}, labels=["splice"])
    with pytest.raises(DatasetError, match=r"train\.csv:2: mask file not found: .*gone\.png"):
        split_masks(cfg, "train")
