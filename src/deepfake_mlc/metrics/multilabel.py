"""The paper's multi-label metrics: mAP and the per-class (CP, CR, CF1) / overall (OP, OR, OF1) scores.

Two conventions are implemented because the published numbers come from two code bases:

* ``"asl"`` (ASL's evaluation, which the paper cites): a label is predicted when ``prob > threshold``;
  a label with no true positive has per-label precision, recall and F1 of 0; CP, CR and CF1 are means
  of the per-label values (CF1 is the mean per-label F1).
* ``"mlgcn"`` (ML-GCN's evaluation): predicted when ``prob >= threshold``; a label with no predicted
  positive counts one predicted positive (its precision is 0); CF1 = 2·CP·CR / (CP + CR).

AP is the non-interpolated average precision: the mean, over the positives, of the precision at their
rank, ranking by descending score with a stable sort (ties keep input order). A label without
positives has AP 0 in both conventions. All values are percentages, like the paper's tables.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

Convention = Literal["asl", "mlgcn"]
METRIC_NAMES = ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1")


def _as_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    torch = sys.modules.get("torch")  # a tensor exists only once torch is imported: the serving image has none
    if torch is not None and isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _check(probs: np.ndarray, targets: np.ndarray) -> None:
    if probs.ndim != 2 or probs.shape != targets.shape:
        raise ValueError(f"probs and targets must both be [n, C]; got {probs.shape} and {targets.shape}")
    if not np.isin(targets, (0, 1)).all():
        raise ValueError("targets must be 0/1")


def per_label_ap(probs: np.ndarray | torch.Tensor, targets: np.ndarray | torch.Tensor) -> np.ndarray:
    """Average precision of each label, in [0, 1] (not percent)."""
    p, t = _as_numpy(probs), _as_numpy(targets)
    _check(p, t)
    ap = np.zeros(p.shape[1])
    for k in range(p.shape[1]):
        order = np.argsort(-p[:, k], kind="stable")
        hits = t[order, k]
        positives = hits.sum()
        if positives == 0:
            continue
        precision_at_rank = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        ap[k] = float((precision_at_rank * hits).sum() / positives)
    return ap


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b != 0)


def multilabel_metrics(
    probs: np.ndarray | torch.Tensor,
    targets: np.ndarray | torch.Tensor,
    threshold: float = 0.5,
    convention: Convention = "asl",
) -> dict[str, float]:
    """``mAP, CP, CR, CF1, OP, OR, OF1`` in percent, for sigmoid outputs ``probs`` [n, C] and 0/1 targets."""
    p, t = _as_numpy(probs), _as_numpy(targets)
    _check(p, t)
    if convention == "asl":
        predicted = p > threshold
    elif convention == "mlgcn":
        predicted = p >= threshold
    else:
        raise ValueError(f"convention must be 'asl' or 'mlgcn', not {convention!r}")
    tp = (predicted * t).sum(axis=0)
    n_pred = predicted.sum(axis=0).astype(np.float64)
    n_true = t.sum(axis=0)
    if convention == "mlgcn":
        n_pred[n_pred == 0] = 1
    precision, recall = _safe_div(tp, n_pred), _safe_div(tp, n_true)
    cp, cr = precision.mean(), recall.mean()
    op, orec = _safe_div(tp.sum(), n_pred.sum()), _safe_div(tp.sum(), n_true.sum())
    if convention == "asl":
        cf1 = _safe_div(2 * precision * recall, precision + recall).mean()
    else:
        cf1 = _safe_div(2 * cp * cr, cp + cr)
    of1 = _safe_div(2 * op * orec, op + orec)
    values = (per_label_ap(p, t).mean(), cp, cr, cf1, op, orec, of1)
    return {name: 100.0 * float(v) for name, v in zip(METRIC_NAMES, values, strict=True)}


def summarize(
    probs: np.ndarray | torch.Tensor,
    targets: np.ndarray | torch.Tensor,
    label_names: Sequence[str],
    threshold: float | np.ndarray,
    convention: Convention,
) -> dict[str, Any]:
    """The paper's seven metrics plus per-label AP, keyed for logging (``AP/<label>``)."""
    metrics: dict[str, Any] = multilabel_metrics(probs, targets, threshold, convention)
    for name, ap in zip(label_names, per_label_ap(probs, targets), strict=True):
        metrics[f"AP/{name}"] = 100.0 * float(ap)
    return metrics


class MetricAccumulator:
    """Collects per-image outputs (probabilities, or logits) and targets over an evaluation.

    In a distributed run, feed it what ``accelerator.gather_for_metrics((probs, targets))`` returns:
    every process then holds every image exactly once (the padding of the last batch is dropped).
    """

    def __init__(self) -> None:
        self._probs: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []

    def update(self, probs: torch.Tensor, targets: torch.Tensor) -> None:
        self._probs.append(probs.detach().float().cpu())
        self._targets.append(targets.detach().float().cpu())

    def __len__(self) -> int:
        return sum(len(p) for p in self._probs)

    def state(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All ``(probs, targets)`` so far, each ``[n, C]``."""
        import torch  # only training and evaluation accumulate tensors

        if not self._probs:
            raise ValueError("no predictions were accumulated")
        return torch.cat(self._probs), torch.cat(self._targets)

    def compute(self, threshold: float = 0.5, convention: Convention = "asl") -> dict[str, float]:
        probs, targets = self.state()
        return multilabel_metrics(probs, targets, threshold, convention)


def binary_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC by the rank statistic (ties get average ranks); NaN when only one class is present."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2  # average of ranks start+1 .. end
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def detection_metrics(
    probs: np.ndarray | torch.Tensor, targets: np.ndarray | torch.Tensor, threshold: float | np.ndarray = 0.5
) -> dict[str, float]:
    """Beyond the paper: exact label-set accuracy, and the binary real-vs-fake view of the same outputs.

    An image is called fake when any label fires (``prob > threshold``, one threshold or one per label); its
    fake score, for the AUC, is its highest label probability. Values in percent, so they compare with binary
    deepfake detectors.
    """
    p, t = _as_numpy(probs), _as_numpy(targets)
    _check(p, t)
    predicted = p > threshold
    fake, called_fake = t.any(axis=1), predicted.any(axis=1)
    return {
        "subset_accuracy": 100.0 * float((predicted == t.astype(bool)).all(axis=1).mean()),
        "fake_accuracy": 100.0 * float((fake == called_fake).mean()),
        "fake_auc": 100.0 * binary_auc(p.max(axis=1), fake),
    }


def confusion_counts(
    probs: np.ndarray | torch.Tensor, targets: np.ndarray | torch.Tensor, threshold: float = 0.5
) -> np.ndarray:
    """Per-label ``[TP, FP, FN, TN]`` counts, ``[C, 4]``."""
    p, t = _as_numpy(probs), _as_numpy(targets).astype(bool)
    _check(p, t)
    pred = p > threshold
    return np.stack([(pred & t).sum(0), (pred & ~t).sum(0), (~pred & t).sum(0), (~pred & ~t).sum(0)], axis=1)
