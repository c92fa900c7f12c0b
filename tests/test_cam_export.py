"""Class activation maps exported as a second ONNX output: the same maps as PyTorch's, at no extra pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FAMILIES
from deepfake_mlc.errors import ExportError
from deepfake_mlc.export import write_export
from deepfake_mlc.export.onnx import ProbabilityModel
from deepfake_mlc.export.pipeline import ExportRequest, run_export
from deepfake_mlc.models.cam import ProbabilitiesAndMaps
from deepfake_mlc.models.loading import load_checkpoint
from deepfake_mlc.runtime import open_runner


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
