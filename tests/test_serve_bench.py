"""serve-bench: timing and parity figures against known answers, the report's fields, the release gate."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import deepfake_mlc.runtime
from conftest import LABELS, family_files, run_without, write_run
from deepfake_mlc.artifacts import ModelInfo, Preprocessing
from deepfake_mlc.bench.accuracy import accuracy_columns
from deepfake_mlc.bench.serve_bench import BenchSettings, serve_bench
from deepfake_mlc.bench.tables import markdown, summary_table, write_report
from deepfake_mlc.bench.timing import LatencyStats, TimingPlan, speed_summary, time_trial
from deepfake_mlc.cli import main
from deepfake_mlc.errors import DatasetError, RuntimeUnavailable
from deepfake_mlc.export.pipeline import ExportRequest, run_export
from deepfake_mlc.metrics.parity import MAX_ABS_DIFF, check_parity
from test_docker import missing_from_serving_image
from test_export import copy_instead_of_exporting

REPO = Path(__file__).resolve().parents[1]


class FakeClock:
    """A clock that only moves when the timed call runs, by the next of the given durations."""

    def __init__(self, durations: list[float]) -> None:
        self.now, self._durations = 0.0, iter(durations)

    def __call__(self) -> float:
        return self.now

    def call(self) -> None:
        self.now += next(self._durations)


def test_trial_times_only_the_calls_after_warm_up() -> None:
    timed = [0.010, 0.030, 0.020, 0.050]
    clock = FakeClock([9.0, 9.0, *timed])
    samples = time_trial(clock.call, TimingPlan(warmup=2, iters=4), clock)
    assert samples == pytest.approx(timed)


def test_min_time_counts_time_inside_the_calls() -> None:
    clock = FakeClock([0.1] * 10)
    assert len(time_trial(clock.call, TimingPlan(warmup=0, iters=1, min_time=0.35), clock)) == 4


def test_percentiles_and_throughput_match_numpy() -> None:
    rng = np.random.default_rng(0)
    trials = tuple(tuple(rng.uniform(0.01, 0.05, 37)) for _ in range(3))
    summary = LatencyStats(8, trials).summary()
    pooled = np.concatenate(trials)
    for q in (50, 90, 99):
        assert summary[f"p{q}_ms"] == pytest.approx(1e3 * np.percentile(pooled, q))
    assert summary["samples"] == 111 and summary["trials"] == 3
    assert summary["trial_p50_ms"] == pytest.approx([1e3 * np.median(t) for t in trials])
    assert summary["images_per_s"] == pytest.approx(8 * 111 / pooled.sum())


def test_best_throughput_is_the_batch_size_serving_most_images() -> None:
    speed = speed_summary([LatencyStats(1, ((0.01,),)), LatencyStats(8, ((0.04,),)), LatencyStats(32, ((0.4,),))])
    assert speed["best_batch_size"] == 8 and speed["best_images_per_s"] == pytest.approx(200.0)


def test_a_rows_accuracy_columns_are_its_metrics_and_the_gates_verdict() -> None:
    targets = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    reference = np.array([[0.9, 0.1], [0.2, 0.8], [0.8, 0.9], [0.1, 0.2]])  # perfect ranking: mAP 100
    swapped = reference.copy()
    swapped[[0, 3], 0] = swapped[[3, 0], 0]  # label 0: a negative now ranks first
    names = {"runtime": "ort-cpu-int8", "precision": "int8", "reference_runtime": "pytorch"}
    parity = check_parity(swapped, reference, 0.5, **names, reference_precision="fp32", targets=targets)
    row = accuracy_columns(parity, swapped, targets, ("a", "b"), 0.5)
    label0_ap = (1 / 2 + 2 / 4) / 2  # scores 0.9-, 0.8+, 0.2-, 0.1+: positives at ranks 2 and 4
    assert row["map_delta"] == pytest.approx(100 * (label0_ap + 1) / 2 - 100) == row["metrics"]["mAP"] - 100
    assert row["metrics"]["AP/b"] == pytest.approx(100.0) and row["max_abs_diff"] == pytest.approx(0.8)
    assert row["gate"] == "mAP drop ≤ 1 points" and row["failures"] == [parity.failure()]
    assert row["failures"][0].startswith("ort-cpu-int8 (int8) against pytorch (fp32) on 4 images: mAP drop 25.00")


# --- the whole command with fake runners, data and exports (known errors, fast) ---

INFO = ModelInfo(
    label_names=LABELS,
    preprocessing=Preprocessing(image_size=4, interpolation="bilinear", mean=(0.5,) * 3, std=(0.25,) * 3),
    threshold=0.5,
    source="model.safetensors",
)


@dataclass
class FakeRunner:
    """Probabilities from the first pixels, shifted by ``error`` (negative: inverted, a broken runtime)."""

    name: str
    precision: str = "fp32"
    error: float = 0.0
    device: str = "cpu"
    info: ModelInfo = INFO

    def __call__(self, images: np.ndarray) -> np.ndarray:
        probs = 1 / (1 + np.exp(-images.reshape(len(images), -1)[:, : len(LABELS)]))
        return (probs + self.error if self.error >= 0 else 1 - probs).astype(np.float32)

    def details(self) -> dict[str, Any]:
        return {"threads": 1, "providers": ["FakeExecutionProvider"]}


def install_fakes(monkeypatch: pytest.MonkeyPatch, int8_error: float, data_labels: tuple[str, ...] = LABELS) -> None:
    rng = np.random.default_rng(0)
    images = rng.normal(size=(12, 3, 4, 4)).astype(np.float32)
    targets = (images.reshape(12, -1)[:, : len(LABELS)] + rng.normal(0, 0.5, (12, 5)) > 0).astype(np.float32)

    def eval_arrays(source: Path, info: ModelInfo, split: str = "test", limit: int | None = None, subset: Any = None):
        if data_labels != info.label_names:
            raise DatasetError(f"the data's labels {list(data_labels)} are not the model's {list(info.label_names)}")
        return images[:limit], targets[:limit]

    def open_runner(path: Path, runtime: str, *, threads: int | None = None) -> FakeRunner:
        assert path.is_file(), f"{runtime} opened {path} before it was exported"
        if runtime == "ort-cpu" and path.name == "model-int8.onnx":
            return FakeRunner("ort-cpu", "int8", int8_error)
        if runtime in ("pytorch", "ort-cpu"):
            return FakeRunner(runtime)
        raise RuntimeUnavailable(f"{runtime} needs a GPU")

    def no_tensorrt() -> None:
        raise RuntimeUnavailable("TensorRT is not installed")

    for name, fake in [
        ("deepfake_mlc.runtime.read_model_info", lambda path: INFO),
        ("deepfake_mlc.runtime.eval_arrays", eval_arrays),
        ("deepfake_mlc.runtime.open_runner", open_runner),
        ("deepfake_mlc.runtime.tensorrt_runner.import_tensorrt", no_tensorrt),
        ("deepfake_mlc.export.files.export_onnx", lambda checkpoint, out, *args: out.write_bytes(b"onnx")),
        ("deepfake_mlc.export.quantize.quantize_int8", lambda onnx, calibration, out, *args: out.write_bytes(b"8")),
    ]:
        monkeypatch.setattr(name, fake)


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"weights")
    return path


FAST = ["--batch-sizes", "1", "4", "--warmup", "1", "--iters", "3", "--trials", "2", "--no-progress"]


def run_cli(checkpoint: Path, out: Path, *extra: str) -> int:
    return main(["serve-bench", "--model", str(checkpoint), "--data", "fake", "--out", str(out), *FAST, *extra])


def test_every_runtime_gets_a_row_and_the_json_every_field(
    monkeypatch: pytest.MonkeyPatch, checkpoint: Path, tmp_path: Path
) -> None:
    install_fakes(monkeypatch, int8_error=0.003)
    assert run_cli(checkpoint, tmp_path / "out") == 0
    result = json.loads((tmp_path / "out" / "serve_bench.json").read_text())
    rows = {row["name"]: row for row in result["rows"]}
    assert list(rows) == [
        "pytorch",
        "pytorch-compile",
        "ort-cpu",
        "ort-cpu-int8",
        "ort-cuda",
        "ort-tensorrt",
        "tensorrt",
    ]
    assert rows["tensorrt"] == {
        "name": "tensorrt",
        "runtime": "tensorrt",
        "status": "skipped",
        "reason": "TensorRT is not installed",
    }
    assert rows["ort-cuda"]["reason"] == "ort-cuda needs a GPU" and rows["pytorch-compile"]["status"] == "skipped"
    int8 = rows["ort-cpu-int8"]
    assert set(int8) >= {"name", "runtime", "status", "reference", "precision", "device", "file", "size_mb"}
    assert set(int8) >= {"metrics", "map_delta", "max_abs_diff", "identical_label_sets", "latency", "best_batch_size"}
    assert set(int8) >= {"best_images_per_s", "details", "failures"} and set(int8["metrics"]) >= {
        "mAP",
        "CP",
        "CR",
        "CF1",
        "OP",
        "OR",
        "OF1",
    }
    assert int8["precision"] == "int8" and int8["max_abs_diff"] == pytest.approx(0.003, rel=1e-3)
    assert int8["size_mb"] == 1e-6 and int8["file"] == str(tmp_path / "out" / "model-int8.onnx")
    assert rows["ort-cpu"]["file"] == str(tmp_path / "out" / "model-fp32.onnx")
    assert int8["gate"] == "mAP drop ≤ 1 points" and rows["ort-cpu"]["gate"] == "max |Δp| ≤ 0.0001"
    assert [s["batch_size"] for s in int8["latency"]] == [1, 4]
    assert {s["samples"] for s in int8["latency"]} == {6} and {s["trials"] for s in int8["latency"]} == {2}
    assert set(int8["latency"][0]) >= {"p50_ms", "p90_ms", "p99_ms", "images_per_s", "trial_p50_ms"}
    assert rows["pytorch"]["reference"] and rows["pytorch"]["map_delta"] == 0 == rows["pytorch"]["max_abs_diff"]
    assert result["reference"] == {"name": "pytorch", "precision": "fp32", "device": "cpu"} and result["passed"]
    machine = result["machine"]
    assert {"cpu", "simd", "usable_cores", "torch_threads", "versions", "gpu"} <= set(machine)
    assert {"load_average_before", "load_average_after"} <= set(machine) and "torch" in machine["versions"]
    assert result["data"]["images"] == 12 and result["settings"]["trials"] == 2
    assert (tmp_path / "out" / "serve_bench.png").stat().st_size > 10_000


def test_markdown_has_the_machine_header_and_one_row_per_runtime(
    monkeypatch: pytest.MonkeyPatch, checkpoint: Path, tmp_path: Path
) -> None:
    install_fakes(monkeypatch, int8_error=0.0)
    settings = BenchSettings(
        runtimes=("pytorch", "ort-cpu-int8", "tensorrt"), batch_sizes=(1, 2), timing=TimingPlan(0, 2)
    )
    result = serve_bench(checkpoint, Path("fake"), tmp_path, settings, show_progress=False)
    text = markdown(result)
    for needle in ("- machine:", "- threads:", "- load average", "- versions:", "- timing:", "- reference: pytorch"):
        assert needle in text
    assert "| pytorch (ref) | fp32 | cpu | ok |" in text
    assert "| ort-cpu-int8 | int8 | cpu | ok |" in text and "| tensorrt |  |  | skipped |" in text
    assert "- skipped `tensorrt`: TensorRT is not installed" in text
    assert 'providers ["FakeExecutionProvider"]' in text
    header, rows = summary_table(result)
    assert all(len(row) == len(header) for row in rows) and "b1 p50/p90/p99 ms" in header
    assert [p.name for p in write_report(result, tmp_path)] == ["serve_bench.md", "serve_bench.json", "serve_bench.png"]


def test_a_tolerance_failure_exits_1_naming_the_runtime(
    monkeypatch: pytest.MonkeyPatch, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install_fakes(monkeypatch, int8_error=-1)
    assert run_cli(checkpoint, tmp_path, "--runtimes", "pytorch", "ort-cpu-int8") == 1
    assert "failed: ort-cpu-int8 (int8) against pytorch (fp32) on 12 images: mAP drop" in capsys.readouterr().err
    assert not json.loads((tmp_path / "serve_bench.json").read_text())["passed"]


def test_a_runtime_that_breaks_is_a_failed_row_and_the_others_still_run(
    monkeypatch: pytest.MonkeyPatch, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install_fakes(monkeypatch, 0.0)
    opened = deepfake_mlc.runtime.open_runner

    def broken_ort(path: Path, runtime: str, *, threads: int | None = None) -> FakeRunner:
        if runtime == "ort-cpu":
            raise RuntimeError("[ONNXRuntimeError] : 10 : INVALID_GRAPH\nsecond line")
        return opened(path, runtime, threads=threads)

    monkeypatch.setattr("deepfake_mlc.runtime.open_runner", broken_ort)
    assert run_cli(checkpoint, tmp_path, "--runtimes", "pytorch", "ort-cpu") == 1
    result = json.loads((tmp_path / "serve_bench.json").read_text())
    assert [r["status"] for r in result["rows"]] == ["ok", "failed"]
    assert result["failures"] == ["ort-cpu: failed: RuntimeError: [ONNXRuntimeError] : 10 : INVALID_GRAPH"]
    assert "| ort-cpu |  |  | failed |" in (tmp_path / "serve_bench.md").read_text()
    assert "INVALID_GRAPH" in capsys.readouterr().err


def test_labels_that_do_not_match_the_data_are_one_line_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install_fakes(monkeypatch, 0.0, data_labels=("a", "b"))
    assert run_cli(checkpoint, tmp_path) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the data's labels ['a', 'b'] are not the model's") and err.count("\n") == 1


def test_no_export_skips_what_was_not_exported_before(
    monkeypatch: pytest.MonkeyPatch, checkpoint: Path, tmp_path: Path
) -> None:
    install_fakes(monkeypatch, 0.0)
    assert run_cli(checkpoint, tmp_path, "--runtimes", "pytorch", "ort-cpu", "--no-export") == 0
    ort = json.loads((tmp_path / "serve_bench.json").read_text())["rows"][1]
    assert ort["status"] == "skipped" and "--no-export" in ort["reason"]


@dataclass
class Shifted:
    """A real runner that claims ``precision`` and shifts its probabilities by ``shift``."""

    runner: Any
    precision: str
    shift: float

    def __getattr__(self, name: str) -> Any:
        return getattr(self.runner, name)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.runner(images) + np.float32(self.shift)


@pytest.mark.parametrize("factor", [0.5, 2.0])
@pytest.mark.parametrize("precision", list(MAX_ABS_DIFF))
def test_export_and_serve_bench_hold_a_precision_to_the_same_bound(
    precision: str,
    factor: float,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
    data_root: Path,
    checkpoint: Path,
    tmp_path: Path,
) -> None:
    """A runtime of ``precision`` off by half / twice its bound: both commands pass / fail it, by the same bound.

    TF32 among them: export held it to 1e-3 and serve-bench to 1e-2, so one ort-cuda model passed one, failed the other.
    """
    from deepfake_mlc.export import pipeline

    run, onnx_path = family_files(tmp_path_factory, data_root, "test_resnet")
    copy_instead_of_exporting(monkeypatch, onnx_path)
    shift = factor * MAX_ABS_DIFF[precision]
    real_open = pipeline.open_runner
    monkeypatch.setattr(pipeline, "open_runner", lambda *args: Shifted(real_open(*args), precision, shift))
    exported = run_export(ExportRequest(run, out=tmp_path / "m.onnx", parity_images=8)).parity

    install_fakes(monkeypatch, 0.0)
    fakes = deepfake_mlc.runtime.open_runner

    def shifted_cuda(path: Path, runtime: str, *, threads: int | None = None) -> Any:
        if runtime == "ort-cuda":
            return FakeRunner(runtime, precision, shift)
        return fakes(path, runtime, threads=threads)

    monkeypatch.setattr("deepfake_mlc.runtime.open_runner", shifted_cuda)
    settings = BenchSettings(runtimes=("pytorch", "ort-cuda"), batch_sizes=(1,), timing=TimingPlan(0, 1, trials=1))
    benched = serve_bench(checkpoint, Path("fake"), tmp_path / "bench", settings, show_progress=False)["rows"][1]

    assert exported.precision == benched["precision"] == precision
    assert str(exported.bound) == benched["gate"] == f"max |Δp| ≤ {MAX_ABS_DIFF[precision]:g}"
    assert (exported.failure() is None) is (benched["failures"] == []) is (factor < 1)


def test_export_and_serve_bench_name_their_files_alike(
    tmp_path_factory: pytest.TempPathFactory, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What export writes beside a checkpoint, serve-bench writes into --out under the same names (and reuses)."""
    run, onnx_path = family_files(tmp_path_factory, data_root, "test_resnet")
    run = shutil.copytree(run, tmp_path / "run")
    copy_instead_of_exporting(monkeypatch, onnx_path)
    options = ["--calibration-images", "8", "--max-map-drop", "100"]
    for format in ("onnx", "onnx-int8"):
        assert main(["export", str(run), "--format", format, "--parity-images", "8", *options]) == 0
    exported = {p.name for p in (run / "checkpoints").glob("*.onnx")}
    assert exported == {"best-fp32.onnx", "best-int8.onnx"}
    out = tmp_path / "bench"
    argv = ["serve-bench", "--model", str(run), "--data", str(data_root), "--runtimes", "ort-cpu", "ort-cpu-int8"]
    assert main([*argv, *FAST, *options, "--out", str(out)]) == 0
    assert {p.name for p in out.glob("*.onnx")} == exported
    shutil.rmtree(out)
    shutil.copytree(run / "checkpoints", out, ignore=shutil.ignore_patterns("best.*"))  # export's files, in --out
    assert main([*argv, *FAST, *options, "--out", str(out), "--no-export"]) == 0
    rows = json.loads((out / "serve_bench.json").read_text())["rows"]
    assert [row["status"] for row in rows] == ["ok", "ok"] and {Path(row["file"]).name for row in rows} == exported


# --- the real runtimes on a tiny checkpoint ---


@pytest.fixture
def tiny_checkpoint(tmp_path: Path, seq_root: Path) -> Path:
    """A randomly initialised test_resnet at 32 px: parity, not accuracy, is what is checked."""
    return write_run(tmp_path / "run", seq_root) / "checkpoints" / "best.safetensors"


def test_end_to_end_on_cpu_exports_and_compares_every_runtime(
    tiny_checkpoint: Path, seq_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bench"
    argv = ["serve-bench", "--model", str(tiny_checkpoint), "--data", str(seq_root), "--out", str(out), *FAST]
    runtimes = [
        "--runtimes",
        "pytorch",
        "ort-cpu",
        "ort-cpu-int8",
        "--calibration-images",
        "8",
        "--max-map-drop",
        "100",
    ]
    assert main([*argv, *runtimes]) == 0
    assert {p.name for p in out.iterdir()} >= {"best-fp32.onnx", "best-int8.onnx", "serve_bench.md", "serve_bench.png"}
    result = json.loads((out / "serve_bench.json").read_text())
    rows = {row["name"]: row for row in result["rows"]}
    assert [rows[n]["status"] for n in rows] == ["ok", "ok", "ok"] and result["data"]["images"] == 8
    assert rows["ort-cpu"]["max_abs_diff"] < 1e-5 and rows["ort-cpu"]["identical_label_sets"] == 100.0
    assert rows["ort-cpu-int8"]["precision"] == "int8" and rows["ort-cpu-int8"]["size_mb"] < rows["ort-cpu"]["size_mb"]
    assert rows["pytorch"]["details"]["threads"] >= 1 and rows["ort-cpu"]["details"]["providers"] == [
        "CPUExecutionProvider"
    ]


def test_data_with_other_labels_is_refused_before_anything_runs(
    tiny_checkpoint: Path, seq_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench"
    argv = ["serve-bench", "--model", str(tiny_checkpoint), "--data", str(seq_root), "--out", str(out)]
    assert main([*argv, "--subset", "attributes"]) == 2  # a components model on the attributes subset
    assert capsys.readouterr().err == (
        "error: the data's labels ['Bangs', 'Eyeglasses', 'Beard', 'Smiling', 'Young'] "
        "are not the model's ['nose', 'eye', 'eyebrow', 'lip', 'hair']\n"
    )
    assert not out.exists()


def test_serving_image_benchmarks_an_onnx_model_without_the_training_dependencies(
    tmp_path_factory: pytest.TempPathFactory, data_root: Path, tmp_path: Path
) -> None:
    """With torch, onnx, matplotlib, ... not importable: the ort-cpu row as with them; no int8 export
    (onnxruntime's quantiser needs onnx) unless --no-export finds one made where it could be; no figure."""
    _, onnx_path = family_files(tmp_path_factory, data_root, "test_resnet")
    argv = ["serve-bench", "--model", str(onnx_path), "--data", str(data_root), *FAST, "--threads", "1"]
    argv += ["--runtimes", "ort-cpu", "ort-cpu-int8", "--calibration-images", "8", "--max-map-drop", "100"]
    full, serving = tmp_path / "full", tmp_path / "serving"
    assert main([*argv, "--out", str(full)]) == 0

    def run_serving(*extra: str) -> dict[str, dict[str, Any]]:
        code = f"from deepfake_mlc.cli.main import main; raise SystemExit(main({[*argv, *extra]!r}))"
        result = run_without(missing_from_serving_image(), code)
        assert result.returncode == 0, result.stderr[-3000:]
        out = Path(extra[extra.index("--out") + 1])
        return {row["name"]: row for row in json.loads((out / "serve_bench.json").read_text())["rows"]}

    expected = {row["name"]: row for row in json.loads((full / "serve_bench.json").read_text())["rows"]}
    same = ("status", "precision", "device", "size_mb", "metrics", "map_delta", "max_abs_diff", "identical_label_sets")
    rows = run_serving("--out", str(serving))
    assert {k: rows["ort-cpu"][k] for k in same} == {k: expected["ort-cpu"][k] for k in same}
    reason = rows["ort-cpu-int8"]["reason"]  # no exporter here (torch, onnx): made where they are, then reused
    assert rows["ort-cpu-int8"]["status"] == "skipped" and "model-int8.onnx needs" in reason and "--no-export" in reason
    assert {p.name for p in serving.iterdir()} == {"serve_bench.md", "serve_bench.json"}  # no matplotlib: no figure
    rows = run_serving("--out", str(full), "--no-export")  # the int8 model the full run exported
    for name in ("ort-cpu", "ort-cpu-int8"):
        assert {k: rows[name][k] for k in same} == {k: expected[name][k] for k in same}


def test_a_gpu_machine_says_whether_pytorch_runs_fp32_as_tf32(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from deepfake_mlc.bench import machine
    from deepfake_mlc.runtime import cuda

    monkeypatch.setattr(cuda, "device_count", lambda: 1)
    monkeypatch.setattr(cuda, "device_name", lambda index=0: "NVIDIA H200")
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    saved = matmul.fp32_precision, conv.fp32_precision  # global switches, not plain attributes
    try:
        matmul.fp32_precision, conv.fp32_precision = "ieee", "tf32"
        assert machine.gpu_info() == {"name": "NVIDIA H200", "tf32_matmul": False, "tf32_cudnn": True}
    finally:
        matmul.fp32_precision, conv.fp32_precision = saved
