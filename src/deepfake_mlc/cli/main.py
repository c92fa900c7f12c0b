"""``deepfake-mlc`` entry point: parses the sub-command and turns user errors into one line.

Errors a user can fix (a bad config value, a missing data set, a corrupt image) are printed as a single
``error: ...`` line with exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from deepfake_mlc import __version__
from deepfake_mlc.cli import data_commands, model_commands, train_commands, tune_commands
from deepfake_mlc.config.loader import ConfigError
from deepfake_mlc.data.base import CorruptImageError, DatasetError
from deepfake_mlc.engine.checkpoint import CheckpointError
from deepfake_mlc.models import EmbeddingError, WeightsError

USER_ERRORS = (
    ConfigError,
    DatasetError,
    CorruptImageError,
    CheckpointError,
    EmbeddingError,
    WeightsError,
    FileExistsError,
    FileNotFoundError,
    NotADirectoryError,
    PermissionError,
)
PLANNED = {"export": 6, "serve-bench": 6}


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
    train_commands.register_evaluate(commands)
    train_commands.register_report(commands)
    tune_commands.register(commands)
    for name, issue in PLANNED.items():
        planned = commands.add_parser(name, help=f"(not available yet: issue #{issue})", add_help=False)
        planned.add_argument("rest", nargs=argparse.REMAINDER)
        planned.set_defaults(func=lambda args, name=name, issue=issue: _planned(name, issue))
    return parser


def _planned(name: str, issue: int) -> int:
    print(
        f"error: deepfake-mlc {name} is not available in this version yet (tracked in issue #{issue})", file=sys.stderr
    )
    return 2


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
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def run() -> None:
    """Console-script entry (``deepfake-mlc``)."""
    sys.exit(main())
