"""The label graph of ML-GCN and the graph layers the indirect methods stack on it.

``label_adjacency`` builds the static, re-weighted co-occurrence matrix exactly as the public ML-GCN
code (``util.gen_A``) does; ``normalize_adjacency`` is its propagation matrix (``util.gen_adj``).

The two re-weightings differ (see ``docs/methods/graph-heads.md``):

* ``"code"`` (default, what the released models used): ``A = A * p / (A.sum(0) + 1e-6) + I``:
  every column of the binarised matrix is scaled to sum to ``p`` and the diagonal is 1.
* ``"paper"``: Eq. 8 of the CVPR paper as corrected by its authors: off-diagonal entries
  ``p * A_ij / sum_i A_ij`` (column sums) and a diagonal of ``1 - p``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

Reweight = Literal["code", "paper"]


def label_adjacency(
    cooccurrence: np.ndarray,
    label_counts: np.ndarray,
    t: float = 0.4,
    p: float = 0.25,
    reweight: Reweight = "code",
) -> np.ndarray:
    """Re-weighted binary co-occurrence graph from training-set counts.

    ``cooccurrence[i, j]``: images with labels i and j (diagonal ignored); ``label_counts[i]``: images
    with label i. ``P(j | i) = M[i, j] / N[i]`` (0 for a label never seen), binarised at ``t``.
    """
    m = np.asarray(cooccurrence, dtype=np.float64).copy()
    n = np.asarray(label_counts, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or n.shape != (m.shape[0],):
        raise ValueError(f"cooccurrence must be [N, N] and label_counts [N]; got {m.shape} and {n.shape}")
    np.fill_diagonal(m, 0)
    conditional = np.divide(m, n[:, None], out=np.zeros_like(m), where=n[:, None] > 0)
    binary = (conditional >= t).astype(np.float64)
    if reweight == "code":
        return binary * p / (binary.sum(axis=0, keepdims=True) + 1e-6) + np.identity(len(n))
    if reweight == "paper":
        scaled = np.divide(
            p * binary,
            binary.sum(axis=0, keepdims=True),
            out=np.zeros_like(binary),
            where=binary.sum(axis=0, keepdims=True) > 0,
        )
        return scaled + (1 - p) * np.identity(len(n))
    raise ValueError(f"reweight must be 'code' or 'paper', not {reweight!r}")


def normalize_adjacency(adjacency: torch.Tensor) -> torch.Tensor:
    """ML-GCN's propagation matrix ``D · Aᵀ · D`` with ``D = diag(row sums of A)^(-1/2)``."""
    d = torch.diag(adjacency.sum(dim=1).pow(-0.5))
    return d @ adjacency.t() @ d


class GraphConvolution(nn.Module):
    """``Â · H · W`` without bias, as in ML-GCN (one weight matrix per layer)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        bound = 1.0 / out_features**0.5  # ML-GCN's uniform init
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, h: torch.Tensor, propagation: torch.Tensor) -> torch.Tensor:
        return propagation @ (h @ self.weight)


class AdaptiveGraphConvolution(nn.Module):
    """ML-AGCN layer (reconstruction, see docs/methods/graph-heads.md): static + attention + similarity graphs.

    ``H' = Â_s H W_s + A_att H W_a + A_sim H W_c`` where ``A_att`` is a GAT-style row-softmax over
    ``LeakyReLU(aᵀ[z_i ‖ z_j])`` with ``Z = H W_a``, and ``A_sim`` the symmetric-normalised, non-negative
    cosine similarity of the layer input (optionally the top-k per row). Three weight sets and the
    attention vector ``a`` give the parameter counts of the paper's ML-AGCN rows.
    """

    def __init__(
        self, in_features: int, out_features: int, negative_slope: float = 0.2, topk: int | None = None
    ) -> None:
        super().__init__()
        self.static = GraphConvolution(in_features, out_features)
        self.attention = GraphConvolution(in_features, out_features)
        self.similarity = GraphConvolution(in_features, out_features)
        self.attention_vector = nn.Parameter(torch.empty(2 * out_features))
        nn.init.uniform_(self.attention_vector, -1.0 / out_features**0.5, 1.0 / out_features**0.5)
        self.negative_slope, self.topk = negative_slope, topk

    def attention_matrix(self, h: torch.Tensor) -> torch.Tensor:
        z = h @ self.attention.weight
        half = z.shape[1]
        scores = (z @ self.attention_vector[:half])[:, None] + (z @ self.attention_vector[half:])[None, :]
        return torch.softmax(F.leaky_relu(scores, self.negative_slope), dim=1)

    def similarity_matrix(self, h: torch.Tensor) -> torch.Tensor:
        unit = F.normalize(h, dim=1)
        sim = (unit @ unit.t()).clamp(min=0)
        if self.topk is not None and self.topk < sim.shape[0]:
            kth = sim.topk(self.topk, dim=1).values[:, -1:]
            sim = torch.where(sim >= kth, sim, torch.zeros_like(sim))
        d = torch.diag(sim.sum(dim=1).clamp(min=1e-12).pow(-0.5))
        return d @ sim @ d

    def forward(self, h: torch.Tensor, propagation: torch.Tensor) -> torch.Tensor:
        return (
            self.static(h, propagation)
            + self.attention_matrix(h) @ (h @ self.attention.weight)
            + self.similarity(h, self.similarity_matrix(h))
        )
