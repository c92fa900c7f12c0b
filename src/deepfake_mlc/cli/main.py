"""``deepfake-mlc`` entry point: parses the sub-command and turns user errors into one line.

Errors a user can fix (:class:`~deepfake_mlc.errors.UserError`: a bad config value, a missing data set, a
corrupt image) are printed as a single ``error: ...`` line with exit status 2; anything else, even a
``FileNotFoundError`` from a bug, is a bug and keeps its traceback. The sub-command
modules import their heavy libraries (torch, timm, MLflow, ...) inside the commands that use them, so
``predict`` and ``serve-bench`` run in the serving image, which has none of them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from deepfake_mlc import __version__
from deepfake_mlc.cli import (
    bench_commands,
    calibrate_commands,
    data_commands,
    evaluate_commands,
    explain_commands,
    export_commands,
    model_commands,
    predict_commands,
    report_commands,
    serve_commands,
    train_commands,
    tune_commands,
)
from deepfake_mlc.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepfake-mlc",
        description="Multi-label deepfake classification: data, training, search, export, benchmarks.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    data_commands.register(commands)
    model_commands.register(commands)
    train_commands.register(commands)
    evaluate_commands.register(commands)
    calibrate_commands.register(commands)
    report_commands.register(commands)
    tune_commands.register(commands)
    export_commands.register(commands)
    predict_commands.register(commands)
    explain_commands.register(commands)
    bench_commands.register(commands)
    serve_commands.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.verbose:  # Accelerate and MLflow narrate every checkpoint save at INFO
        for name in ("accelerate", "mlflow"):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # a training stopped by SIGTERM/SIGINT says where it saved and how to go on
        print(str(err) or "interrupted", file=sys.stderr)
        return getattr(err, "exit_status", 130)


def run() -> None:
    """Console-script entry (``deepfake-mlc``)."""
    sys.exit(main())
