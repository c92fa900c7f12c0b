"""Label statistics of a data set: per-label counts, sequence lengths and label co-occurrence.

The co-occurrence counts of the training split are what the graph methods (ML-GCN and successors)
build their label graph from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LabelStats:
    """Counts over ``num_images`` images with ``N`` labels."""

    label_names: tuple[str, ...]
    num_images: int
    counts: np.ndarray  # [N] images carrying each label
    cooccurrence: np.ndarray  # [N, N] images carrying both i and j; zero diagonal
    length_histogram: np.ndarray  # [N + 1] images carrying 0, 1, ..., N labels

    def conditional(self) -> np.ndarray:
        """P(j | i) = cooccurrence[i, j] / counts[i] (0 for a label never seen)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            p = self.cooccurrence / self.counts[:, None]
        return np.nan_to_num(p, nan=0.0, posinf=0.0)


def label_stats(targets: np.ndarray | Sequence[Sequence[int]], label_names: Sequence[str]) -> LabelStats:
    """Statistics of an ``[n, N]`` 0/1 target matrix."""
    t = np.asarray(targets, dtype=np.int64).reshape(-1, len(label_names))
    co = t.T @ t
    counts = np.diag(co).copy()
    np.fill_diagonal(co, 0)
    lengths = np.bincount(t.sum(axis=1), minlength=len(label_names) + 1)
    return LabelStats(tuple(label_names), int(t.shape[0]), counts, co, lengths)
