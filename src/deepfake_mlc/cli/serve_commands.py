"""``deepfake-mlc serve``: a model behind NVIDIA Triton's server (KServe v2 HTTP and gRPC), locally."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepfake_mlc.cli.options import positive
from deepfake_mlc.runtime.runners import RUNTIMES


def register(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve a model over HTTP and gRPC (KServe v2) through NVIDIA Triton's server, with dynamic batching",
        description="Starts Triton's own server (the binary nvidia-pytriton bundles; no Docker) with the model "
        "behind its Python backend, run by our runners. Requests carry preprocessed tensors ('image') or encoded "
        "photos ('image_bytes': decoded, cut to the largest face by the model's crop policy, preprocessed on the "
        "server). Health: /v2/health/ready; metadata: /v2/models/NAME; metrics: the metrics port's /metrics. "
        "SIGTERM or Ctrl-C drains: requests in flight are answered, new ones refused, then it exits.",
    )
    serve.add_argument(
        "--model",
        type=Path,
        required=True,
        metavar="PATH",
        help="run folder, checkpoint, .onnx, .engine, or a Triton model repository written by export --format triton",
    )
    serve.add_argument(
        "--name", help="the name clients call the model by (deepfake-mlc; a repository's: its model's own name)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1; 0.0.0.0: every one)")
    serve.add_argument("--http-port", type=port, default=8000, metavar="PORT", help="(8000)")
    serve.add_argument("--grpc-port", type=port, default=8001, metavar="PORT", help="(8001)")
    serve.add_argument("--metrics-port", type=port, default=8002, metavar="PORT", help="(8002)")
    serve.add_argument("--max-batch", type=positive(), default=32, metavar="N", help="largest batch Triton forms (32)")
    serve.add_argument(
        "--queue-delay-us",
        type=positive(zero_allowed=True),
        default=100,
        metavar="US",
        help="how long a request may wait for others to batch with (100 µs)",
    )
    serve.add_argument("--runtime", choices=RUNTIMES, help="default: ONNX Runtime for an export, PyTorch for a run")
    serve.add_argument("--threads", type=positive(), metavar="N", help="threads of the runtime (its default)")
    serve.add_argument("--instances", type=positive(), default=1, metavar="N", help="model instances (1)")
    serve.add_argument("--min-face", type=positive(), default=40, metavar="PX", help="smallest face found in photos")
    serve.set_defaults(func=run_serve)


def port(text: str) -> int:
    """An argparse type: a TCP port, 1..65535."""
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1..65535, got {text}")
    return value


def run_serve(args: argparse.Namespace) -> int:
    import signal

    from rich.console import Console

    from deepfake_mlc.serving.server import DRAIN_TIMEOUT_S, LocalTriton, ServeSettings, StopRequested

    settings = ServeSettings(
        model=args.model,
        name=args.name,
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        max_batch=args.max_batch,
        queue_delay_us=args.queue_delay_us,
        runtime=args.runtime,
        threads=args.threads,
        instances=args.instances,
        min_face=args.min_face,
    )
    server = LocalTriton(settings)
    console = Console(highlight=False, soft_wrap=True)

    def drain(signum: int, _frame: object) -> None:  # Triton refuses new requests, answers those in flight, exits
        server.request_stop()

    signal.signal(signal.SIGTERM, drain)
    signal.signal(signal.SIGINT, drain)
    try:
        with console.status(f"starting Triton with {settings.model} ({server.runtime})"):
            server.start()
    except StopRequested:
        console.print("stopped before it was ready")
        return 0
    console.print(
        f"serving [bold]{server.name}[/bold] ({server.path}, {server.runtime}, batches up to {settings.max_batch})\n"
        f"  HTTP     {server.http_url}/v2/models/{server.name}/infer\n"
        f"  gRPC     {server.grpc_url}\n"
        f"  metrics  {server.metrics_url}\n"
        f"  health   {server.http_url}/v2/health/ready\n"
        "SIGTERM or Ctrl-C drains and stops."
    )
    server.wait()
    status = server.stop()
    if server.open_connections:
        console.print(f"clients kept idle connections open for the {DRAIN_TIMEOUT_S} s drain timeout; closed on exit")
    if status != 0:
        console.print(f"Triton exited with status {status}: {server.failure}")
        return 1
    console.print("stopped: every request in flight was answered")
    return 0
