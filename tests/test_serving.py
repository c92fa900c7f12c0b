"""``deepfake-mlc serve``: Triton's own server, started here, queried as a client would (tritonclient).

The served answers must be the in-process ones (predict's), bad requests must each get a 4xx with a reason
and leave the server healthy, and SIGTERM must answer what is in flight before exiting.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from PIL import Image
from tritonclient.utils import InferenceServerException

from conftest import free_port
from deepfake_mlc.cli.main import main
from deepfake_mlc.runtime import load_images, open_runner
from deepfake_mlc.serving.server import LocalTriton, ServeSettings

NAME = "deepfake-mlc"


@pytest.fixture(scope="module")
def onnx_model(families: dict[str, tuple[Path, Path]]) -> Path:
    return families["test_resnet"][1]


@pytest.fixture(scope="module")
def photos(data_root: Path) -> list[Path]:
    return sorted((data_root / "facial_components" / "images" / "test").rglob("*.jpg"))


@pytest.fixture(scope="module")
def server(onnx_model: Path) -> Iterator[LocalTriton]:
    ports = {"http_port": free_port(), "grpc_port": free_port(), "metrics_port": free_port()}
    settings = ServeSettings(onnx_model, **ports, max_batch=8, threads=1, runtime="ort-cpu")
    triton = LocalTriton(settings)
    triton.start()
    yield triton
    assert triton.stop() == 0, triton.failure


def tensor_input(module, images: np.ndarray):
    image = module.InferInput("image", list(images.shape), "FP32")
    image.set_data_from_numpy(images)
    return image


def bytes_input(module, blobs: list[bytes]):
    data = np.array(blobs, dtype=np.object_).reshape(-1, 1)
    image = module.InferInput("image_bytes", list(data.shape), "BYTES")
    image.set_data_from_numpy(data)
    return image


def test_served_answers_equal_predict_over_http_and_grpc(
    server: LocalTriton, onnx_model: Path, photos: list[Path]
) -> None:
    images = load_images(photos, server.info)
    expected = open_runner(onnx_model, "ort-cpu")(images)
    http = httpclient.InferenceServerClient(server.http_url.removeprefix("http://"))
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    for client, module in ((http, httpclient), (grpc, grpcclient)):
        answer = client.infer(NAME, [tensor_input(module, images)])
        np.testing.assert_allclose(answer.as_numpy("probabilities"), expected, atol=1e-6)
        answer = client.infer(NAME, [bytes_input(module, [p.read_bytes() for p in photos[:3]])])
        np.testing.assert_allclose(answer.as_numpy("probabilities"), expected[:3], atol=1e-6)
        assert answer.as_numpy("faces").ravel().tolist() == [1, 1, 1]  # whole images: the model's crop is none
    metadata = http.get_model_metadata(NAME)
    assert {i["name"] for i in metadata["inputs"]} == {"image", "image_bytes"}
    config = http.get_model_config(NAME)
    assert json.loads(config["parameters"]["deepfake_mlc"]["string_value"])["label_names"] == list(
        server.info.label_names
    )
    assert http.is_server_ready() and grpc.is_model_ready(NAME)
    with urllib.request.urlopen(server.metrics_url) as metrics:
        assert b"nv_inference_request_success" in metrics.read()
    http.close()
    grpc.close()


def huge_png() -> bytes:
    """A valid PNG of a few bytes whose header claims 40000 × 40000 pixels: refused from the header."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = (40000).to_bytes(4, "big") * 2  # the IHDR chunk's width and height
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # its CRC, over type and data
    return bytes(data)


def post(url: str, body: dict) -> tuple[int, str]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.mark.parametrize(
    ("inputs", "reason"),
    [
        ([{"name": "image", "shape": [1, 3, 32, 32], "datatype": "INT32", "data": [0] * 3072}], "data-type"),
        ([{"name": "image", "shape": [1, 3, 16, 16], "datatype": "FP32", "data": [0.0] * 768}], "shape"),
        ([{"name": "image", "shape": [0, 3, 32, 32], "datatype": "FP32", "data": []}], ""),
        (
            [{"name": "image_bytes", "shape": [1, 1], "datatype": "BYTES", "data": ["not an image"]}],
            "cannot read image",
        ),
        ([{"name": "image_bytes", "shape": [1, 1], "datatype": "BYTES", "data": [""]}], "image_bytes[0] is empty"),
        ([], "request has 0 inputs"),
        (
            [
                {"name": "image", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": [0.0] * 3072},
                {"name": "image_bytes", "shape": [1, 1], "datatype": "BYTES", "data": ["x"]},
            ],
            "a request carries one input",
        ),
    ],
)
def test_bad_requests_are_refused_with_a_reason_and_the_server_stays_up(
    server: LocalTriton, inputs: list, reason: str
) -> None:
    status, text = post(f"{server.http_url}/v2/models/{NAME}/infer", {"inputs": inputs})
    assert 400 <= status < 500 and reason in text, (status, text)
    assert urllib.request.urlopen(f"{server.http_url}/v2/health/ready").status == 200


def test_corrupt_and_oversized_photos_are_refused(server: LocalTriton, photos: list[Path]) -> None:
    client = httpclient.InferenceServerClient(server.http_url.removeprefix("http://"))
    truncated = photos[0].read_bytes()[:200]
    for blob, reason in ((truncated, r"cannot read image image_bytes\[0\]"), (huge_png(), "megapixels")):
        with pytest.raises(InferenceServerException, match=reason) as err:
            client.infer(NAME, [bytes_input(httpclient, [blob])])
        assert err.value.status() == "400"
    client.close()


def test_mixed_good_and_bad_load_answers_every_good_request(
    server: LocalTriton, onnx_model: Path, photos: list[Path]
) -> None:
    """Concurrent clients, dynamic batching, bad requests in the same batches as good ones."""
    expected = open_runner(onnx_model, "ort-cpu")(load_images(photos, server.info))
    blobs = [p.read_bytes() for p in photos]
    counts = {"good": 0, "bad": 0, "wrong": 0}
    lock = threading.Lock()

    def client_loop(worker: int) -> None:
        client = httpclient.InferenceServerClient(server.http_url.removeprefix("http://"))
        for i in range(25):
            k = (worker + i) % len(photos)
            bad = (worker + i) % 4 == 0
            try:
                answer = client.infer(NAME, [bytes_input(httpclient, [b"\x89PNG broken" if bad else blobs[k]])])
                ok = not bad and np.allclose(answer.as_numpy("probabilities")[0], expected[k], atol=1e-6)
                key = "good" if ok else "wrong"
            except InferenceServerException as err:
                key = "bad" if bad and err.status() == "400" else "wrong"
            with lock:
                counts[key] += 1
        client.close()

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(client_loop, range(16)))
    assert counts == {"good": 300, "bad": 100, "wrong": 0}
    assert urllib.request.urlopen(f"{server.http_url}/v2/health/ready").status == 200


def wait_until_ready(client: httpclient.InferenceServerClient, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-2000:]
        try:
            if client.is_model_ready(NAME):
                return
        except Exception:
            pass
        time.sleep(0.5)
    raise AssertionError(f"not ready in 180 s: {log.read_text()[-2000:]}")


def test_sigterm_answers_requests_in_flight_then_refuses_and_exits(
    onnx_model: Path, photos: list[Path], tmp_path: Path
) -> None:
    """Requests wait in Triton's queue (a long batching delay) when SIGTERM comes: each is still answered."""
    ports = [free_port() for _ in range(3)]
    argv = ["serve", "--model", str(onnx_model), "--http-port", str(ports[0]), "--grpc-port", str(ports[1])]
    argv += ["--metrics-port", str(ports[2]), "--max-batch", "8", "--queue-delay-us", "3000000", "--threads", "1"]
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "deepfake_mlc", *argv], stdout=out, stderr=subprocess.STDOUT)
    url = f"127.0.0.1:{ports[0]}"
    try:
        client = httpclient.InferenceServerClient(url)
        wait_until_ready(client, process, log)
        client.close()  # an idle keep-alive connection would hold Triton's drain until its timeout
        images = load_images(photos[:4], LocalTriton(ServeSettings(onnx_model)).info)

        def one(k: int) -> np.ndarray:
            own = httpclient.InferenceServerClient(url, network_timeout=60)
            return own.infer(NAME, [tensor_input(httpclient, images[k : k + 1])]).as_numpy("probabilities")

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(one, k) for k in range(4)]
            time.sleep(1.0)  # all four are waiting in the queue for a batch of 8
            process.send_signal(signal.SIGTERM)
            answers = [future.result(timeout=60) for future in futures]
        assert all(a.shape == (1, 5) and np.isfinite(a).all() for a in answers)  # five labels each
        assert process.wait(timeout=60) == 0, log.read_text()[-2000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    with pytest.raises(Exception):  # noqa: B017 - refused: the server is gone
        httpclient.InferenceServerClient(url).infer(NAME, [tensor_input(httpclient, images[:1])])
    printed = log.read_text()
    assert "stopped: every request in flight was answered" in printed and "idle connections" not in printed


def test_sigterm_while_starting_stops_it_cleanly(onnx_model: Path, tmp_path: Path) -> None:
    ports = [str(free_port()) for _ in range(3)]
    argv = ["serve", "--model", str(onnx_model), "--http-port", ports[0], "--grpc-port", ports[1]]
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "deepfake_mlc", *argv, "--metrics-port", ports[2]],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "starting Triton" not in log.read_text() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=90) == 0, log.read_text()[-2000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "stopped" in log.read_text()


def test_a_port_in_use_or_a_runtime_that_cannot_run_the_model_is_one_line(
    server: LocalTriton, onnx_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    busy = server.settings.http_port
    argv = ["serve", "--model", str(onnx_model), "--http-port", str(busy), "--grpc-port", str(free_port())]
    assert main([*argv, "--metrics-port", str(free_port())]) == 2
    assert f"port {busy} on 127.0.0.1 cannot be used" in capsys.readouterr().err
    assert main(["serve", "--model", str(onnx_model), "--runtime", "pytorch"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--runtime pytorch does not run" in err


def test_serve_bench_loads_the_real_server_with_its_in_process_rows_beside(
    server: LocalTriton, onnx_model: Path, data_root: Path, tmp_path: Path
) -> None:
    argv = ["serve-bench", "--model", str(onnx_model), "--data", str(data_root), "--runtimes", "ort-cpu"]
    argv += ["--batch-sizes", "1", "--iters", "3", "--warmup", "1", "--trials", "1", "--threads", "1"]
    argv += ["--server", server.http_url, "--server-concurrency", "1", "4", "--server-requests", "24"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "serve_bench.json").read_text())
    served = [row for row in result["rows"] if row["runtime"] == "server"]
    assert {(row["kind"], row["concurrency"]) for row in served} == {
        (kind, c) for kind in ("tensors", "images") for c in (1, 4)
    }
    assert all(row["status"] == "ok" and row["errors"] == 0 and row["answers"] == 24 for row in served)
    assert all(row["server_stats"]["success"] == 24 for row in served)  # Triton's own statistics, per level
    parity = result["server"]["parity"]
    assert parity["max_abs_diff"] < 1e-5 and parity["identical_label_sets"] == 100.0
    assert any(row["runtime"] == "ort-cpu" and row["status"] == "ok" for row in result["rows"])
