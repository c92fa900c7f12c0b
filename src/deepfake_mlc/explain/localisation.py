"""How well heatmaps point at the manipulation: scores against each label's mask, per label and overall.

* **Energy game** (Wang et al., Score-CAM, 2020): the share of the map's energy (sum of its values) inside
  the label's mask. 1 is a map entirely on the manipulated pixels.
* **Uniform baseline**: the mask's share of the image, what a flat map scores on the energy game. A map
  scores above it only by concentrating on the manipulation.
* **Pointing game** (Zhang et al., Excitation Backprop, 2016): whether the map's maximum lies in the mask.
  Where several pixels share the maximum, the share of them inside (a random pick's expected hit), so a flat
  map scores the uniform baseline here too instead of a hit or miss by scan order.

A label counts on an image only where it is present and its mask has pixels. An all-zero map says nothing,
and scores as a flat one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

METRICS = ("energy_game", "pointing_game", "uniform_baseline")
METRIC_TITLES = {"energy_game": "energy game", "pointing_game": "pointing game", "uniform_baseline": "uniform baseline"}


def scores(heatmap: np.ndarray, mask: np.ndarray) -> tuple[float, float, float]:
    """(energy game, pointing game, uniform baseline) of one [H, W] map in [0, 1] against one bool mask."""
    uniform = float(mask.mean())
    total = float(heatmap.sum())
    if total <= 0:
        return uniform, uniform, uniform
    peak = heatmap == heatmap.max()
    return float(heatmap[mask].sum()) / total, float(mask[peak].mean()), uniform


class Localisation:
    """Scores accumulated over images, per label; :meth:`report` sums them up."""

    def __init__(self, label_names: Sequence[str]) -> None:
        self.label_names = tuple(label_names)
        self._scores: list[list[tuple[float, float, float]]] = [[] for _ in self.label_names]

    def add(self, heatmaps: np.ndarray, masks: np.ndarray, present: np.ndarray) -> None:
        """One image: ``heatmaps`` [L, H, W] in [0, 1], ``masks`` bool [L, H, W] on the same grid, ``present`` [L]."""
        heatmaps, masks, present = np.asarray(heatmaps), np.asarray(masks, dtype=bool), np.asarray(present, dtype=bool)
        labels = len(self.label_names)
        if heatmaps.shape != masks.shape or heatmaps.shape[0] != labels or present.shape != (labels,):
            raise ValueError(
                f"heatmaps {heatmaps.shape}, masks {masks.shape} and present {present.shape} "
                f"do not fit {labels} labels on one grid"
            )
        for k in np.flatnonzero(present & masks.any(axis=(1, 2))):
            self._scores[k].append(scores(heatmaps[k], masks[k]))

    def report(self) -> dict[str, Any]:
        """``per_label``: each label's mean scores and ``images`` (None where it was never scored);
        ``mean_over_labels``: the labels' means averaged, each scored label weighing the same (``labels``);
        ``mean_over_instances``: every scored (image, label) pair weighing the same (``instances``)."""
        per_label = {
            name: {**_means(rows), "images": len(rows)}
            for name, rows in zip(self.label_names, self._scores, strict=True)
        }
        scored = [name for name, rows in zip(self.label_names, self._scores, strict=True) if rows]
        over_labels = {m: float(np.mean([per_label[n][m] for n in scored])) if scored else None for m in METRICS}
        instances = [row for rows in self._scores for row in rows]
        return {
            "per_label": per_label,
            "mean_over_labels": {**over_labels, "labels": len(scored)},
            "mean_over_instances": {**_means(instances), "instances": len(instances)},
        }


def _means(rows: Sequence[tuple[float, float, float]]) -> dict[str, float | None]:
    if not rows:
        return dict.fromkeys(METRICS)
    return dict(zip(METRICS, map(float, np.mean(rows, axis=0)), strict=True))


def plot_localisation(report: dict[str, Any], path: Path, title: str = "") -> Path:
    """Per label (and the mean over labels): energy game beside the uniform baseline as bars, pointing game as
    a marker. Labels never scored are left out."""
    from matplotlib.figure import Figure

    from deepfake_mlc.metrics.plots import HATCH, save_figure

    rows = {name: row for name, row in report["per_label"].items() if row["images"]}
    if report["mean_over_labels"]["labels"]:
        rows["mean over labels"] = report["mean_over_labels"]
    x = np.arange(len(rows))
    value = lambda metric: [row[metric] for row in rows.values()]  # noqa: E731
    fig = Figure(figsize=(1.2 * len(rows) + 2.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(x - 0.2, value("energy_game"), 0.4, label=METRIC_TITLES["energy_game"])
    ax.bar(x + 0.2, value("uniform_baseline"), 0.4, color="0.8", hatch=HATCH, label=METRIC_TITLES["uniform_baseline"])
    ax.plot(
        x, value("pointing_game"), "D", color="black", clip_on=False, zorder=3, label=METRIC_TITLES["pointing_game"]
    )
    ax.set_xticks(x, [f"{name}\n{row['images']} images" if "images" in row else name for name, row in rows.items()])
    ax.set(ylim=(0, 1.05), ylabel="share (energy) / hit rate (pointing)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper right", fontsize="small", framealpha=0.9)
    if title:
        ax.set_title(title)
    return save_figure(fig, path)
