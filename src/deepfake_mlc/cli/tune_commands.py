"""``deepfake-mlc tune``: an Optuna study over any config keys, every trial an MLflow child run."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepfake_mlc.cli.options import add_overrides
from deepfake_mlc.config.loader import load_config
from deepfake_mlc.config.schema import Config


def register(commands: argparse._SubParsersAction) -> None:
    tune = commands.add_parser(
        "tune",
        help="search hyperparameters with Optuna (one MLflow parent run, a child run per trial)",
        description="Run (or join) an Optuna study. The same command started in several shells or on several "
        "machines with the same --study-name and --storage joins one study. Example: deepfake-mlc tune "
        "--config configs/quickstart.yaml --search configs/search/quickstart.yaml",
    )
    tune.add_argument("--config", type=Path, required=True, help="base run config YAML")
    tune.add_argument("--search", type=Path, required=True, help="search space YAML (configs/search/)")
    add_overrides(tune, "data.root=/data")
    tune.add_argument("--n-trials", type=int, help="trials in total over all workers (default: the search file's)")
    tune.add_argument("--timeout", type=float, help="seconds after which this worker starts no new trial")
    tune.add_argument("--study-name", help="study to create or join (default: the search file's name)")
    tune.add_argument(
        "--storage",
        help="study storage: sqlite:///FILE, journal:FILE or a SQLAlchemy URL such as postgresql+psycopg2://... "
        "(default: $OPTUNA_STORAGE, else a file under OUTPUT_DIR/tune/STUDY/: SQLite for one worker, "
        "a journal file for --workers N)",
    )
    tune.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1)")
    tune.add_argument(
        "--launch",
        metavar="COMMAND",
        help="run each trial as a subprocess under COMMAND, e.g. 'accelerate launch --num_processes 4' (DDP)",
    )
    tune.add_argument("--cpu", action="store_true", help="train on the CPU even if a GPU is present")
    tune.add_argument("--no-progress", action="store_true", help="no progress bars")
    tune.set_defaults(func=run_tune)


def run_tune(args: argparse.Namespace) -> int:
    from deepfake_mlc.errors import ConfigError
    from deepfake_mlc.tune import TuneOptions, load_search, run_study

    base = load_config(Config, args.config, args.overrides)
    search = load_search(args.search, base)
    for flag, value in (("--n-trials", args.n_trials), ("--workers", args.workers)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be at least 1 (got {value})")
    options = TuneOptions(
        base=base,
        search=search,
        study_name=args.study_name or args.search.stem,
        n_trials=args.n_trials or search.n_trials,
        timeout=args.timeout if args.timeout is not None else search.timeout,
        storage=args.storage,
        workers=args.workers,
        launch=args.launch,
        cpu=args.cpu,
        show_progress=not args.no_progress,
    )
    result = run_study(options)
    return 0 if result.best else 1
