"""Good and bad requests mixed under load: every good one answered correctly, every bad one refused (4xx).

Starts ``deepfake-mlc serve`` on MODEL (or uses a running server with --url), then sends --requests requests
from --concurrency client threads over HTTP, one in --bad-every of them bad, cycling through the kinds a
broken client sends (an undecodable photo, an empty one, a truncated one, a text file, a photo claiming
40000 × 40000 pixels, a tensor of the wrong shape, one of the wrong data type). Good requests alternate
between preprocessed tensors and photo bytes and are checked against ONNX Runtime in this process. Prints
the counts and whether the server is still ready; exits 1 if any request got the wrong answer.

    python benchmarks/serving_mixed_load.py --model runs/<run>/checkpoints/best-fp32.onnx --data data/synth
"""

from __future__ import annotations

import argparse
import io
import socket
import sys
import threading
import time
import urllib.request
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient
from PIL import Image
from tritonclient.utils import InferenceServerException

from deepfake_mlc.runtime import load_images, open_runner
from deepfake_mlc.serving.server import LocalTriton, ServeSettings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def huge_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = (40000).to_bytes(4, "big") * 2
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return bytes(data)


def photo_input(blob: bytes) -> httpclient.InferInput:
    data = np.array([blob], dtype=np.object_).reshape(1, 1)
    tensor = httpclient.InferInput("image_bytes", [1, 1], "BYTES")
    tensor.set_data_from_numpy(data)
    return tensor


def tensor_input(images: np.ndarray, datatype: str = "FP32") -> httpclient.InferInput:
    tensor = httpclient.InferInput("image", list(images.shape), datatype)
    tensor.set_data_from_numpy(images)
    return tensor


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="the .onnx model (served, and the reference)")
    parser.add_argument("--data", type=Path, required=True, help="a folder of photos (searched recursively)")
    parser.add_argument("--url", help="a running server's HTTP address (default: start one here)")
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--bad-every", type=int, default=4, help="one request in N is bad (4)")
    parser.add_argument("--photos", type=int, default=64, help="distinct photos cycled through (64)")
    args = parser.parse_args()

    paths = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[: args.photos]
    runner = open_runner(args.model, "ort-cpu")
    images = load_images(paths, runner.info)
    expected = runner(images)
    blobs = [p.read_bytes() for p in paths]
    size = runner.info.preprocessing.image_size
    bad_kinds = [
        ("undecodable", lambda: photo_input(b"\x89PNG\r\n\x1a\n broken")),
        ("empty", lambda: photo_input(b"")),
        ("truncated", lambda: photo_input(blobs[0][: len(blobs[0]) // 3])),
        ("text", lambda: photo_input(b"this is not an image, it is a sentence")),
        ("oversized", lambda: photo_input(huge_png())),
        ("wrong shape", lambda: tensor_input(np.zeros((1, 3, size // 2, size // 2), np.float32))),
        ("wrong type", lambda: tensor_input(np.zeros((1, 3, size, size), np.int32), "INT32")),
    ]

    server = None
    if args.url is None:
        ports = {"http_port": free_port(), "grpc_port": free_port(), "metrics_port": free_port()}
        settings = ServeSettings(args.model, **ports, runtime="ort-cpu")
        server = LocalTriton(settings)
        server.start()
    url = args.url if args.url is None or "://" in args.url else f"http://{args.url}"
    url = url or server.http_url
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    local = threading.local()

    def send(i: int) -> None:
        client = getattr(local, "client", None) or httpclient.InferenceServerClient(url.removeprefix("http://"))
        local.client = client
        k = i % len(paths)
        if i % args.bad_every == 0:
            kind, make = bad_kinds[(i // args.bad_every) % len(bad_kinds)]
            try:
                client.infer("deepfake-mlc", [make()])
                outcome = f"bad answered ({kind})"
            except InferenceServerException as err:
                outcome = "bad refused (4xx)" if str(err.status()).startswith("4") else f"bad got {err.status()}"
        else:
            request = tensor_input(images[k : k + 1]) if i % 2 else photo_input(blobs[k])
            try:
                answer = client.infer("deepfake-mlc", [request]).as_numpy("probabilities")[0]
                outcome = "good correct" if np.allclose(answer, expected[k], atol=1e-5) else "good WRONG"
            except InferenceServerException as err:
                outcome = f"good failed ({err.status()})"
        with lock:
            counts[outcome] += 1

    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(send, range(args.requests)))
        seconds = time.perf_counter() - start
        with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=10) as answer:
            ready = answer.status == 200
    finally:
        if server is not None:
            server.stop()
    every = f"one in {args.bad_every} bad"
    print(f"{args.requests} requests at concurrency {args.concurrency} in {seconds:.1f} s, {every}:")
    for outcome, count in sorted(counts.items()):
        print(f"  {outcome}: {count}")
    print(f"server ready after: {ready}")
    wrong = sum(count for outcome, count in counts.items() if outcome not in ("good correct", "bad refused (4xx)"))
    return 0 if ready and not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
