"""serve-bench's figure: median latency and throughput against batch size, one line per runtime.

Apart from the tables because it needs matplotlib, which the serving image leaves out.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

from deepfake_mlc.bench.load import SERVER
from deepfake_mlc.metrics.plots import save_figure


class PlainLogFormatter(LogFormatter):
    """Matplotlib's choice of which log-axis ticks to label, written as plain numbers (0.2, not 2e-01)."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:g}" if super().__call__(x, pos) else ""


def plot(result: Mapping[str, Any], path: Path) -> Path:
    """Median latency and throughput against batch size, one line per runtime, side by side."""
    ran = [row for row in result["rows"] if row["status"] == "ok" and row["runtime"] != SERVER]  # by batch size
    sizes = result["settings"]["batch_sizes"]
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    latency_ax, throughput_ax = fig.subplots(1, 2)
    for row in ran:
        label = f"{row['name']} ({row['precision']}, {row['device']})"
        xs = [s["batch_size"] for s in row["latency"]]
        latency_ax.plot(xs, [s["p50_ms"] for s in row["latency"]], marker="o", label=label)
        throughput_ax.plot(xs, [s["images_per_s"] for s in row["latency"]], marker="o", label=label)
    for ax, ylabel in ((latency_ax, "p50 latency per call (ms)"), (throughput_ax, "throughput (images/s)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(b) for b in sizes])
        ax.minorticks_off()
        ax.set_yscale("log")  # runtimes can be 100x apart (CPU against GPU, eager against int8)
        ax.yaxis.set_major_formatter(PlainLogFormatter())
        ax.yaxis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
        ax.set(xlabel="batch size", ylabel=ylabel)
        ax.grid(alpha=0.3)
    if ran:
        throughput_ax.legend(fontsize="small")
    fig.suptitle(f"serve-bench: {Path(result['model']['path']).name} on {result['machine']['cpu']}")
    return save_figure(fig, path)
