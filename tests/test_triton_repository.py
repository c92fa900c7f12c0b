"""Triton model repositories: ``export --format triton`` and the configs Triton's own schema must accept.

Each ``config.pbtxt`` is parsed with Triton's ``ModelConfig`` (tritonclient's protobuf), not with our reader,
so a field Triton does not know, or a string escaped wrongly, fails here rather than when a server loads it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from conftest import LABELS
from deepfake_mlc.artifacts import ModelInfo
from deepfake_mlc.cli import main
from deepfake_mlc.errors import CheckpointError, InputNotFoundError, OutputExistsError
from deepfake_mlc.runtime import read_model_info
from deepfake_mlc.runtime.tensorrt_runner import tensorrt_available
from deepfake_mlc.serving.repository import TritonModel, config_text, read_repository, write_repository

Config = model_config_pb2.ModelConfig


@pytest.fixture(scope="module")
def tiny_onnx(families: dict[str, tuple[Path, Path]]) -> Path:
    return families["test_resnet"][1]


@pytest.fixture
def run(families: dict[str, tuple[Path, Path]], tmp_path: Path) -> Path:
    """A copy of the tiny run: the default repository is written inside it."""
    return Path(shutil.copytree(families["test_resnet"][0], tmp_path / "run"))


@pytest.fixture
def info(tiny_onnx: Path) -> ModelInfo:
    return read_model_info(tiny_onnx)


def export_args(run: Path, data_root: Path, *options: str) -> list[str]:
    return ["export", str(run), "--format", "triton", "--data", str(data_root), "--parity-images", "8", *options]


def parse(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, Config())


def test_export_writes_a_repository_triton_accepts_with_the_exported_model(
    run: Path, data_root: Path, tiny_onnx: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(export_args(run, data_root)) == 0
    assert "Triton model" in capsys.readouterr().out
    folder = run / "triton" / "deepfake-mlc"
    written = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
    assert written == ["1", "1/model.onnx", "config.pbtxt", "labels.txt"]
    model_file = folder / "1" / "model.onnx"
    config = parse((folder / "config.pbtxt").read_text())
    assert (config.name, config.platform, config.max_batch_size) == ("deepfake-mlc", "onnxruntime_onnx", 32)
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    (image,), (probabilities,) = config.input, config.output
    assert [image.name, probabilities.name] == [session.get_inputs()[0].name, session.get_outputs()[0].name]
    assert (image.data_type, list(image.dims), image.optional) == (model_config_pb2.TYPE_FP32, [3, 32, 32], False)
    assert (probabilities.data_type, list(probabilities.dims)) == (model_config_pb2.TYPE_FP32, [len(LABELS)])
    assert probabilities.label_filename == "labels.txt"
    assert (folder / "labels.txt").read_text().splitlines() == list(LABELS)
    batching = config.dynamic_batching
    assert list(batching.preferred_batch_size) == [4, 8, 16, 32] and batching.max_queue_delay_microseconds == 100
    assert [(group.kind, group.count) for group in config.instance_group] == [
        (model_config_pb2.ModelInstanceGroup.KIND_CPU, 1)
    ]
    stored = ModelInfo.model_validate_json(config.parameters["deepfake_mlc"].string_value)
    assert stored == read_model_info(model_file)
    assert config.parameters["labels"].string_value == ",".join(LABELS)
    images = torch.randn(3, 3, 32, 32).numpy()
    reference = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        session.run(None, {"image": images})[0], reference.run(None, {"image": images})[0], atol=1e-6, rtol=0
    )
    assert read_repository(run / "triton") == (model_file, stored, "deepfake-mlc")


def test_python_and_tensorrt_configs_parse_with_tritons_schema(info: ModelInfo) -> None:
    python = parse(
        config_text(TritonModel(backend="python", info=info, instance_kind="cpu", parameters={"runtime": "ort-cpu"}))
    )
    assert python.backend == "python" and not python.platform
    assert [(i.name, i.data_type, list(i.dims), i.optional) for i in python.input] == [
        ("image", model_config_pb2.TYPE_FP32, [3, 32, 32], True),
        ("image_bytes", model_config_pb2.TYPE_STRING, [1], True),
    ]
    assert [(o.name, o.data_type, list(o.dims)) for o in python.output] == [
        ("probabilities", model_config_pb2.TYPE_FP32, [len(LABELS)]),
        ("faces", model_config_pb2.TYPE_INT32, [1]),
    ]
    assert python.parameters["runtime"].string_value == "ort-cpu"
    engine = TritonModel(
        name="detector",
        backend="tensorrt",
        info=info,
        max_batch_size=24,
        queue_delay_us=0,
        instance_kind="gpu",
        instance_count=2,
    )
    tensorrt = parse(config_text(engine))
    assert (tensorrt.name, tensorrt.platform, tensorrt.max_batch_size) == ("detector", "tensorrt_plan", 24)
    assert list(tensorrt.dynamic_batching.preferred_batch_size) == [4, 8, 16, 24]
    assert [(g.kind, g.count) for g in tensorrt.instance_group] == [(model_config_pb2.ModelInstanceGroup.KIND_GPU, 2)]
    assert TritonModel(backend="tensorrt", info=info, max_batch_size=1, instance_kind="gpu").preferred_batch_sizes == (
        1,
    )


def test_strings_with_quotes_backslashes_and_newlines_survive_the_config(info: ModelInfo, tmp_path: Path) -> None:
    odd = info.model_copy(update={"source": 'C:\\runs\\"best" run\n\tété.safetensors', "threshold_policy": "f1"})
    model = TritonModel(backend="onnxruntime", info=odd, instance_kind="cpu", parameters={"note": 'a "b" \\ c'})
    config = parse(config_text(model))
    assert ModelInfo.model_validate_json(config.parameters["deepfake_mlc"].string_value) == odd
    assert config.parameters["note"].string_value == 'a "b" \\ c'
    folder = write_repository(tmp_path, model, {"model.onnx": b"not read"})
    assert read_repository(tmp_path) == (folder / "1" / "model.onnx", odd, "deepfake-mlc")


def test_an_existing_model_is_kept_unless_overwrite(
    run: Path,
    data_root: Path,
    tiny_onnx: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(  # the session's export stands in for exporting again (the test above exports)
        "deepfake_mlc.export.files.export_onnx", lambda checkpoint, out, *_: shutil.copy(tiny_onnx, out)
    )
    repo = tmp_path / "repo"
    folder = repo / "deepfake-mlc"
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.onnx").write_bytes(b"an older model")
    assert main(export_args(run, data_root, "--out", str(repo))) == 2
    assert capsys.readouterr().err == f"error: {folder} exists: give --overwrite to replace it\n"
    assert [p.name for p in folder.rglob("*")] == ["1", "model.onnx"]
    assert (folder / "1" / "model.onnx").read_bytes() == b"an older model"
    assert main(export_args(run, data_root, "--out", str(repo), "--overwrite", "--max-batch", "8")) == 0
    assert (folder / "1" / "model.onnx").read_bytes() == tiny_onnx.read_bytes()
    assert parse((folder / "config.pbtxt").read_text()).max_batch_size == 8
    assert sorted(p.name for p in repo.iterdir()) == ["deepfake-mlc"]  # nothing staged is left behind
    with pytest.raises(OutputExistsError, match="--overwrite"):
        write_repository(
            repo, TritonModel(backend="onnxruntime", info=read_model_info(tiny_onnx), instance_kind="cpu"), {}
        )


def test_reading_a_repository_that_is_not_one_of_ours_says_why_in_one_line(info: ModelInfo, tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match=r"^Triton model repository not found: "):
        read_repository(tmp_path / "missing")
    with pytest.raises(CheckpointError) as empty:
        read_repository(tmp_path)
    assert str(empty.value) == f"{tmp_path}: not a Triton model repository (no <model>/config.pbtxt in it)"
    for name in ("b", "a"):
        write_repository(
            tmp_path, TritonModel(name=name, backend="onnxruntime", info=info, instance_kind="cpu"), {"model.onnx": b""}
        )
    with pytest.raises(CheckpointError) as two:
        read_repository(tmp_path)
    assert str(two.value) == f"{tmp_path}: 2 Triton models (a, b): choose one with --name"
    assert read_repository(tmp_path, "b")[2] == "b"
    with pytest.raises(CheckpointError, match=r"no Triton model 'c' \(it has a, b\)$"):
        read_repository(tmp_path, "c")


NO_TENSORRT = not (torch.cuda.is_available() and tensorrt_available())


@pytest.mark.skipif(not NO_TENSORRT, reason="TensorRT is present")
def test_tensorrt_repository_without_a_gpu_says_so_in_one_line(
    run: Path, data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(export_args(run, data_root, "--backend", "tensorrt")) == 2
    assert capsys.readouterr().err == (
        "error: TensorRT needs an NVIDIA GPU and the `tensorrt` package (pip install 'deepfake-mlc[gpu]')\n"
    )
    assert not (run / "triton").exists()


def test_triton_options_need_the_triton_format(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(run), "--backend", "onnxruntime", "--overwrite"]) == 2
    assert capsys.readouterr().err == "error: --backend, --overwrite: only with --format triton\n"
