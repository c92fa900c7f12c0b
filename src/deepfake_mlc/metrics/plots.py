"""Figures of a run and of the paper-style comparisons, written as PNG files.

Figures are built on :class:`matplotlib.figure.Figure` directly (drawn by the Agg canvas) rather
than through ``pyplot``: nothing touches the global backend or figure registry, so plotting works
headless, in threads and in notebooks alike, and no figure outlives its function.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from deepfake_mlc.metrics.calibration import ECE_BINS, expected_calibration_error, reliability_bins
from deepfake_mlc.metrics.multilabel import _as_numpy, _check, per_label_ap

if TYPE_CHECKING:
    import torch

DPI = 120
HATCH = "///"


def pr_curve(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at every distinct score threshold of one label.

    The points and their order are scikit-learn's ``precision_recall_curve(drop_intermediate=False)``:
    thresholds ascending, then a final point at recall 0, precision 1. Without positives recall is 0.
    """
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    scores, hits = scores[order], targets[order]
    last_of_each_score = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tp = np.cumsum(hits)[last_of_each_score]
    predicted = last_of_each_score + 1.0
    precision = tp / predicted
    recall = tp / tp[-1] if tp[-1] > 0 else np.zeros_like(tp)
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0]


def save_figure(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG a person can read (the folder made if needed); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def plot_pr_curves(
    probs: np.ndarray | torch.Tensor,
    targets: np.ndarray | torch.Tensor,
    label_names: Sequence[str],
    path: Path,
    title: str = "",
) -> Path:
    """One precision-recall curve per label, each label's AP in the legend (mAP as its title).

    A label without positives in ``targets`` has no curve; the legend still lists it, with AP 0.
    """
    p, t = _as_numpy(probs), _as_numpy(targets)
    _check(p, t)
    if len(label_names) != p.shape[1]:
        raise ValueError(f"{len(label_names)} label names for {p.shape[1]} labels")
    ap = per_label_ap(p, t)
    fig = Figure(figsize=(6.5, 6), layout="constrained")
    ax = fig.add_subplot()
    for k, name in enumerate(label_names):
        if t[:, k].any():
            precision, recall = pr_curve(p[:, k], t[:, k])
            ax.plot(recall, precision, drawstyle="steps-post", linewidth=1.6, label=f"{name} (AP {100 * ap[k]:.1f})")
        else:
            ax.plot([], [], linestyle="none", label=f"{name} (no positives)")
    ax.set(xlim=(0, 1.01), ylim=(0, 1.02), xlabel="Recall", ylabel="Precision", aspect="equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", title=f"mAP {100 * ap.mean():.1f}", fontsize="small", framealpha=0.9)
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def plot_reliability(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    label_names: Sequence[str],
    path: Path,
    title: str = "",
    bins: int = ECE_BINS,
) -> Path:
    """Reliability diagrams: one panel per label and one of all labels pooled, each curve's ECE in the legend.

    ``curves`` maps a name (``"uncalibrated"``, ``"calibrated"``) to ``(probs, targets)``, each [n, C].
    A point is one equal-mass bin: its mean probability against the share of its images that are
    positive; a calibrated model's points lie on the diagonal.
    """
    if not curves:
        raise ValueError("no curves to plot")
    data = {}
    for name, (probs, targets) in curves.items():
        p, t = _as_numpy(probs), _as_numpy(targets)
        _check(p, t)
        if len(label_names) != p.shape[1]:
            raise ValueError(f"{len(label_names)} label names for {p.shape[1]} labels in {name!r}")
        data[name] = (p, t)
    panels = [(name, k) for k, name in enumerate(label_names)] + [("all labels", None)]
    ncols = min(3, int(np.ceil(np.sqrt(len(panels)))))
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(3.6 * ncols, 3.6 * nrows + 0.4), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (panel, k) in zip(axes, panels, strict=False):
        ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1)
        for name, (p, t) in data.items():
            scores, hits = (p.ravel(), t.ravel()) if k is None else (p[:, k], t[:, k])
            confidence, frequency, _ = reliability_bins(scores, hits, bins)
            ece = expected_calibration_error(scores, hits, bins)
            ax.plot(
                confidence,
                frequency,
                marker="o",
                markersize=3.5,
                linewidth=1.4,
                clip_on=False,
                label=f"{name} (ECE {ece:.3f})",
            )
        ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal", title=panel)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize="x-small", framealpha=0.9)
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    fig.supxlabel("predicted probability")
    fig.supylabel("observed frequency")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_grouped_bars(
    groups: Mapping[str, Mapping[str, float]],
    path: Path,
    title: str = "",
    ylabel: str = "%",
    hatched: Collection[str] = (),
    *,
    value_labels: bool = False,
    ylim: tuple[float, float] | None = None,
) -> Path:
    """Bars grouped by metric (x axis), one bar per method, like the paper's Fig. 2 and 3.

    ``groups`` maps a metric to ``{method: value}``; methods keep their first-seen order and a method
    missing from a group leaves a gap. Methods in ``hatched`` (the paper's indirect methods) are
    drawn hatched. ``ylim`` zooms in when all values are close (e.g. ``(80, 100)``).
    """
    methods = list(dict.fromkeys(m for values in groups.values() for m in values))
    if not methods:
        raise ValueError("no values to plot")
    n_groups, n_methods = len(groups), len(methods)
    width = 0.8 / n_methods
    x = np.arange(n_groups)
    fig = Figure(figsize=(max(6.0, 1.5 + 0.3 * n_groups * n_methods), 4.5), layout="constrained")
    ax = fig.add_subplot()
    palette = [f"C{i % 10}" for i in range(n_methods)]
    for i, method in enumerate(methods):
        heights = [values.get(method, np.nan) for values in groups.values()]
        bars = ax.bar(
            x + (i - (n_methods - 1) / 2) * width,
            heights,
            width,
            label=method,
            color=palette[i],
            edgecolor="black",
            linewidth=0.6,
            hatch=HATCH if method in hatched else None,
            zorder=2,
        )
        if value_labels:
            ax.bar_label(bars, fmt="%.1f", fontsize="x-small", rotation=90, padding=2)
    ax.set_xticks(x, list(groups))
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    elif value_labels:
        ax.margins(y=0.12)
    ax.grid(axis="y", alpha=0.3, zorder=0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", frameon=False)
    if title:
        ax.set_title(title)
    return save_figure(fig, path)
