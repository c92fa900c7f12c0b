"""Command-line options shared by several sub-commands."""

from __future__ import annotations

import argparse


def add_overrides(parser: argparse.ArgumentParser, example: str = "train.lr=3e-4") -> None:
    """``--set KEY=VALUE`` (repeatable): dotted config overrides, collected in ``args.overrides``."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config key, e.g. --set {example} (repeatable)",
    )
