"""serve-bench --server against a fake KServe v2 server (HTTP and gRPC, on 127.0.0.1): known answers, counts, report.

The fake answers what the in-process fake runner computes (exact parity), fails every k-th request on demand,
keeps Triton's cumulative statistics (1 ms queue and 2.5 ms compute per request) and guards them by a token.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import LABELS, run_without
from deepfake_mlc.bench.load import (
    GRPC_HEADER_PREFIX,
    IMAGES,
    MODEL,
    TENSORS,
    TOKEN_HEADER,
    LoadSettings,
    client_url,
    counters,
    load_server,
    open_server,
    payloads,
    run_level,
    server_figures,
)
from deepfake_mlc.cli import main
from deepfake_mlc.errors import ConfigError
from deepfake_mlc.metrics.parity import Tolerances
from test_serve_bench import FAST, INFO, install_fakes

PHASES = {"queue": 1_000_000, "compute_input": 250_000, "compute_infer": 2_000_000, "compute_output": 250_000}


@dataclass
class FakeModel:
    """The served model: FakeRunner's probabilities (plus ``shift``), Triton's metadata and statistics."""

    size: int = INFO.preprocessing.image_size
    image_bytes: bool = True
    fail_every: int = 0  # the k-th, 2k-th, ... request the server receives is answered 400
    shift: float = 0.0
    delay: float = 0.0  # seconds per request
    token: str | None = None  # required on the statistics endpoint
    received: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    stats: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def metadata(self) -> dict[str, Any]:
        inputs = [{"name": "image", "datatype": "FP32", "shape": [-1, 3, self.size, self.size]}]
        inputs += [{"name": "image_bytes", "datatype": "BYTES", "shape": [-1, 1]}] if self.image_bytes else []
        outputs = [{"name": "probabilities", "datatype": "FP32", "shape": [-1, len(LABELS)]}]
        return {"name": MODEL, "versions": ["1"], "platform": "fake", "inputs": inputs, "outputs": outputs}

    def statistics(self, token: str | None) -> dict[str, Any]:
        if self.token is not None and token != self.token:
            raise PermissionError("statistics need a token")
        with self.lock:
            c = self.stats.copy()
        phases = {p: {"count": c[f"{p}_count"], "ns": c[f"{p}_ns"]} for p in ("success", "fail", *PHASES)}
        counts = {k: c[k] for k in ("inference_count", "execution_count")}
        return {"model_stats": [{"name": MODEL, "version": "1", **counts, "inference_stats": phases}]}

    def infer(self, name: str, array: np.ndarray) -> np.ndarray:
        with self.lock:
            self.received += 1
            number, self.in_flight = self.received, self.in_flight + 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.delay)
            if self.fail_every and number % self.fail_every == 0:
                with self.lock:
                    self.stats["fail_count"] += 1
                raise ValueError(f"request {number} refused")
            if name == "image":
                probs = 1 / (1 + np.exp(-array.reshape(len(array), -1)[:, : len(LABELS)]))
            else:  # the file's length stands for its content
                probs = np.tile(np.array([[len(b) / 1000] for b in array[:, 0]], np.float32), (1, len(LABELS)))
            with self.lock:
                self.stats.update({f"{p}_ns": ns for p, ns in PHASES.items()})
                self.stats.update({f"{p}_count": 1 for p in (*PHASES, "success", "execution")})
                self.stats["inference_count"] += len(array)
                self.stats["success_ns"] += sum(PHASES.values())
            return (probs + self.shift).astype(np.float32)
        finally:
            with self.lock:
                self.in_flight -= 1


def decode(datatype: str, shape: list[int], raw: bytes) -> np.ndarray:
    from tritonclient.utils import deserialize_bytes_tensor

    array = np.frombuffer(raw, np.float32) if datatype == "FP32" else deserialize_bytes_tensor(raw)
    return array.reshape(shape)


class Handler(BaseHTTPRequestHandler):
    """KServe v2 over HTTP, JSON answers to requests in Triton's binary-tensor extension (what tritonclient sends)."""

    protocol_version = "HTTP/1.1"  # keep-alive, as Triton's
    disable_nagle_algorithm = True  # headers and body are two writes: Nagle would hold the body 40 ms
    server: Any

    def log_message(self, *args: object) -> None:
        pass

    def answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        model: FakeModel = self.server.model
        if self.path == "/v2/health/ready":
            self.answer(200, {})
        elif self.path == f"/v2/models/{MODEL}":
            self.answer(200, model.metadata())
        elif self.path == f"/v2/models/{MODEL}/stats":
            try:
                self.answer(200, model.statistics(self.headers.get(TOKEN_HEADER)))
            except PermissionError as err:
                self.answer(403, {"error": str(err)})
        else:
            self.answer(404, {"error": f"unknown: {self.path}"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path != f"/v2/models/{MODEL}/infer":
            return self.answer(404, {"error": f"unknown: {self.path}"})
        size = int(self.headers.get("Inference-Header-Content-Length", len(body)))
        request, raw = json.loads(body[:size]), body[size:]
        tensor = request["inputs"][0]
        try:
            probs = self.server.model.infer(tensor["name"], decode(tensor["datatype"], tensor["shape"], raw))
        except ValueError as err:
            return self.answer(400, {"error": str(err)})
        output = {
            "name": "probabilities",
            "datatype": "FP32",
            "shape": list(probs.shape),
            "data": probs.ravel().tolist(),
        }
        self.answer(200, {"model_name": MODEL, "outputs": [output]})


class FakeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, model: FakeModel) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.model = model

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that timed out has closed the connection an answer is late for."""


def grpc_service(model: FakeModel) -> Any:
    """The same model behind KServe v2's gRPC service, with tritonclient's own stubs."""
    import grpc
    from google.protobuf.json_format import ParseDict
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    class Service(service_pb2_grpc.GRPCInferenceServiceServicer):
        def ModelMetadata(self, request: Any, context: Any) -> Any:
            if request.name != MODEL:
                context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model {request.name}")
            return ParseDict(model.metadata(), service_pb2.ModelMetadataResponse())

        def ModelStatistics(self, request: Any, context: Any) -> Any:
            try:
                stats = model.statistics(dict(context.invocation_metadata()).get(GRPC_HEADER_PREFIX + TOKEN_HEADER))
            except PermissionError as err:
                context.abort(grpc.StatusCode.PERMISSION_DENIED, str(err))
            return ParseDict(stats, service_pb2.ModelStatisticsResponse())

        def ModelInfer(self, request: Any, context: Any) -> Any:
            tensor = request.inputs[0]
            try:
                array = decode(tensor.datatype, list(tensor.shape), request.raw_input_contents[0])
                probs = model.infer(tensor.name, array)
            except ValueError as err:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
            output = service_pb2.ModelInferResponse.InferOutputTensor(
                name="probabilities", datatype="FP32", shape=list(probs.shape)
            )
            return service_pb2.ModelInferResponse(
                model_name=MODEL, outputs=[output], raw_output_contents=[probs.tobytes()]
            )

    return Service(), service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server


@contextmanager
def kserve(protocol: str = "http", **options: Any) -> Iterator[tuple[str, FakeModel]]:
    """A fake server on an ephemeral port of 127.0.0.1: its address (host:port) and its model."""
    model = FakeModel(**options)
    if protocol == "http":
        httpd = FakeHTTPServer(model)
        thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)  # shutdown() waits for a poll
        thread.start()
        try:
            yield f"127.0.0.1:{httpd.server_address[1]}", model
        finally:
            httpd.shutdown()
            httpd.server_close()
            thread.join(5)
        return
    import grpc

    service, add = grpc_service(model)
    server = grpc.server(ThreadPoolExecutor(max_workers=32))
    add(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", model
    finally:
        server.stop(None).wait(5)


def fake_arrays() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.normal(size=(12, 3, 4, 4)).astype(np.float32)
    return images, (images.reshape(12, -1)[:, : len(LABELS)] > 0).astype(np.float32)


def image_files(tmp_path: Path, count: int = 5) -> list[Path]:
    files = [tmp_path / f"{i}.jpg" for i in range(count)]
    for i, path in enumerate(files):
        path.write_bytes(b"x" * (100 * (i + 1)))
    return files


def expected_errors(before: int, count: int, every: int) -> int:
    """Multiples of ``every`` among the server's request numbers before+1 .. before+count."""
    return (before + count) // every - before // every


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_levels_count_requests_errors_latency_and_the_servers_statistics(protocol: str, tmp_path: Path) -> None:
    images, targets = fake_arrays()
    reference = 1 / (1 + np.exp(-images.reshape(12, -1)[:, : len(LABELS)]))
    reference_row = {"name": "pytorch", "precision": "fp32"}
    with kserve(protocol, fail_every=5, token="secret") as (url, model):
        settings = LoadSettings(url, protocol=protocol, concurrency=(1, 4), requests=30, warmup=0, token="secret")
        with open_server(settings, INFO) as server:
            assert server.kinds == [TENSORS, IMAGES]
            section, rows = load_server(
                server, images, image_files(tmp_path), reference, reference_row, targets, INFO, Tolerances()
            )
        assert model.received == 12 + 4 * 30  # parity, then 2 kinds x 2 levels; no warm-up, no retries

    parity = section["parity"]
    assert parity["images"] == 12 and parity["errors"] == 2 and parity["answered"] == 10  # requests 5 and 10
    assert parity["max_abs_diff"] == 0 and parity["identical_label_sets"] == 100 and parity["map_delta"] == 0
    assert parity["gate"] == "max |Δp| ≤ 0.0001" and len(parity["failures"]) == 1
    assert parity["failures"][0].startswith(f"server {protocol} tensors: 2 of 12 evaluation images unanswered")
    assert section["statistics"] == "available" and section["token"] is True and section["platform"] == "fake"
    assert [row["name"] for row in rows] == [
        f"server {protocol} {kind} c={c}" for kind in ("tensors", "images") for c in (1, 4)
    ]
    before = 12
    for row in rows:
        errors = expected_errors(before, 30, 5)
        before += 30
        assert row["requests"] == 30 and row["errors"] == errors and row["answers"] == 30 - errors
        assert row["status"] == "ok" and not row["time_capped"] and row["answers_per_s"] > 0
        assert "request" in row["first_error"] and "refused" in row["first_error"]
        assert row["failures"] == [f"{row['name']}: {errors} of 30 requests failed, first: {row['first_error']}"]
        assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] and row["mean_ms"] > 0
        stats = row["server_stats"]
        assert stats["success"] == 30 - errors and stats["fail"] == errors and stats["batch"] == 1.0
        assert stats["queue_ms"] == pytest.approx(1.0) and stats["compute_ms"] == pytest.approx(2.5)


def test_closed_loop_keeps_c_requests_in_flight_and_stops_at_the_time_limit() -> None:
    images, _ = fake_arrays()
    with kserve(delay=0.01) as (url, model), open_server(LoadSettings(url, seconds=0.5), INFO) as server:
        start = time.perf_counter()
        level = run_level(server, TENSORS, payloads(TENSORS, images, ()), 4, 100_000)
        elapsed = time.perf_counter() - start
    assert level.capped and 20 < level.requests < 500 and level.errors == 0 and elapsed < 5  # loose: a busy 2-core CI
    assert model.max_in_flight == 4 and level.seconds == pytest.approx(0.5, abs=0.4)
    assert level.answers_per_s == pytest.approx(len(level.latencies) / level.seconds)
    assert level.server is not None and level.server["success"] == len(level.latencies)


def test_a_server_slower_than_the_limit_times_out_and_the_level_ends() -> None:
    images, _ = fake_arrays()
    with kserve(delay=1.0) as (url, _), open_server(LoadSettings(url, seconds=0.3), INFO) as server:
        start = time.perf_counter()
        level = run_level(server, TENSORS, payloads(TENSORS, images, ()), 2, 100)
        elapsed = time.perf_counter() - start
    assert level.capped and level.requests == level.errors == 2 and not len(level.latencies)
    assert "timed out" in level.first_error and elapsed < 4  # warm-up 0.3 s, one request each 0.3 s


def test_statistics_behind_a_token_are_na_without_it(tmp_path: Path) -> None:
    images, _ = fake_arrays()
    with kserve(token="secret") as (url, _), open_server(LoadSettings(url, warmup=0), INFO) as server:
        assert server.statistics().startswith("statistics unavailable: InferenceServerException: [403]")
        level = run_level(server, TENSORS, payloads(TENSORS, images, ()), 2, 10)
    assert level.server is None and level.requests == 10 and level.errors == 0


def test_counters_read_grpc_json_with_numbers_as_text_and_zeros_left_out() -> None:
    before = counters({"model_stats": [{"inference_count": "4", "inference_stats": {"queue": {"count": "4"}}}]})
    after = counters(
        {
            "model_stats": [
                {
                    "inference_count": "12",
                    "execution_count": "4",
                    "inference_stats": {
                        "success": {"count": "8", "ns": "9"},
                        "queue": {"count": "12", "ns": "16000000"},
                        "compute_input": {"count": "8", "ns": "8000000"},
                        "compute_infer": {"count": "8", "ns": "16000000"},
                        "compute_output": {"count": "8", "ns": "8000000"},
                    },
                },
                {"version": "2", "inference_stats": {"fail": {"count": "1"}}},
            ]
        }
    )
    figures = server_figures(before, after)
    assert figures == {"success": 8, "fail": 1, "queue_ms": 2.0, "compute_ms": 4.0, "batch": 2.0}
    assert server_figures("statistics unavailable: 403", after) is None


def test_urls_lose_their_scheme_and_tls_is_refused() -> None:
    assert client_url("http://localhost:8000", "http") == "localhost:8000" == client_url("localhost:8000", "http")
    assert client_url("grpc://localhost:8001", "grpc") == "localhost:8001"
    with pytest.raises(ConfigError, match="no TLS"):
        client_url("https://localhost:8000", "http")


# --- the whole command: in-process rows and served rows, one report ---


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"weights")
    return path


def run_cli(monkeypatch: pytest.MonkeyPatch, checkpoint: Path, out: Path, url: str, *extra: str) -> int:
    install_fakes(monkeypatch, 0.0)
    files = image_files(out.parent)
    monkeypatch.setattr("deepfake_mlc.bench.serve_bench.image_files", lambda *args: files)
    argv = ["serve-bench", "--model", str(checkpoint), "--data", "fake", "--out", str(out), *FAST]
    argv += ["--runtimes", "pytorch", "ort-cpu", "--server", url, "--server-concurrency", "4", "1"]
    return main([*argv, "--server-requests", "20", *extra])


def test_served_rows_sit_in_the_report_beside_the_runtimes(
    monkeypatch: pytest.MonkeyPatch, checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with kserve(token="secret") as (url, model):
        assert run_cli(monkeypatch, checkpoint, out, f"http://{url}", "--server-token", "secret") == 0
        assert model.received == 8 + 12 + 2 * ((1 + 20) + (4 + 20))  # parity (8 workers), then by kind: c=1, c=4
    result = json.loads((out / "serve_bench.json").read_text())
    assert result["passed"] and "secret" not in (out / "serve_bench.json").read_text()
    rows = {row["name"]: row for row in result["rows"]}
    served = [f"server http {kind} c={c}" for kind in ("tensors", "images") for c in (1, 4)]
    assert list(rows) == ["pytorch", "ort-cpu", *served]
    row = rows["server http tensors c=4"]
    assert set(row) == {
        "name",
        "runtime",
        "status",
        "reference",
        "protocol",
        "kind",
        "concurrency",
        "requests",
        "answers",
        "errors",
        "first_error",
        "time_capped",
        "seconds",
        "answers_per_s",
        "server_stats",
        "failures",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "mean_ms",
    }
    assert row["runtime"] == "server" and row["requests"] == row["answers"] == 20 and row["errors"] == 0
    assert row["server_stats"]["success"] == 20  # the warm-up requests are not in the level's figures
    server = result["server"]
    assert server["url"] == f"http://{url}" and server["model"] == "deepfake-mlc" and server["concurrency"] == [1, 4]
    assert server["kinds"] == ["tensors", "images"] and server["statistics"] == "available"
    assert server["parity"]["max_abs_diff"] == 0 and server["parity"]["metrics"] == rows["pytorch"]["metrics"]
    text = (out / "serve_bench.md").read_text()
    assert "| server http tensors c=1 | fp32 | server | ok |" in text and "## Served: closed loop" in text
    assert "| server http images c=4 | fp32 | server | ok |" in text and "- server: http://" in text
    assert "| server http tensors |" in text  # the served model's metrics beside the runtimes'
    assert (out / "serve_bench.png").is_file()  # the figure leaves served rows out, and is drawn


def test_a_drifting_server_fails_the_gate_and_missing_statistics_are_na(
    monkeypatch: pytest.MonkeyPatch, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    with kserve(token="secret", shift=0.01, image_bytes=False) as (url, _):
        assert run_cli(monkeypatch, checkpoint, out, url) == 1
    assert "failed: server http tensors (fp32) against pytorch (fp32) on 12 images: max |Δp|" in capsys.readouterr().err
    result = json.loads((out / "serve_bench.json").read_text())
    assert [r["name"] for r in result["rows"]][2:] == ["server http tensors c=1", "server http tensors c=4"]
    assert result["server"]["statistics"].startswith("statistics unavailable: InferenceServerException: [403]")
    assert result["rows"][2]["server_stats"] is None
    text = (out / "serve_bench.md").read_text()
    assert "| FAIL (max |Δp| ≤ 0.0001) |" in text and "| n/a | n/a | n/a |" in text


@pytest.mark.parametrize(
    ("options", "model", "message"),
    [
        ({}, "other", "model 'other' at 127.0.0.1:"),
        ({"size": 8}, MODEL, "takes images of shape [-1, 3, 8, 8], --model's are [batch, 3, 4, 4]: is it --model's?"),
    ],
)
def test_a_server_that_does_not_serve_the_model_stops_before_anything_runs(
    options: dict[str, Any],
    model: str,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    with kserve(**options) as (url, _):
        assert run_cli(monkeypatch, checkpoint, out, url, "--server-model", model) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1 and not out.exists()


def test_no_server_listening_is_one_line(
    monkeypatch: pytest.MonkeyPatch, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert run_cli(monkeypatch, checkpoint, tmp_path / "out", f"127.0.0.1:{port}") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: model 'deepfake-mlc' at 127.0.0.1:{port} (http) did not answer its metadata:")
    assert err.count("\n") == 1


def test_without_tritonclient_nothing_of_it_is_imported_and_server_says_what_to_install() -> None:
    code = """
        import sys
        import deepfake_mlc.bench.serve_bench, deepfake_mlc.bench.tables, deepfake_mlc.cli.main
        assert not {"tritonclient", "gevent"} & {name.split(".")[0] for name in sys.modules}
        from deepfake_mlc.bench.load import LoadSettings, Server
        try:
            Server(LoadSettings("127.0.0.1:1"), 5)
        except Exception as err:
            print(type(err).__name__, err)
    """
    result = run_without({"tritonclient"}, code)
    assert result.returncode == 0, result.stderr[-3000:]
    needs = "--server needs tritonclient (pip install 'deepfake-mlc[serve]'), which is not installed here"
    assert result.stdout == f"RuntimeUnavailable {needs}\n"
