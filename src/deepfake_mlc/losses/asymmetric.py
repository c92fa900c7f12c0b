"""Asymmetric Loss (Ridnik et al., ICCV 2021), equal in value and gradient to the authors' reference.

Negatives are down-weighted twice: their probability is shifted by ``clip`` (easy negatives with
p < clip contribute nothing) and focused with ``gamma_neg``; positives are focused with ``gamma_pos``.
As in the reference, the focusing weights are computed without gradient.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Reduction = Literal["sum", "mean", "none"]


class AsymmetricLoss(nn.Module):
    """ASL on logits ``[n, C]`` and 0/1 targets.

    ``reduction="sum"`` returns minus the sum over batch and labels (the reference's value);
    ``"mean"`` divides that by the batch size; ``"none"`` returns the ``[n, C]`` terms.
    """

    def __init__(
        self,
        gamma_neg: float = 4.0,
        gamma_pos: float = 0.0,
        clip: float = 0.05,
        eps: float = 1e-8,
        reduction: Reduction = "sum",
    ) -> None:
        super().__init__()
        if reduction not in ("sum", "mean", "none"):
            raise ValueError(f"reduction must be 'sum', 'mean' or 'none', not {reduction!r}")
        self.gamma_neg, self.gamma_pos, self.clip, self.eps = gamma_neg, gamma_pos, clip, eps
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = targets.to(logits.dtype)
        p = torch.sigmoid(logits)
        p_neg = 1 - p
        if self.clip > 0:
            p_neg = (p_neg + self.clip).clamp(max=1)
        loss = targets * torch.log(p.clamp(min=self.eps)) + (1 - targets) * torch.log(p_neg.clamp(min=self.eps))
        if self.gamma_neg > 0 or self.gamma_pos > 0:
            with torch.no_grad():
                pt = p * targets + p_neg * (1 - targets)
                gamma = self.gamma_pos * targets + self.gamma_neg * (1 - targets)
                weight = torch.pow(1 - pt, gamma)
            loss = loss * weight
        if self.reduction == "none":
            return -loss
        total = -loss.sum()
        return total / logits.shape[0] if self.reduction == "mean" else total

    def extra_repr(self) -> str:
        return (
            f"gamma_neg={self.gamma_neg}, gamma_pos={self.gamma_pos}, clip={self.clip}, eps={self.eps}, "
            f"reduction={self.reduction!r}"
        )
