"""Predict and the runtime interface: any model file, JSON and CSV output, tuned thresholds, one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode, v2

from conftest import LABELS, SEQUENCES, family_files, run_without, write_split
from deepfake_mlc.artifacts import engine_metadata_path, export_name
from deepfake_mlc.cli import main
from deepfake_mlc.config import DataConfig
from deepfake_mlc.data import build_transform
from deepfake_mlc.data.annotations import read_manifest
from deepfake_mlc.data.preprocess import Preprocessing
from deepfake_mlc.errors import CheckpointError, DatasetError, RuntimeUnavailable
from deepfake_mlc.export.onnx import save_model
from deepfake_mlc.export.quantize import quantize_int8
from deepfake_mlc.models.loading import load_checkpoint
from deepfake_mlc.runtime import available_runtimes, eval_arrays, load_images, open_runner, read_model_info
from deepfake_mlc.runtime.info import read_onnx_info
from deepfake_mlc.runtime.runners import open_reference
from test_docker import missing_from_serving_image


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> tuple[Path, Path]:
    """A tiny run folder and its ONNX export."""
    return family_files(tmp_path_factory, data_root, "test_resnet")


def image_folder(data_root: Path) -> Path:
    return data_root / "facial_components" / "images" / "test"


def predict(model: Path, images: Path, out: Path, *options: str) -> int:
    return main(["predict", str(images), "--model", str(model), "--out", str(out), *options])


def test_json_holds_each_labels_probability_and_decision(
    model_files: tuple[Path, Path], data_root: Path, tmp_path: Path
) -> None:
    run, onnx_path = model_files
    assert predict(onnx_path, image_folder(data_root), tmp_path / "p.json") == 0
    report = json.loads((tmp_path / "p.json").read_text())
    assert report["runtime"] == "ort-cpu" and report["thresholds"] == dict.fromkeys(LABELS, 0.5)
    assert report["faces"] is None  # the model was trained on whole images: no face is cut
    rows = report["predictions"]
    assert len(rows) == len(SEQUENCES)
    paths = [Path(row["path"]) for row in rows]
    model, _, _ = load_checkpoint(run)
    with torch.no_grad():
        expected = torch.sigmoid(model(torch.from_numpy(load_images(paths, read_model_info(run))))).numpy()
    for row in rows:  # the whole image is the one face, with no detector score
        assert row["error"] is None and len(row["faces"]) == 1 and row["faces"][0]["score"] is None
        assert row["faces"][0]["box"] == [0, 0, *Image.open(row["path"]).size]
    probs = np.array([[row["faces"][0]["probabilities"][name] for name in LABELS] for row in rows])
    np.testing.assert_allclose(probs, expected, atol=1e-4, rtol=0)
    for row, p in zip(rows, probs, strict=True):
        assert row["faces"][0]["labels"] == [name for name, fired in zip(LABELS, p > 0.5, strict=True) if fired]


def test_csv_from_a_checkpoint_is_a_manifest_with_the_onnx_probabilities(
    model_files: tuple[Path, Path], data_root: Path, tmp_path: Path
) -> None:
    run, onnx_path = model_files
    assert predict(run, image_folder(data_root), tmp_path / "p.csv", "--runtime", "pytorch") == 0
    assert predict(onnx_path, image_folder(data_root), tmp_path / "p.json") == 0
    with (tmp_path / "p.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == [
        "path",
        "labels",
        "t",
        "track",
        "x0",
        "y0",
        "x1",
        "y1",
        "score",
        *(f"{n}_probability" for n in LABELS),
        *(f"{n}_decision" for n in LABELS),
        "error",
    ]
    onnx_rows = json.loads((tmp_path / "p.json").read_text())["predictions"]
    for row, onnx_row in zip(rows, onnx_rows, strict=True):
        face = onnx_row["faces"][0]
        assert row["path"] == onnx_row["path"] and row["labels"] == "|".join(face["labels"])
        for name in LABELS:
            assert float(row[f"{name}_probability"]) == pytest.approx(face["probabilities"][name], abs=1e-4)
    samples = read_manifest(tmp_path / "p.csv", LABELS)  # the CSV reads back as a data set
    assert [Path(path) for path, _ in samples] == [Path(row["path"]) for row in rows]


def test_tuned_thresholds_decide_and_the_override_wins(
    model_files: tuple[Path, Path], data_root: Path, tmp_path: Path
) -> None:
    _, onnx_path = model_files
    tuned = [0.0, 1.0, 0.5, 0.5, 0.5]  # nose always fires, eye never
    model = save_model(
        onnx.load(str(onnx_path)),
        tmp_path / "tuned.onnx",
        read_onnx_info(onnx_path).model_copy(update={"thresholds": tuple(tuned)}),
    )
    assert predict(model, image_folder(data_root), tmp_path / "tuned.json") == 0
    report = json.loads((tmp_path / "tuned.json").read_text())
    assert list(report["thresholds"].values()) == tuned
    faces = [face for row in report["predictions"] for face in row["faces"]]
    assert faces and all("nose" in face["labels"] and "eye" not in face["labels"] for face in faces)
    assert predict(model, image_folder(data_root), tmp_path / "flat.json", "--threshold", "0.5") == 0
    assert json.loads((tmp_path / "flat.json").read_text())["thresholds"] == dict.fromkeys(LABELS, 0.5)


def test_bad_model_files_and_images_are_one_line_errors(
    model_files: tuple[Path, Path], data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, onnx_path = model_files
    (tmp_path / "garbage.onnx").write_bytes(b"\x00\xffnot a protobuf at all")
    (tmp_path / "truncated.onnx").write_bytes(onnx_path.read_bytes()[:2000])
    (tmp_path / "notes.txt").write_text("a model?")
    foreign = onnx.load(str(onnx_path))
    del foreign.metadata_props[:]
    onnx.save(foreign, str(tmp_path / "foreign.onnx"))
    image = next(image_folder(data_root).rglob("*.jpg"))
    cases = {
        "garbage.onnx": "not a readable ONNX model",
        "truncated.onnx": "not a readable ONNX model",
        "notes.txt": "not a model file",
        "foreign.onnx": "an ONNX model without deepfake-mlc metadata",
    }
    for name, problem in cases.items():
        assert main(["predict", str(image), "--model", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {tmp_path / name}: {problem}") and err.count("\n") == 1
    assert main(["predict", str(tmp_path / "none.jpg"), "--model", str(onnx_path)]) == 2  # nothing to read at all
    err = capsys.readouterr().err
    assert err.startswith("error: no images or videos") and str(tmp_path / "none.jpg") in err and err.count("\n") == 1


def test_runtime_interface(model_files: tuple[Path, Path], data_root: Path, tmp_path: Path) -> None:
    run, onnx_path = model_files
    assert available_runtimes(run) == ["pytorch", "pytorch-compile"]
    assert "ort-cpu" in available_runtimes(onnx_path)
    runner = open_runner(onnx_path, "ort-cpu", threads=1)
    assert (runner.name, runner.precision, runner.device) == ("ort-cpu", "fp32", "cpu")
    assert runner.details()["threads"] == 1 and "onnxruntime" in runner.details()
    info = runner.info
    images, targets = eval_arrays(data_root, info, "test", limit=5)
    assert images.shape == (5, 3, 32, 32) and images.dtype == np.float32 and targets.shape == (5, len(LABELS))
    first = sorted(image_folder(data_root).rglob("000000.jpg"))
    np.testing.assert_array_equal(images[:1], load_images(first, info))  # one preprocessing for both
    assert runner(images).shape == (5, len(LABELS))
    with pytest.raises(RuntimeUnavailable, match="pytorch runs a checkpoint file"):
        open_runner(onnx_path, "pytorch")
    with pytest.raises(RuntimeUnavailable, match="unknown runtime"):
        open_runner(onnx_path, "tvm")
    (tmp_path / "model.engine").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"without model\.engine\.json beside it"):
        read_model_info(tmp_path / "model.engine")
    write_split(tmp_path, "attributes", "test", SEQUENCES)
    with pytest.raises(DatasetError, match="are not the model's"):
        eval_arrays(tmp_path, info, "test", subset="attributes")


def test_check_holds_the_runtime_to_the_gate_against_the_reference(
    model_files: tuple[Path, Path],
    data_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run, onnx_path = model_files
    images = image_folder(data_root)
    assert predict(onnx_path, images, tmp_path / "p.json", "--check", "3") == 0
    check = json.loads((tmp_path / "p.json").read_text())["check"]
    assert (check["runtime"], check["reference_runtime"], check["images"]) == ("ort-cpu", "ort-cpu", 3)
    assert check["bound"] == {"precision": "fp32", "limit": 1e-4} and check["max_abs_diff"] <= 1e-4
    assert predict(run, images, tmp_path / "p.json", "--runtime", "pytorch", "--check", "2") == 0
    check = json.loads((tmp_path / "p.json").read_text())["check"]
    assert (check["reference_runtime"], check["reference_precision"], check["max_abs_diff"]) == ("pytorch", "fp32", 0)

    class Drifting:
        """The runtime picked, off by 0.01: a broken provider, a wrong precision."""

        def __init__(self, runner: object) -> None:
            self.runner = runner

        def __getattr__(self, name: str) -> object:
            return getattr(self.runner, name)

        def __call__(self, images: np.ndarray) -> np.ndarray:
            return self.runner(images) + np.float32(0.01)

    opened = open_runner
    monkeypatch.setattr("deepfake_mlc.runtime.open_runner", lambda *args, **kwargs: Drifting(opened(*args, **kwargs)))
    assert predict(onnx_path, images, tmp_path / "drift.json", "--check", "2") == 2
    assert capsys.readouterr().err == (
        "error: --check failed: ort-cpu (fp32) against ort-cpu (fp32) on 2 images: max |Δp| 1.00e-02 > 0.0001\n"
    )
    assert not (tmp_path / "drift.json").exists()


def test_check_cannot_vouch_for_int8_without_labels(
    model_files: tuple[Path, Path], data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, onnx_path = model_files
    calibration = eval_arrays(data_root, read_model_info(onnx_path), "train", limit=8)[0]
    int8 = quantize_int8(onnx_path, calibration, tmp_path / "model-int8.onnx")
    assert main(["predict", str(image_folder(data_root)), "--model", str(int8), "--check", "2"]) == 2
    assert capsys.readouterr().err == (
        "error: --check failed: ort-cpu (int8) against ort-cpu (int8) on 2 images: int8 is judged by its mAP drop, "
        "which needs labelled images (export, serve-bench)\n"
    )


def test_an_engine_is_checked_against_the_onnx_model_it_was_built_from(
    model_files: tuple[Path, Path], tmp_path: Path
) -> None:
    _, onnx_path = model_files
    engine = tmp_path / export_name(onnx_path, "tensorrt", "fp32")
    engine.write_bytes(b"")
    engine_metadata_path(engine).write_text("{}")
    with pytest.raises(RuntimeUnavailable, match=r"model-fp32\.onnx is missing"):
        open_reference(engine)
    (tmp_path / "model-fp32.onnx").write_bytes(onnx_path.read_bytes())
    reference = open_reference(engine)
    assert (reference.name, reference.precision, reference.device) == ("ort-cpu", "fp32", "cpu")


def test_predict_on_onnx_runs_without_the_training_dependencies(
    model_files: tuple[Path, Path], data_root: Path, tmp_path: Path
) -> None:
    """The serving image's predict: the same JSON with torch, timm, safetensors, ... not importable."""
    _, onnx_path = model_files
    argv = ["predict", str(image_folder(data_root)), "--model", str(onnx_path), "--threads", "1", "--check", "2"]
    assert main([*argv, "--out", str(tmp_path / "full.json")]) == 0
    code = f"""
        from deepfake_mlc.cli.main import main
        raise SystemExit(main({[*argv, "--out", str(tmp_path / "serving.json")]!r}))
    """
    result = run_without(missing_from_serving_image(), code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "serving.json").read_text()) == json.loads((tmp_path / "full.json").read_text())
    blocked = run_without(missing_from_serving_image(), "import torch")  # the blocker does block
    assert blocked.returncode == 1 and "not in the serving image" in blocked.stderr


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
def test_preprocessing_is_torchvisions_to_the_bit(interpolation: str) -> None:
    """Resize on the PIL image, ToDtype(scale=True), Normalize: what the data pipeline and predict both run."""
    rng = np.random.default_rng(0)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    for height, width, size in ((37, 53, 24), (20, 16, 48), (32, 32, 32), (300, 200, 224)):
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        torchvision = v2.Compose(
            [
                v2.Resize((size, size), interpolation=InterpolationMode(interpolation)),
                v2.ToImage(),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(list(mean), list(std)),
            ]
        )
        cfg = DataConfig(root=Path("."), image_size=size, interpolation=interpolation, mean=mean, std=std)
        ours = Preprocessing.of(cfg)(image)
        np.testing.assert_array_equal(ours, torchvision(image).numpy())
        np.testing.assert_array_equal(ours, build_transform(cfg, train=False)(image).numpy())
