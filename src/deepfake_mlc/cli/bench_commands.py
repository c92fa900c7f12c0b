"""``deepfake-mlc serve-bench`` (also ``python serve_bench``): every runtime, one table, a release gate."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deepfake_mlc.artifacts import export_name
from deepfake_mlc.bench.artifacts import TARGETS
from deepfake_mlc.bench.load import CONCURRENCY, LEVEL_SECONDS, MODEL, PROTOCOLS, REQUESTS
from deepfake_mlc.cli.options import positive
from deepfake_mlc.export import CALIBRATION_IMAGES
from deepfake_mlc.metrics.parity import MAX_ABS_DIFF, MAX_MAP_DROP, Tolerances

EXPORTS = dict.fromkeys(
    export_name(Path("STEM"), t.format, t.precision) for t in TARGETS.values() if t.format != "checkpoint"
)


def register(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser(
        "serve-bench",
        help="benchmark a model in every runtime available here: accuracy vs PyTorch, latency, throughput",
        description="For each runtime (PyTorch eager and compiled, ONNX Runtime fp32/int8/CUDA/TensorRT, TensorRT): "
        "accuracy on the evaluation set against PyTorch fp32, latency p50/p90/p99 and throughput per batch size. "
        "Writes serve_bench.{md,json,png} to --out; exit status 1 when a runtime fails the quality gate export "
        "applies too (--tolerance-*, --max-map-drop; each runtime is held to the looser of its and the reference's "
        "bound). With --server, the model as a KServe v2 / Triton server serves it is loaded too: closed-loop rows "
        "by concurrency in the same table. "
        "Example: python serve_bench --model runs/RUN --data data/synth --runtimes pytorch ort-cpu ort-cpu-int8",
    )
    bench.add_argument("--model", type=Path, required=True, help="run folder, .safetensors, .onnx or TensorRT engine")
    bench.add_argument("--data", type=Path, required=True, help="Seq-DeepFake root folder, manifest .csv or config")
    bench.add_argument("--split", choices=["train", "val", "test"], default="test", help="evaluation split")
    bench.add_argument("--subset", choices=["components", "attributes"], help="default: the model's")
    bench.add_argument(
        "--runtimes",
        nargs="+",
        choices=list(TARGETS),
        default=list(TARGETS),
        metavar="RUNTIME",
        help=f"any of {', '.join(TARGETS)} (default: all; those unavailable here are skipped)",
    )
    bench.add_argument("--batch-sizes", nargs="+", type=positive(int), default=[1, 8, 32], metavar="N")
    bench.add_argument(
        "--warmup", type=positive(int, zero_allowed=True), default=3, help="untimed calls at the start of every trial"
    )
    amount = bench.add_mutually_exclusive_group()
    amount.add_argument("--iters", type=positive(int), default=20, help="timed calls per trial (default: 20)")
    amount.add_argument("--min-time", type=positive(float), metavar="S", help="or: timed seconds per trial")
    bench.add_argument("--trials", type=positive(int), default=3, help="trials, interleaved across runtimes")
    bench.add_argument("--threads", type=positive(int), help="CPU threads per runtime (default: the runtime's)")
    bench.add_argument(
        "--limit-images", type=positive(int), metavar="N", help="evaluate on N images spread evenly over the split"
    )
    bench.add_argument(
        "--calibration-images",
        type=positive(int),
        default=CALIBRATION_IMAGES,
        metavar="N",
        help=f"training images that calibrate the int8 model (default: {CALIBRATION_IMAGES})",
    )
    bench.add_argument("--out", type=Path, default=Path("runs/serve_bench"), help="exports and reports folder")
    for precision, bound in MAX_ABS_DIFF.items():
        bench.add_argument(
            f"--tolerance-{precision}",
            type=float,
            default=bound,
            metavar="P",
            help=f"max |Δp| of {precision} runtimes (default: %(default)g)",
        )
    bench.add_argument(
        "--max-map-drop",
        type=float,
        default=MAX_MAP_DROP,
        metavar="POINTS",
        help="largest mAP drop of int8 runtimes, in points (default: %(default)g)",
    )
    bench.add_argument(
        "--no-export",
        action="store_true",
        help="do not export; use the exports an earlier run left in --out, named as export names them "
        f"({', '.join(EXPORTS)}; STEM: the checkpoint's)",
    )
    bench.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_server_options(bench)
    bench.set_defaults(func=run_serve_bench)


def add_server_options(bench: argparse.ArgumentParser) -> None:
    """``--server*``: a closed-loop load on the same model served by a KServe v2 / Triton server, rows of its own."""
    served = bench.add_argument_group(
        "served model",
        "also load a running KServe v2 server (deepfake-mlc serve, or any Triton) serving --model: one image per "
        "request, N requests in flight (closed loop) for each --server-concurrency, as preprocessed tensors and, "
        "where the model takes them, as image files; rows 'server PROTOCOL KIND c=N' in the same table",
    )
    served.add_argument("--server", metavar="URL", help="host:port or http://host:port (gRPC: host:8001)")
    served.add_argument("--server-model", default=MODEL, metavar="NAME", help="served model (default: %(default)s)")
    served.add_argument("--server-protocol", choices=PROTOCOLS, default="http", help="default: %(default)s")
    served.add_argument(
        "--server-concurrency",
        nargs="+",
        type=positive(int),
        default=list(CONCURRENCY),
        metavar="N",
        help=f"requests in flight, one level each (default: {' '.join(map(str, CONCURRENCY))})",
    )
    served.add_argument(
        "--server-requests", type=positive(int), default=REQUESTS, metavar="N", help="per level (default: %(default)s)"
    )
    served.add_argument(
        "--server-seconds",
        type=positive(float),
        default=LEVEL_SECONDS,
        metavar="S",
        help="at most S seconds per level, however many requests are left (default: %(default)g)",
    )
    served.add_argument(
        "--server-token", metavar="TOKEN", help="sent as triton-access-token with metadata and statistics requests"
    )
    served.add_argument(
        "--server-precision",
        choices=[*MAX_ABS_DIFF, "int8"],
        default="fp32",
        help="the served model's arithmetic: the quality gate's bound for it (default: %(default)s)",
    )


def run_serve_bench(args: argparse.Namespace) -> int:
    from deepfake_mlc.bench.load import LoadSettings
    from deepfake_mlc.bench.serve_bench import BenchSettings, serve_bench
    from deepfake_mlc.bench.tables import print_report, write_report
    from deepfake_mlc.bench.timing import TimingPlan

    settings = BenchSettings(
        runtimes=tuple(dict.fromkeys(args.runtimes)),
        batch_sizes=tuple(sorted(set(args.batch_sizes))),
        timing=TimingPlan(args.warmup, args.iters, args.min_time, args.trials),
        threads=args.threads,
        split=args.split,
        subset=args.subset,
        limit_images=args.limit_images,
        calibration_images=args.calibration_images,
        tolerances=Tolerances({p: getattr(args, f"tolerance_{p}") for p in MAX_ABS_DIFF}, args.max_map_drop),
        export=not args.no_export,
        server=None
        if args.server is None
        else LoadSettings(
            url=args.server,
            model=args.server_model,
            protocol=args.server_protocol,
            concurrency=tuple(sorted(set(args.server_concurrency))),
            requests=args.server_requests,
            seconds=args.server_seconds,
            token=args.server_token,
            precision=args.server_precision,
        ),
    )
    result = serve_bench(args.model, args.data, args.out, settings, show_progress=not args.no_progress)
    print_report(result, write_report(result, args.out))
    for failure in result["failures"]:
        print(f"failed: {failure}", file=sys.stderr)
    return 0 if result["passed"] else 1
