"""Class activation maps exported as a second ONNX output: the same maps as PyTorch's, at no extra pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FAMILIES, LABELS, run_without, write_run
from deepfake_mlc.artifacts import read_checkpoint, write_checkpoint
from deepfake_mlc.cli import main
from deepfake_mlc.config import FaceCropConfig
from deepfake_mlc.data.preprocess import Preprocessing
from deepfake_mlc.errors import ExportError
from deepfake_mlc.explain.heatmaps import combine, normalise, to_photo
from deepfake_mlc.export import write_export
from deepfake_mlc.export.onnx import ProbabilityModel
from deepfake_mlc.export.pipeline import ExportRequest, run_export
from deepfake_mlc.faces.cutter import FaceCutter
from deepfake_mlc.models.cam import ProbabilitiesAndMaps
from deepfake_mlc.models.loading import load_checkpoint
from deepfake_mlc.runtime import open_runner
from test_docker import missing_from_serving_image
from test_faces import two_face_scene


def images(n: int = 4, size: int = 32) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, 3, size, size)).astype(np.float32)


@pytest.mark.parametrize("name", FAMILIES)
def test_maps_come_with_the_models_own_probabilities(name: str, families: dict[str, tuple[Path, Path]]) -> None:
    model = load_checkpoint(families[name][0])[0]
    x = torch.from_numpy(images())
    with torch.no_grad():
        probabilities, maps = ProbabilitiesAndMaps(model)(x)
        expected = ProbabilityModel(model)(x)
    torch.testing.assert_close(probabilities, expected, rtol=0, atol=1e-6)
    assert maps.shape[:2] == (4, 5) and maps.shape[2] == maps.shape[3] >= 1


def test_with_average_pooling_a_maps_mean_plus_the_bias_is_the_logit(families: dict[str, tuple[Path, Path]]) -> None:
    """CAM's identity (Zhou et al.): what makes the map the label's evidence, cell by cell."""
    model = load_checkpoint(families["test_resnet"][0])[0]
    x = torch.from_numpy(images())
    with torch.no_grad():
        probabilities, maps = ProbabilitiesAndMaps(model)(x)
    logits = maps.mean(dim=(2, 3)) + model.get_classifier().bias
    torch.testing.assert_close(torch.sigmoid(logits), probabilities, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["test_resnet", "ml_gcn"])
def test_onnx_maps_equal_pytorchs(name: str, families: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    run = families[name][0]
    path = write_export(run, tmp_path / "cam.onnx", "onnx", "fp32", with_maps=True)
    runner = open_runner(path, "ort-cpu")
    assert runner.has_maps and not open_runner(families[name][1], "ort-cpu").has_maps
    x = images()
    probabilities, maps = runner.with_maps(x)
    with torch.no_grad():
        expected_p, expected_maps = ProbabilitiesAndMaps(load_checkpoint(run)[0])(torch.from_numpy(x))
    np.testing.assert_allclose(probabilities, expected_p.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(maps, expected_maps.numpy(), rtol=0, atol=1e-4 * float(expected_maps.abs().max()))
    np.testing.assert_array_equal(runner(x), probabilities)  # the plain call still answers probabilities only


def test_export_command_checks_the_maps(
    families: dict[str, tuple[Path, Path]], data_root: Path, tmp_path: Path
) -> None:
    run = families["test_resnet"][0]
    request = ExportRequest(run, out=tmp_path / "cam.onnx", data=data_root, parity_images=8, with_cam=True)
    result = run_export(request)
    assert result.failure() is None and result.maps_deviation is not None and result.maps_deviation < 1e-4
    assert result.maps_bound == 1e-4
    for format, precision in (("onnx-int8", "int8"), ("tensorrt", "fp16")):
        with pytest.raises(ExportError, match=f"not to {format}"):
            write_export(run, tmp_path / "x", format, precision, images(), with_maps=True)


@pytest.fixture(scope="module")
def face_model_with_maps(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """The tiny model, recorded as trained on 64 px FFHQ-aligned faces, exported with its maps."""
    folder = tmp_path_factory.mktemp("cam-faces")
    run = write_run(folder / "run", data_root)
    stem = run / "checkpoints" / "best"
    state, meta = read_checkpoint(stem.with_suffix(".safetensors"))
    preprocessing = meta.preprocessing.model_copy(update={"face_crop": FaceCropConfig(size=64)})
    write_checkpoint(stem, state, meta.model_copy(update={"preprocessing": preprocessing}))
    return write_export(run, folder / "faces-cam.onnx", "onnx", "fp32", with_maps=True)


def test_predict_explain_draws_the_exported_maps_on_the_photo(
    face_model_with_maps: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scene, boxes = two_face_scene()
    scene.save(tmp_path / "two.png")
    argv = ["predict", str(tmp_path / "two.png"), "--model", str(face_model_with_maps), "--threads", "1"]
    assert main([*argv, "--explain", str(tmp_path / "maps"), "--explain-labels", "all"]) == 0
    saved = np.load(tmp_path / "maps" / "two.npz")
    assert list(saved["labels"]) == list(LABELS) and saved["heatmaps"].shape == (5, 480, 640)
    assert {p.name for p in (tmp_path / "maps").iterdir()} >= {"two_panel.png", *(f"two_{n}.png" for n in LABELS)}
    # the same maps computed by hand, in PyTorch, from the same face crops
    runner = open_runner(face_model_with_maps, "ort-cpu")
    faces = FaceCutter(runner.info.preprocessing.face_crop, threads=1)(scene)
    crops = np.stack([Preprocessing.of(runner.info.preprocessing)(f.image) for f in faces])
    model = load_checkpoint(face_model_with_maps.parent / "run")[0]
    with torch.no_grad():
        maps = ProbabilitiesAndMaps(model)(torch.from_numpy(crops))[1].numpy()
    expected = combine([to_photo(normalise(m), scene.size, f.to_photo, 64) for f, m in zip(faces, maps, strict=True)])
    np.testing.assert_allclose(saved["heatmaps"], expected, rtol=0, atol=1e-3)
    inside = np.zeros((480, 640), bool)
    for x0, y0, x1, y1 in boxes:  # the crops reach a little past the boxes; far from the faces nothing is lit
        inside[max(0, y0 - 60) : y1 + 60, max(0, x0 - 60) : x1 + 60] = True
    assert saved["heatmaps"][:, ~inside].max() == 0 and saved["heatmaps"][:, inside].max() > 0.5
    code = f"""
        from deepfake_mlc.cli.main import main
        raise SystemExit(main({[*argv, "--explain", str(tmp_path / "served"), "--explain-labels", "all"]!r}))
    """
    result = run_without(missing_from_serving_image(), code)
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_array_equal(np.load(tmp_path / "served" / "two.npz")["heatmaps"], saved["heatmaps"])
    capsys.readouterr()
    plain = tmp_path / "plain.onnx"
    write_export(face_model_with_maps.parent / "run", plain, "onnx", "fp32")
    assert main(["predict", str(tmp_path / "two.png"), "--model", str(plain), "--explain", str(tmp_path / "x")]) == 2
    assert "exported with --with-cam" in capsys.readouterr().err
