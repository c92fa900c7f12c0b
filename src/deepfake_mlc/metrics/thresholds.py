"""Per-label decision thresholds, fitted on validation data by a policy the user chooses.

One threshold for every label (0.5) is rarely right: labels differ in frequency and in how confident
the model is about them, and users differ in what a wrong call costs them. A policy says what to aim
for: ``f1`` (the best F1 per label), ``fpr:X`` (at most a fraction X of untouched images flagged) or
``precision:X`` (at least a fraction X of a label's alarms right). A label fires when ``p > threshold``,
as in the metrics' default convention; every threshold lies midway between two distinct validation
scores, so no decision hinges on float rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from deepfake_mlc.errors import ConfigError, DatasetError
from deepfake_mlc.metrics.multilabel import _check

PolicyKind = Literal["f1", "fpr", "precision"]
POLICY_HELP = "f1, fpr:X or precision:X with 0 < X < 1"
_KINDS: tuple[PolicyKind, ...] = ("f1", "fpr", "precision")


def best_f1_thresholds(probs: np.ndarray, targets: np.ndarray, default: float) -> np.ndarray:
    """For each label, the threshold whose decisions ``p > t`` reach the highest F1.

    Candidates lie midway between consecutive distinct scores (a threshold on a score would make the
    decision hinge on float rounding); among equally good ones the highest wins (fewest false alarms).
    A label without positives in the data keeps ``default``.
    """
    thresholds = np.full(probs.shape[1], default, dtype=np.float64)
    for label in range(probs.shape[1]):
        positives = targets[:, label].sum()
        if positives == 0:
            continue
        order = np.argsort(-probs[:, label], kind="stable")
        scores, hits = probs[order, label].astype(np.float64), targets[order, label]
        predicted = np.arange(1, len(scores) + 1)  # firing on the top k images, k = 1..n
        f1 = 2 * np.cumsum(hits) / (predicted + positives)
        is_cut = np.append(scores[1:] < scores[:-1], True)  # images with equal scores fire together
        best = int(np.argmax(np.where(is_cut, f1, -1.0)))
        below = scores[best + 1] if best + 1 < len(scores) else 0.0
        thresholds[label] = (scores[best] + below) / 2
    return thresholds


@dataclass(frozen=True)
class ThresholdPolicy:
    """How thresholds are chosen: ``f1``, or ``fpr`` / ``precision`` with a target X, 0 < X < 1."""

    kind: PolicyKind
    target: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ConfigError(f"unknown threshold policy {self.kind!r} (one of {POLICY_HELP})")
        if self.kind == "f1" and self.target is not None:
            raise ConfigError(f"threshold policy 'f1:{self.target:g}': f1 takes no value (one of {POLICY_HELP})")
        if self.kind != "f1" and self.target is None:
            raise ConfigError(f"threshold policy {self.kind!r} needs a value, {self.kind}:X (one of {POLICY_HELP})")
        if self.target is not None and not 0 < self.target < 1:
            raise ConfigError(f"threshold policy '{self}': X must lie strictly between 0 and 1 (one of {POLICY_HELP})")

    def __str__(self) -> str:
        return self.kind if self.target is None else f"{self.kind}:{self.target!r}"  # repr: every digit fitted


def parse_policy(text: str) -> ThresholdPolicy:
    """``f1``, ``fpr:0.05`` or ``precision:0.9`` as a policy; :class:`ConfigError` names the allowed values."""
    kind, colon, value = text.strip().partition(":")
    if kind not in _KINDS:
        raise ConfigError(f"unknown threshold policy {text!r} (one of {POLICY_HELP})")
    if not colon:
        return ThresholdPolicy(kind)
    try:
        target = float(value)
    except ValueError:
        raise ConfigError(f"threshold policy {text!r}: X must be a number (one of {POLICY_HELP})") from None
    return ThresholdPolicy(kind, target)


@dataclass(frozen=True, eq=False)
class FittedThresholds:
    """The thresholds a policy chose, ``[C]``, and the labels whose target it could not reach.

    Only ``precision:X`` can miss: no cut of a label may reach precision X on the validation data;
    that label then gets the cut of highest precision, and its index is in ``unreached``.
    """

    thresholds: np.ndarray
    unreached: tuple[int, ...] = ()


def originals_mask(targets: np.ndarray) -> np.ndarray:
    """The rows of ``targets`` [n, C] that are originals: images with no manipulation at all."""
    return ~np.asarray(targets).astype(bool).any(axis=1)


def _fpr_thresholds(probs: np.ndarray, targets: np.ndarray, policy: ThresholdPolicy) -> np.ndarray:
    originals = probs[originals_mask(targets)]
    if len(originals) == 0:
        raise DatasetError(
            f"{policy} needs originals (images with no manipulation) in the validation data; it has none"
        )
    n = len(originals)
    allowed = min(math.floor(policy.target * n + 1e-9), n - 1)  # how many originals may fire
    thresholds = np.empty(probs.shape[1])
    for label in range(probs.shape[1]):
        scores = np.sort(originals[:, label])[::-1]
        # firing on the top c originals is possible for c = 0 and where score c - 1 is above score c
        separates = np.r_[True, scores[:-1] > scores[1:]]
        fired = int(np.flatnonzero(separates[: allowed + 1])[-1])
        above = scores[fired - 1] if fired > 0 else 1.0
        thresholds[label] = (above + scores[fired]) / 2
    return thresholds


def _precision_thresholds(
    probs: np.ndarray, targets: np.ndarray, target: float, default: float
) -> tuple[np.ndarray, tuple[int, ...]]:
    thresholds = np.full(probs.shape[1], default, dtype=np.float64)
    unreached = []
    for label in range(probs.shape[1]):
        if targets[:, label].sum() == 0:
            continue
        order = np.argsort(-probs[:, label], kind="stable")
        scores, hits = probs[order, label], targets[order, label]
        precision = np.cumsum(hits) / np.arange(1, len(scores) + 1)  # firing on the top k images, k = 1..n
        is_cut = np.append(scores[1:] < scores[:-1], True)
        reaching = np.flatnonzero(is_cut & (precision >= target))
        if len(reaching):
            best = int(reaching[-1])  # the most images fire: the lowest threshold, the highest recall
        else:
            unreached.append(label)
            cut_precision = np.where(is_cut, precision, -1.0)
            best = int(np.flatnonzero(cut_precision == cut_precision.max())[-1])  # ties: the highest recall
        below = scores[best + 1] if best + 1 < len(scores) else 0.0
        thresholds[label] = (scores[best] + below) / 2
    return thresholds, tuple(unreached)


def fit_thresholds(
    policy: ThresholdPolicy, probs: np.ndarray, targets: np.ndarray, default: float = 0.5
) -> FittedThresholds:
    """Per-label thresholds for ``probs`` [n, C] that meet ``policy`` on these (validation) data.

    * ``f1``: :func:`best_f1_thresholds`.
    * ``fpr:X``: the lowest threshold at which at most a fraction X of the originals fire, the images
      without any manipulation (not merely the label's negatives: a face with its nose swapped is no
      false alarm for the eyes a user cares about, an untouched face is). Where tied scores straddle
      the allowed count, fewer fire, never more. :class:`DatasetError` when there are no originals.
    * ``precision:X``: the lowest threshold at which the label's precision is at least X.

    A label without positives keeps ``default`` under ``f1`` and ``precision:X``.
    """
    p, t = np.asarray(probs, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    _check(p, t)
    if policy.kind == "f1":
        return FittedThresholds(best_f1_thresholds(p, t, default))
    if policy.kind == "fpr":
        return FittedThresholds(_fpr_thresholds(p, t, policy))
    return FittedThresholds(*_precision_thresholds(p, t, policy.target, default))


def policy_outcome(
    probs: np.ndarray, targets: np.ndarray, thresholds: np.ndarray, label_names: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """What the thresholds do on ``probs`` [n, C], per label, as plain Python values for a report.

    ``fpr_originals`` is the share of originals that fire (None without originals); ``recall`` and
    ``precision`` are None where nothing defines them (no positives, nothing fires).
    """
    p, t = np.asarray(probs, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    _check(p, t)
    t = t.astype(bool)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.shape != (p.shape[1],) or len(label_names) != p.shape[1]:
        raise ValueError(f"{thresholds.size} thresholds and {len(label_names)} label names for {p.shape[1]} labels")
    fires = p > thresholds
    originals = originals_mask(t)
    n_originals = int(originals.sum())
    outcome = {}
    for k, name in enumerate(label_names):
        flagged = int(fires[originals, k].sum())
        positives, fired, hits = int(t[:, k].sum()), int(fires[:, k].sum()), int((fires[:, k] & t[:, k]).sum())
        outcome[name] = {
            "threshold": float(thresholds[k]),
            "fpr_originals": flagged / n_originals if n_originals else None,
            "recall": hits / positives if positives else None,
            "precision": hits / fired if fired else None,
            "flagged_originals": flagged,
            "originals": n_originals,
            "positives": positives,
        }
    return outcome
