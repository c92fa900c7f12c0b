"""Command-line options shared by several sub-commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any


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


def add_faces_option(parser: argparse.ArgumentParser) -> None:
    """``--faces auto|on|off``: how photos are cut before the model sees them (predict and explain alike)."""
    parser.add_argument(
        "--faces",
        choices=("auto", "on", "off"),
        default="auto",
        help="auto: find and cut faces as the model's training faces were cut (its face_crop), or take whole "
        "images if it was trained on them; on: always find faces (ffhq crop for a whole-image model); "
        "off: the whole image, resized (default: auto)",
    )


def report_unreadable(results: Sequence[Any], kind: str, done: str) -> int:
    """Each result that could not be read (``path``, ``error``) on stderr, and a count; the exit status: 1 if any."""
    failed = [r for r in results if r.error is not None]
    for result in failed:
        print(f"error: {result.path}: {result.error}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} of {len(results)} {kind} could not be read (the others were {done})", file=sys.stderr)
    return 1 if failed else 0


def positive(kind: type = int, zero_allowed: bool = False) -> Callable[[str], int | float]:
    """An argparse type that refuses negative (and, unless allowed, zero) counts and durations."""

    def parse(text: str) -> int | float:
        value = kind(text)
        if value < 0 or (value == 0 and not zero_allowed):
            raise argparse.ArgumentTypeError(f"must be {'>=' if zero_allowed else '>'} 0, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names it in "invalid int value: 'x'"
    return parse
