"""Typed run artifacts: files of the previous release still load, newer ones are refused clearly, writes are atomic."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO
from deepfake_mlc.artifacts import (
    SCHEMA_VERSION,
    CheckpointMeta,
    ModelInfo,
    RunFolder,
    parse_model_info,
    read_checkpoint_meta,
    write_checkpoint,
)
from deepfake_mlc.errors import CheckpointError, InputNotFoundError
from deepfake_mlc.models.loading import load_checkpoint
from deepfake_mlc.runtime import open_runner, read_model_info

RELEASE_0_1_0 = REPO / "tests" / "fixtures" / "release-0.1.0"


def test_a_run_folder_of_release_0_1_0_still_loads_and_predicts_as_its_onnx_export() -> None:
    run = RunFolder(RELEASE_0_1_0)
    meta = read_checkpoint_meta(run.path)
    assert meta.schema_version == SCHEMA_VERSION and meta.model_name == "test_resnet"
    assert meta.label_names == ("nose", "eye", "eyebrow", "lip", "hair") and meta.epoch == 1
    summary = run.read_summary()
    assert summary.best == meta.metrics and [h["epoch"] for h in summary.history] == [1]
    model, cfg, _ = load_checkpoint(run.path)
    assert cfg.model.name == "test_resnet" and not model.training
    onnx_info = read_model_info(run.checkpoints / "best-fp32.onnx")
    assert onnx_info.preprocessing == meta.preprocessing and onnx_info.precision == "fp32"
    assert onnx_info.model == "test_resnet" and onnx_info.deepfake_mlc == "0.1.0"
    images = np.random.default_rng(0).normal(size=(3, 3, 32, 32)).astype(np.float32)
    torch_probs = open_runner(run.path, "pytorch")(images)
    onnx_probs = open_runner(run.checkpoints / "best-fp32.onnx", "ort-cpu")(images)
    assert np.abs(torch_probs - onnx_probs).max() < 1e-5


def test_metadata_round_trips_and_is_written_atomically(tmp_path: Path) -> None:
    meta = read_checkpoint_meta(RELEASE_0_1_0)
    stem = tmp_path / "checkpoints" / "best"
    write_checkpoint(stem, {"w": torch.ones(2)}, meta)
    assert read_checkpoint_meta(stem.with_suffix(".safetensors")) == meta
    assert CheckpointMeta.model_validate(json.loads(stem.with_suffix(".json").read_text())) == meta
    assert sorted(p.name for p in stem.parent.iterdir()) == ["best.json", "best.safetensors"]  # no temporary left


def test_a_checkpoint_name_with_dots_keeps_its_whole_name(tmp_path: Path) -> None:
    meta = read_checkpoint_meta(RELEASE_0_1_0)
    write_checkpoint(tmp_path / "model.v2", {"w": torch.ones(2)}, meta)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.v2.json", "model.v2.safetensors"]


def test_models_of_schema_3_had_f1_thresholds_and_no_calibration() -> None:
    data = read_checkpoint_meta(RELEASE_0_1_0).model_dump(mode="json")
    old = {**data, "schema_version": 3, "thresholds": [0.4] * len(data["label_names"])}
    del old["threshold_policy"], old["calibration"]
    meta = CheckpointMeta.from_json(old, "old.safetensors")
    assert meta.threshold_policy == "f1" and meta.calibration is None and meta.threshold_source() == "policy f1"
    assert CheckpointMeta.from_json({**old, "thresholds": None}, "old.safetensors").threshold_policy is None


def test_one_threshold_and_one_positive_temperature_per_label_or_damaged() -> None:
    data = read_checkpoint_meta(RELEASE_0_1_0).model_dump(mode="json")
    calibration = {"temperatures": [1.0, 2.0], "split": "val", "images": 8, "ece_before": 0.1, "ece_after": 0.05}
    with pytest.raises(CheckpointError, match="damaged a deepfake-mlc checkpoint: 2 calibration temperatures for 5"):
        CheckpointMeta.from_json({**data, "calibration": calibration}, "x.safetensors")
    with pytest.raises(CheckpointError, match="damaged a deepfake-mlc checkpoint: 2 thresholds for 5 labels"):
        CheckpointMeta.from_json({**data, "thresholds": [0.5, 0.5]}, "x.safetensors")
    calibration["temperatures"] = [1.0, 0.0, 1.0, 1.0, 1.0]
    with pytest.raises(CheckpointError, match=r"'calibration.temperatures.1': Input should be greater than 0"):
        CheckpointMeta.from_json({**data, "calibration": calibration}, "x.safetensors")


def test_a_newer_schema_version_is_refused_with_the_way_out(tmp_path: Path) -> None:
    data = read_checkpoint_meta(RELEASE_0_1_0).model_dump(mode="json")
    with pytest.raises(CheckpointError, match=r"newer deepfake-mlc \(schema version 99.*upgrade deepfake-mlc"):
        CheckpointMeta.from_json({**data, "schema_version": 99}, "future.safetensors")
    info = read_model_info(RELEASE_0_1_0 / "checkpoints" / "best-fp32.onnx").model_dump(mode="json")
    newer = SCHEMA_VERSION + 1
    with pytest.raises(CheckpointError, match=f"schema version {newer}"):
        parse_model_info(json.dumps({**info, "schema_version": newer}), "future.onnx", "an ONNX model")


def test_models_written_before_faces_take_whole_images() -> None:
    """Schema 1 and 2 had no face crop: the model saw whole images, and still does (predict --faces auto)."""
    meta = read_checkpoint_meta(RELEASE_0_1_0)
    info = read_model_info(RELEASE_0_1_0 / "checkpoints" / "best-fp32.onnx")
    assert meta.preprocessing.face_crop.policy == info.preprocessing.face_crop.policy == "none"
    version_2 = meta.model_dump(mode="json")
    del version_2["preprocessing"]["face_crop"]
    upgraded = CheckpointMeta.from_json({**version_2, "schema_version": 2}, "v2.safetensors")
    assert upgraded.preprocessing.face_crop.policy == "none"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"format": "someone-else/v1"}, "not a deepfake-mlc checkpoint"),
        ({"format": "deepfake-mlc/checkpoint", "schema_version": "two"}, "schema_version 'two'"),
        ({"format": "deepfake-mlc/checkpoint", "schema_version": 2, "config": {}}, "damaged"),
    ],
)
def test_foreign_or_damaged_metadata_is_one_clear_error(data: dict, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        CheckpointMeta.from_json(data, "x.safetensors")


def test_model_info_of_a_checkpoint_names_its_source() -> None:
    meta = read_checkpoint_meta(RELEASE_0_1_0)
    info = ModelInfo.of_checkpoint("best.safetensors", meta, "ab" * 32)
    assert (
        info.decision_thresholds() == (0.5,) * 5 and info.model == "test_resnet" and info.source == "best.safetensors"
    )


def test_missing_and_unfinished_runs_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match="checkpoint not found"):
        read_checkpoint_meta(tmp_path)
    unfinished = tmp_path / "unfinished"
    shutil.copytree(RELEASE_0_1_0, unfinished)
    (unfinished / "metrics.json").unlink()
    assert not RunFolder(unfinished).is_finished() and RunFolder(RELEASE_0_1_0).is_finished()
    with pytest.raises(InputNotFoundError, match="no finished run here"):
        RunFolder(unfinished).read_summary()
