"""The paper's metric table as a person reads it in a terminal (rich), without torch: the serving image prints it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table

from deepfake_mlc.metrics.multilabel import METRIC_NAMES


def metric_table(
    rows: Mapping[str, Mapping[str, Any]], title: str = "", params: Mapping[str, int] | None = None
) -> Table:
    """The paper's table layout: one row per model/run, mAP, CP, CR, CF1, OP, OR, OF1 and # params."""
    table = Table(title=title, title_justify="left")
    table.add_column("")
    if params:
        table.add_column("# Params (M)", justify="right")
    for name in METRIC_NAMES:
        table.add_column(name, justify="right")
    for name, metrics in rows.items():
        cells = [f"{metrics[m]:.1f}" if metrics.get(m) is not None else "" for m in METRIC_NAMES]
        table.add_row(name, *([f"{params[name] / 1e6:.1f}"] if params else []), *cells)
    return table
