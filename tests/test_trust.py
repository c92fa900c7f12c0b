"""Calibrated probabilities, threshold policies and robustness, end to end: what a forensic user relies on.

The numerical cores have known-answer tests in test_calibration.py and test_degrade.py; here the commands
store what they fit, every runtime applies it, and bad names stop with one line.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from conftest import SEQUENCES, run_without, write_run, write_split
from deepfake_mlc.artifacts import read_checkpoint_meta
from deepfake_mlc.cli.main import main
from deepfake_mlc.models.loading import load_checkpoint
from deepfake_mlc.runtime import eval_arrays, open_runner, read_model_info, run_batched
from test_docker import missing_from_serving_image


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """A tiny run calibrated with temperatures and fpr:0.5 thresholds on its val split."""
    run = write_run(tmp_path_factory.mktemp("calibrated") / "run", data_root)
    assert main(["calibrate", str(run), "--data", str(data_root), "--thresholds", "fpr:0.5", "--cpu"]) == 0
    return run


def test_calibrate_stores_temperatures_and_policy_in_the_checkpoint(calibrated: Path) -> None:
    meta = read_checkpoint_meta(calibrated)
    assert meta.calibration is not None and len(meta.calibration.temperatures) == len(meta.label_names)
    assert meta.calibration.split == "val" and meta.calibration.images == len(SEQUENCES)
    assert meta.threshold_policy == "fpr:0.5" and meta.thresholds is not None
    assert meta.threshold_source() == "policy fpr:0.5"
    assert json.loads((calibrated / "checkpoints" / "best.json").read_text())["threshold_policy"] == "fpr:0.5"
    report = json.loads((calibrated / "calibration" / "calibration.json").read_text())
    assert report["test"]["images"] == len(SEQUENCES) and set(report["test"]["after"]["per_label"]) == set(
        meta.label_names
    )
    for row in report["test"]["thresholds"].values():  # the policy's cost on test, per label
        assert row["originals"] == 2 and row["fpr_originals"] in (0.0, 0.5, 1.0)
    assert (calibrated / "calibration" / "reliability.png").stat().st_size > 0


def test_every_runtime_and_the_export_apply_the_temperatures(
    calibrated: Path, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, _, meta = load_checkpoint(calibrated)
    assert meta.calibration is not None
    temperatures = torch.tensor(meta.calibration.temperatures)
    info = read_model_info(calibrated)
    images, _ = eval_arrays(data_root, info, "test")
    with torch.no_grad():
        expected = torch.sigmoid(model(torch.from_numpy(images)) / temperatures).numpy()
    np.testing.assert_allclose(
        run_batched(open_runner(calibrated, "pytorch", device="cpu"), images), expected, atol=1e-6
    )
    out = tmp_path / "calibrated.onnx"
    assert main(["export", str(calibrated), "--data", str(data_root), "--out", str(out), "--parity-images", "8"]) == 0
    exported = read_model_info(out)
    assert exported.calibration == meta.calibration and exported.threshold_policy == "fpr:0.5"
    assert exported.thresholds == meta.thresholds
    np.testing.assert_allclose(run_batched(open_runner(out, "ort-cpu"), images), expected, atol=1e-5)
    assert "Div" in {node.op_type for node in onnx.load(str(out)).graph.node}  # folded into the graph
    capsys.readouterr()
    image = next((data_root / "facial_components" / "images" / "test").rglob("*.jpg"))
    assert main(["predict", "--model", str(out), str(image), "--faces", "off"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "calibrated probabilities" in printed and "policy fpr:0.5" in printed


def test_no_temperature_keeps_the_raw_probabilities(calibrated: Path, data_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(calibrated, run)
    assert main(["calibrate", str(run), "--data", str(data_root), "--no-temperature", "--cpu"]) == 0
    meta = read_checkpoint_meta(run)
    assert meta.calibration is None and meta.threshold_policy == "fpr:0.5"  # its own policy refitted


def test_calibrating_without_a_val_split_is_one_line_naming_the_splits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "seqdeepfake"
    for split in ("train", "test"):
        write_split(root, "components", split, SEQUENCES)
    run = write_run(tmp_path / "run", root)
    before = (run / "checkpoints" / "best.safetensors").read_bytes()
    assert main(["calibrate", str(run), "--data", str(root), "--cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no val split (it has: train, test)" in err
    assert (run / "checkpoints" / "best.safetensors").read_bytes() == before  # nothing written


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["evaluate", "{run}", "--policies", "recall:0.9"], "unknown threshold policy 'recall:0.9' (one of f1, fpr:X"),
        (["evaluate", "{run}", "--policies", "fpr:5"], "(one of f1, fpr:X or precision:X with 0 < X < 1)"),
        (["evaluate", "{run}", "--perturb", "sharpen:1"], "unknown perturbation 'sharpen' in 'sharpen:1' (one of jpeg"),
        (["evaluate", "{run}", "--perturb", "jpeg:150"], "jpeg severity 150 out of range in 'jpeg:150' (jpeg:QUALITY"),
        (["evaluate", "{run}", "--perturb", "resize:0"], "(resize:SCALE, a number 0<s<=1)"),
        (["calibrate", "{run}", "--thresholds", "precision:1"], "(one of f1, fpr:X or precision:X with 0 < X < 1)"),
        (["export", "{run}", "--thresholds", "f1:0.5"], "(one of f1, fpr:X or precision:X with 0 < X < 1)"),
    ],
)
def test_bad_policy_or_perturbation_is_one_line_naming_the_allowed_values(
    families: dict[str, tuple[Path, Path]],
    data_root: Path,
    command: list[str],
    expected: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = families["test_resnet"][0]
    argv = [part.format(run=run) for part in command] + ["--data", str(data_root)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err


def test_robustness_sweep_in_a_runtime_is_seeded_and_resize_1_is_clean(
    families: dict[str, tuple[Path, Path]], data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    onnx_path = families["test_resnet"][1]
    perturb = ["--perturb", "jpeg:50", "resize:1,0.5", "blur:1", "noise:0.05"]
    reports = []
    for out in (tmp_path / "a", tmp_path / "b"):
        argv = [
            "evaluate",
            str(onnx_path),
            "--data",
            str(data_root),
            "--runtime",
            "ort-cpu",
            *perturb,
            "--out",
            str(out),
        ]
        assert main(argv) == 0
        reports.append(json.loads((out / "evaluation.json").read_text()))
    printed = capsys.readouterr().out
    assert "robustness: test split, 8 images, ort-cpu fp32" in printed and "noise:0.05" in printed
    rows = reports[0]["robustness"]["rows"]
    assert [(r["perturbation"], r["severity"]) for r in rows] == [
        ("none", None),
        ("jpeg", 50),
        ("resize", 1),
        ("resize", 0.5),
        ("blur", 1),
        ("noise", 0.05),
    ]
    assert rows[2]["AP"] == rows[0]["AP"] and rows[2]["mAP_change"] == 0  # resize:1 leaves the image as it is
    assert rows[0]["mAP"] == pytest.approx(reports[0]["metrics"]["mAP"])  # the clean row is the evaluation's
    assert reports[0]["robustness"] == reports[1]["robustness"]  # the noise is seeded: the same on every run
    for name in ("evaluation.json", "pr_curves.png", "reliability.png", "robustness.png"):
        assert (tmp_path / "a" / name).stat().st_size > 0


def test_evaluate_reports_calibration_and_judges_policies_on_test(
    calibrated: Path, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["evaluate", str(calibrated), "--data", str(data_root), "--cpu", "--policies", "f1", "fpr:0.5"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert report["threshold_source"] == "policy fpr:0.5"
    assert set(report["calibration"]["per_label"]) == set(report["calibration_uncalibrated"]["per_label"])
    assert set(report["policies"]) == {"f1", "fpr:0.5"}
    fpr = report["policies"]["fpr:0.5"]["per_label"]
    assert all(row["originals"] == 2 for row in fpr.values())
    printed = " ".join(capsys.readouterr().out.split())
    assert "threshold policies" in printed and "fpr:0.5" in printed and "ECE" in printed


def test_serving_image_evaluates_an_export_under_perturbations(
    families: dict[str, tuple[Path, Path]], data_root: Path, tmp_path: Path
) -> None:
    """Without torch, matplotlib, ...: the same figures as with them, the JSON without the PNGs."""
    onnx_path = families["test_resnet"][1]
    argv = ["evaluate", str(onnx_path), "--data", str(data_root), "--perturb", "jpeg:50", "noise:0.05"]
    assert main([*argv, "--out", str(tmp_path / "full")]) == 0
    serving_argv = [*argv, "--out", str(tmp_path / "serving")]
    code = f"from deepfake_mlc.cli.main import main; raise SystemExit(main({serving_argv!r}))"
    result = run_without(missing_from_serving_image(), code)
    assert result.returncode == 0, result.stderr[-3000:]
    full, serving = (json.loads((tmp_path / d / "evaluation.json").read_text()) for d in ("full", "serving"))
    assert serving["robustness"] == full["robustness"] and serving["metrics"] == full["metrics"]
    assert {p.name for p in (tmp_path / "serving").iterdir()} == {"evaluation.json"}
