"""Metrics against scikit-learn and hand-worked examples of both conventions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score

from deepfake_mlc.metrics import MetricAccumulator, multilabel_metrics, per_label_ap

# label 2 has a positive but no predicted positive; label 3 has no positive but a predicted positive
TARGETS = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])
PROBS = np.array([[0.9, 0.5, 0.1, 0.8], [0.4, 0.6, 0.2, 0.1], [0.7, 0.3, 0.3, 0.1], [0.2, 0.5, 0.4, 0.1]])


def test_ap_matches_sklearn_on_untied_scores() -> None:
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 2, (300, 6))
    probs = np.clip(targets * 0.3 + rng.random((300, 6)) * 0.7, 0, 1)
    expected = [average_precision_score(targets[:, k], probs[:, k]) for k in range(6)]
    np.testing.assert_allclose(per_label_ap(probs, targets), expected, rtol=1e-12)
    assert multilabel_metrics(probs, targets)["mAP"] == pytest.approx(100 * np.mean(expected))


def test_asl_convention_matches_sklearn_where_defined() -> None:
    rng = np.random.default_rng(1)
    targets = rng.integers(0, 2, (200, 5))
    probs = np.clip(targets * 0.4 + rng.random((200, 5)) * 0.6, 0, 1)
    pred = (probs > 0.5).astype(int)
    m = multilabel_metrics(torch.tensor(probs), torch.tensor(targets))
    assert m["CP"] == pytest.approx(100 * precision_score(targets, pred, average="macro", zero_division=0))
    assert m["CR"] == pytest.approx(100 * recall_score(targets, pred, average="macro", zero_division=0))
    assert m["CF1"] == pytest.approx(100 * f1_score(targets, pred, average="macro", zero_division=0))
    assert m["OP"] == pytest.approx(100 * precision_score(targets, pred, average="micro"))
    assert m["OR"] == pytest.approx(100 * recall_score(targets, pred, average="micro"))
    assert m["OF1"] == pytest.approx(100 * f1_score(targets, pred, average="micro"))


def test_hand_worked_asl() -> None:
    m = multilabel_metrics(PROBS, TARGETS, convention="asl")
    expected = {
        "mAP": (5 / 6 + 3 / 4 + 1 + 0) / 4,
        "CP": (1 / 2 + 1) / 4,
        "CR": (1 / 2 + 1 / 2) / 4,
        "CF1": (1 / 2 + 2 / 3) / 4,
        "OP": 2 / 4,
        "OR": 2 / 5,
        "OF1": 2 * 0.5 * 0.4 / 0.9,
    }
    assert m == pytest.approx({k: 100 * v for k, v in expected.items()})


def test_hand_worked_mlgcn() -> None:
    m = multilabel_metrics(PROBS, TARGETS, convention="mlgcn")
    cp, cr = (1 / 2 + 1 / 3) / 4, (1 / 2 + 1 / 2) / 4
    op, orec = 2 / 7, 2 / 5  # label 2 counts one predicted positive; 0.5 >= 0.5 counts
    expected = {
        "mAP": (5 / 6 + 3 / 4 + 1 + 0) / 4,
        "CP": cp,
        "CR": cr,
        "CF1": 2 * cp * cr / (cp + cr),
        "OP": op,
        "OR": orec,
        "OF1": 2 * op * orec / (op + orec),
    }
    assert m == pytest.approx({k: 100 * v for k, v in expected.items()})


def test_ties_rank_in_input_order_and_no_positive_gives_zero() -> None:
    assert per_label_ap([[0.5], [0.5]], [[0], [1]])[0] == pytest.approx(0.5)
    assert per_label_ap([[0.5], [0.5]], [[1], [0]])[0] == pytest.approx(1.0)
    assert per_label_ap([[0.9], [0.1]], [[0], [0]])[0] == 0.0


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"\[n, C\]"):
        multilabel_metrics(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="0/1"):
        multilabel_metrics(np.zeros((2, 2)), np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="convention"):
        multilabel_metrics(PROBS, TARGETS, convention="coco")


def test_accumulator_equals_one_shot_computation() -> None:
    acc = MetricAccumulator()
    for start in range(0, 4, 3):
        acc.update(torch.tensor(PROBS[start : start + 3]), torch.tensor(TARGETS[start : start + 3]))
    assert len(acc) == 4
    assert acc.compute(convention="mlgcn") == multilabel_metrics(PROBS, TARGETS, convention="mlgcn")
    with pytest.raises(ValueError, match="no predictions"):
        MetricAccumulator().compute()


def test_auc_matches_sklearn_with_ties() -> None:
    from sklearn.metrics import roc_auc_score

    from deepfake_mlc.metrics import binary_auc

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.random(200) * 0.5 + labels * 0.3, 1)  # many ties
    assert binary_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    assert np.isnan(binary_auc([0.1, 0.2], [1, 1]))


def test_detection_metrics_and_confusion_hand_worked() -> None:
    from deepfake_mlc.metrics import confusion_counts, detection_metrics

    m = detection_metrics(PROBS, TARGETS)
    # predicted sets (p > 0.5): {0,3}, {1}, {0}, {} ; true: {0}, {0,1}, {1}, {2}: none exact
    assert m["subset_accuracy"] == 0.0
    # fake truth: all four images fake; called fake: images 0, 1, 2 -> 3 of 4 right
    assert m["fake_accuracy"] == 75.0
    assert np.isnan(m["fake_auc"])  # no real image: AUC undefined
    np.testing.assert_array_equal(confusion_counts(PROBS, TARGETS)[0], [1, 1, 1, 1])  # label 0: TP FP FN TN
