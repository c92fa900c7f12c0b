"""Export: ONNX of every model family against PyTorch, fp16, int8, parity failures, thresholds, TensorRT, MLflow."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from conftest import FAMILIES, LABELS, SEQUENCES, same_model, write_split
from deepfake_mlc.artifacts import engine_graph_path, export_name
from deepfake_mlc.cli import main
from deepfake_mlc.config import Config, DataConfig, dump_yaml
from deepfake_mlc.data import SUBSET_LABELS
from deepfake_mlc.export import write_export
from deepfake_mlc.export.pipeline import ExportRequest, run_export
from deepfake_mlc.metrics.parity import MAX_ABS_DIFF, Bound
from deepfake_mlc.models.loading import load_checkpoint
from deepfake_mlc.runtime import open_runner, read_model_info
from deepfake_mlc.runtime.info import read_onnx_info
from deepfake_mlc.runtime.tensorrt_runner import tensorrt_available
from deepfake_mlc.tracking.mlflow_tracker import RunTracker


@pytest.fixture(scope="session")
def tiny_run(families: dict[str, tuple[Path, Path]]) -> Path:
    return families["test_resnet"][0]


@pytest.fixture(scope="session")
def tiny_onnx(families: dict[str, tuple[Path, Path]]) -> Path:
    return families["test_resnet"][1]


def copy_instead_of_exporting(monkeypatch: pytest.MonkeyPatch, onnx_path: Path) -> None:
    """Exports copy ``onnx_path``, the session's fp32 export, instead of exporting again (covered above)."""
    monkeypatch.setattr(
        "deepfake_mlc.export.files.export_onnx", lambda checkpoint, out, *_: shutil.copy(onnx_path, out)
    )


@pytest.fixture
def reuse_export(tiny_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy_instead_of_exporting(monkeypatch, tiny_onnx)


def export_args(run: Path, *options: str) -> list[str]:
    return ["export", str(run), "--parity-images", "8", "--calibration-images", "8", *options]


@pytest.mark.parametrize("name", FAMILIES)
def test_onnx_of_every_family_gives_pytorch_probabilities(name: str, families: dict[str, tuple[Path, Path]]) -> None:
    run, path = families[name]
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert next(o.version for o in model.opset_import if o.domain == "") >= 18
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.onnx", "run"]  # no .onnx.data side file
    torch_model, _, _ = load_checkpoint(run)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):  # dynamic batch axis
        images = torch.randn(batch, 3, 32, 32)
        (probs,) = session.run(None, {"image": images.numpy()})
        with torch.no_grad():
            np.testing.assert_allclose(probs, torch.sigmoid(torch_model(images)).numpy(), atol=1e-4, rtol=0)
    exported, trained = read_model_info(path), read_model_info(run)  # labels, preprocessing, threshold, source, hash
    assert same_model(exported, trained) and exported.precision == "fp32"
    assert exported.opset >= 18 and exported.deepfake_mlc is not None


def test_fp16_export_command_passes_parity_and_stores_policy_thresholds(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fp16.onnx"
    assert main(export_args(tiny_run, "--precision", "fp16", "--out", str(out), "--thresholds", "fpr:0.2")) == 0
    printed = capsys.readouterr().out
    assert f"max |Δp| ≤ {MAX_ABS_DIFF['fp16']:g}: pass" in printed and "per-label thresholds (fpr:0.2)" in printed
    info = read_model_info(out)
    assert info.thresholds is not None and len(info.thresholds) == len(LABELS)
    assert info.threshold_policy == "fpr:0.2" and info.threshold_source() == "policy fpr:0.2"
    assert all(0.0 <= t <= 1.0 for t in info.thresholds)
    graph = onnx.load(str(out)).graph
    assert {t.type.tensor_type.elem_type for t in [*graph.input, *graph.output]} == {onnx.TensorProto.FLOAT}
    assert onnx.TensorProto.FLOAT16 in {t.data_type for t in graph.initializer}


@pytest.mark.usefixtures("reuse_export")
def test_int8_export_reports_its_map_change(tiny_run: Path, tmp_path: Path) -> None:
    request = ExportRequest(
        tiny_run, "onnx-int8", out=tmp_path / "int8.onnx", parity_images=8, calibration_images=8, max_map_drop=100
    )
    result = run_export(request)
    parity = result.parity
    assert parity.precision == "int8" and parity.bound == Bound("int8", 100) and parity.failure() is None
    assert parity.map_delta is not None and np.isfinite(parity.map_delta) and np.isfinite(parity.max_abs_diff)
    graph = onnx.load(str(result.path)).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in graph.node}
    # the image itself is not re-quantised: the first convolution reads it in float (faint traces survive)
    image_readers = [node for node in graph.node if graph.input[0].name in node.input]
    assert [node.op_type for node in image_readers] == ["Conv"]
    assert same_model(read_model_info(result.path), read_model_info(tiny_run))


def test_quantizing_the_image_conv_too_is_only_on_request(tiny_onnx: Path, tmp_path: Path) -> None:
    from deepfake_mlc.export.quantize import quantize_int8

    calibration = np.random.default_rng(0).normal(size=(4, 3, 32, 32)).astype(np.float32)
    for flag, reader in ((False, "Conv"), (True, "QuantizeLinear")):
        graph = onnx.load(
            str(quantize_int8(tiny_onnx, calibration, tmp_path / f"{flag}.onnx", quantize_image_conv=flag))
        ).graph
        assert [node.op_type for node in graph.node if graph.input[0].name in node.input] == [reader]


@pytest.mark.usefixtures("reuse_export")
def test_parity_failure_exits_non_zero_with_a_clear_message(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from deepfake_mlc.export import pipeline

    real = pipeline.reference_probabilities
    monkeypatch.setattr(pipeline, "reference_probabilities", lambda *args: real(*args) + 0.01)  # a perturbed model
    assert main(export_args(tiny_run, "--out", str(tmp_path / "m.onnx"))) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(
        "error: parity failed: ort-cpu (fp32) against pytorch (fp32) on 8 images: max |Δp| 1.00e-02 > 0.0001; "
    )
    assert main(export_args(tiny_run, "--out", str(tmp_path / "m.onnx"), "--tolerance", "0.02")) == 0


def test_int8_is_held_to_its_map_drop_not_to_a_tolerance(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(export_args(tiny_run, "--format", "onnx-int8", "--tolerance", "0.1")) == 2
    assert capsys.readouterr().err == "error: int8 is judged by its mAP drop: give --max-map-drop, not --tolerance\n"


def test_data_with_other_labels_is_a_one_line_error(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_split(tmp_path, "attributes", "test", SEQUENCES)
    config = tmp_path / "attributes.yaml"
    config.write_text(dump_yaml(Config(data=DataConfig(root=tmp_path, subset="attributes", num_workers=0))))
    assert main(export_args(tiny_run, "--data", str(config))) == 2
    assert capsys.readouterr().err == (
        f"error: the data's labels {list(SUBSET_LABELS['attributes'])} are not the model's {list(LABELS)}\n"
    )


def test_bad_format_and_precision_pairs_are_refused(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(export_args(tiny_run, "--format", "onnx-int8", "--precision", "fp16")) == 2
    assert capsys.readouterr().err == "error: --format onnx-int8 takes --precision int8\n"


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_an_engine_is_built_from_a_graph_of_its_precision_kept_beside_it(
    precision: str, tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What TensorRT is handed, on any machine: its build is replaced by a note of the arguments."""
    from deepfake_mlc.export import tensorrt

    built: list[tuple[Path, ...]] = []
    monkeypatch.setattr(tensorrt, "build_engine", lambda graph, path, cache: built.append((graph, path, cache)) or path)
    engine = tmp_path / export_name(tiny_onnx, "tensorrt", precision)
    calibration = (
        np.random.default_rng(0).normal(size=(4, 3, 32, 32)).astype(np.float32) if precision == "int8" else None
    )
    assert (
        write_export(tiny_onnx, engine, "tensorrt", precision, calibration)
        == engine
        == tmp_path / f"model-{precision}.engine"
    )
    graph = engine_graph_path(engine)
    assert built == [(graph, engine, tmp_path / "tensorrt.timing-cache")]
    assert read_onnx_info(graph).precision == precision
    nodes = onnx.load(str(graph)).graph.node
    assert ({"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in nodes}) is (precision == "int8")


NO_TENSORRT = not (torch.cuda.is_available() and tensorrt_available())


@pytest.mark.skipif(not NO_TENSORRT, reason="TensorRT is present: the GPU test covers it")
def test_tensorrt_without_a_gpu_says_so_in_one_line(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(export_args(tiny_run, "--format", "tensorrt")) == 2
    assert capsys.readouterr().err == (
        "error: TensorRT needs an NVIDIA GPU and the `tensorrt` package (pip install 'deepfake-mlc[gpu]')\n"
    )


@pytest.mark.gpu
@pytest.mark.skipif(NO_TENSORRT, reason="needs an NVIDIA GPU and the tensorrt package")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tensorrt_engine_matches_pytorch(precision: str, tiny_run: Path, tmp_path: Path) -> None:
    engine = tmp_path / f"model-{precision}.engine"
    request = ExportRequest(
        tiny_run, "tensorrt", precision, engine, parity_images=8, calibration_images=8, max_map_drop=100
    )
    result = run_export(request)
    assert result.parity.failure() is None and result.parity.runtime == "tensorrt"
    graph = engine_graph_path(engine)  # what the engine was built from, kept beside it
    assert result.files == (engine, tmp_path / f"{engine.name}.json", graph) and graph.is_file()
    assert same_model(read_model_info(graph), read_model_info(engine), read_model_info(tiny_run))
    assert (tmp_path / "tensorrt.timing-cache").stat().st_size > 0
    runner = open_runner(engine, "tensorrt")
    assert runner.precision == precision and runner(np.zeros((3, 3, 32, 32), np.float32)).shape == (3, len(LABELS))


def test_register_logs_the_onnx_model_to_the_training_run(tiny_run: Path, tiny_onnx: Path, tmp_path: Path) -> None:
    import mlflow

    from deepfake_mlc.export.mlflow_registry import register_onnx

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    checkpoint = run / "checkpoints" / "best.safetensors"
    _, cfg, meta = load_checkpoint(checkpoint)
    with RunTracker(cfg.tracking, tmp_path) as tracker:  # the store training used: beside the run folder
        training_run = tracker.start(run.name, {}, {})
    environment = dict(os.environ)
    registered = register_onnx(tiny_onnx, "deepfake-detector", checkpoint, cfg, meta)
    assert dict(os.environ) == environment, "later runs of the process must not be sent to this store"
    assert registered.startswith(f"deepfake-detector version 1 (run {training_run}")
    version = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_model_version("deepfake-detector", "1")
    assert version.run_id == training_run and version.tags["sha256"] == read_model_info(tiny_onnx).sha256
