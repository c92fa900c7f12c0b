"""``deepfake-mlc train``: the same loop under ``python``, ``deepfake-mlc`` or ``accelerate launch``."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepfake_mlc.cli.options import add_overrides
from deepfake_mlc.config import Config, load_config
from deepfake_mlc.errors import ConfigError


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train a model (run it under 'accelerate launch' for DDP and mixed precision)",
        description="Train with Accelerate: one CPU, one GPU, many GPUs or many machines, unchanged. "
        "Examples: deepfake-mlc train --config configs/quickstart.yaml; "
        "accelerate launch --multi_gpu --num_processes 8 train --config configs/paper/resnet50_asl.yaml",
    )
    train.add_argument("--config", type=Path, help="run config YAML (required unless --resume)")
    add_overrides(train, "train.lr=3e-4")
    train.add_argument(
        "--cpu",
        action="store_true",
        help="train on the CPU even if a GPU is present "
        "(for CPU DDP: ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N ...)",
    )
    train.add_argument(
        "--resume", type=Path, metavar="RUN_DIR", help="continue a run exactly where its last saved state left it"
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from deepfake_mlc.engine import resume, train  # torch/accelerate are imported only when training
    from deepfake_mlc.tune.handoff import reporter_from_env  # set when a search runs this as a trial

    hook, show_progress = reporter_from_env(), not args.no_progress
    if args.resume is not None:
        if args.config is not None or args.overrides:
            raise ConfigError("--resume continues with the run's own config: leave out --config and --set")
        result = resume(args.resume, args.cpu, show_progress, hook)
    elif args.config is None:
        raise ConfigError("train needs --config FILE (or --resume RUN_DIR)")
    else:
        result = train(load_config(Config, args.config, args.overrides), args.cpu, show_progress, hook)
    return 0 if result.best_epoch > 0 else 1
