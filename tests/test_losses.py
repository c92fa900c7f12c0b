"""ASL equals the reference formula in value and gradient; the loss registry builds what configs name."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from deepfake_mlc.config.schema import LossConfig
from deepfake_mlc.losses import AsymmetricLoss, build_loss

LOGITS = torch.tensor([[2.0, -1.0, 0.3, -3.0], [-0.5, 1.5, -2.2, 0.0], [0.0, -0.1, 4.0, -4.0]])
TARGETS = torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 1]])


def plain_asl(logit: float, y: float, gneg: float, gpos: float, clip: float) -> tuple[float, float]:
    """Value and d/dlogit of one ASL term, focusing weight held constant (as the reference does)."""
    p = 1 / (1 + math.exp(-logit))
    if y == 1:
        w = (1 - p) ** gpos
        return -w * math.log(p), -w * (1 - p)
    pm = max(p - clip, 0.0)
    w = pm**gneg
    value = -w * math.log(1 - pm)
    grad = w * p * (1 - p) / (1 - p + clip) if p > clip else 0.0
    return value, grad


@pytest.mark.parametrize(("gneg", "gpos", "clip"), [(4, 0, 0.05), (2, 1, 0.0), (3, 0, 0.2)])
def test_asl_value_and_gradient_match_the_formula(gneg: float, gpos: float, clip: float) -> None:
    logits = LOGITS.clone().requires_grad_(True)
    loss = AsymmetricLoss(gamma_neg=gneg, gamma_pos=gpos, clip=clip)(logits, TARGETS)
    loss.backward()
    terms = [
        [plain_asl(x, y, gneg, gpos, clip) for x, y in zip(row_x, row_y, strict=True)]
        for row_x, row_y in zip(LOGITS.tolist(), TARGETS.tolist(), strict=True)
    ]
    assert loss.item() == pytest.approx(sum(v for row in terms for v, _ in row), rel=1e-5)
    expected_grad = torch.tensor([[g for _, g in row] for row in terms])
    torch.testing.assert_close(logits.grad, expected_grad, rtol=1e-5, atol=1e-7)


def test_asl_reductions_and_bce_limit() -> None:
    total = AsymmetricLoss()(LOGITS, TARGETS)
    assert AsymmetricLoss(reduction="mean")(LOGITS, TARGETS).item() == pytest.approx(total.item() / 3)
    assert AsymmetricLoss(reduction="none")(LOGITS, TARGETS).sum().item() == pytest.approx(total.item())
    plain = AsymmetricLoss(gamma_neg=0, gamma_pos=0, clip=0)(LOGITS, TARGETS)
    bce = nn.functional.binary_cross_entropy_with_logits(LOGITS, TARGETS, reduction="sum")
    assert plain.item() == pytest.approx(bce.item(), rel=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        AsymmetricLoss(reduction="max")


def test_registry_builds_each_loss() -> None:
    asl = build_loss(LossConfig(name="asl", gamma_neg=3, clip=0.1))
    assert isinstance(asl, AsymmetricLoss) and asl.reduction == "sum" and asl.gamma_neg == 3
    assert isinstance(build_loss(LossConfig(name="bce")), nn.BCEWithLogitsLoss)
    mlsm = build_loss(LossConfig(name="multilabel_soft_margin", reduction="sum"))
    assert isinstance(mlsm, nn.MultiLabelSoftMarginLoss) and mlsm.reduction == "sum"
