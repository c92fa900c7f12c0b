"""How far the model's probabilities are from observed frequencies, and temperature scaling to bring them closer.

A probability of 0.8 should come true 8 times in 10; a network trained to separate labels rarely
manages that (it is usually overconfident). The expected calibration error (ECE) and the Brier score
measure the gap; one temperature per label, fitted on validation data, divides the logits before the
sigmoid and narrows it without changing any label's ranking (so AP is untouched, but for float32 rounding
of probabilities within 1e-7 of 0 or 1). Values are fractions in [0, 1], not percent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deepfake_mlc.errors import DatasetError
from deepfake_mlc.metrics.multilabel import _check

ECE_BINS = 15
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 100.0
_BISECTION_STEPS = 100


def _pair(probs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, t = np.asarray(probs, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    if p.ndim != 1 or p.shape != t.shape:
        raise ValueError(f"probs and targets must both be [n]; got {p.shape} and {t.shape}")
    if not np.isin(t, (0, 1)).all():
        raise ValueError("targets must be 0/1")
    return p, t


def reliability_bins(
    probs: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin: the mean probability, the observed frequency of positives and the number of predictions.

    Bins are equal-mass: the predictions sorted by probability and cut into ``bins`` runs whose sizes
    differ by at most one (``np.array_split``'s sizes). Equal-width bins would be nearly empty in the
    middle for a confident classifier, so their frequencies, and the ECE built on them, are noise.
    A cut that would fall between equal probabilities is dropped (the two bins merge): otherwise the
    ECE would depend on the order of the input. With fewer predictions than bins each gets its own bin;
    without predictions the arrays are empty.
    """
    p, t = _pair(probs, targets)
    if bins < 1:
        raise ValueError(f"bins must be at least 1, not {bins}")
    if len(p) == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64)
    order = np.argsort(p, kind="stable")
    p, t = p[order], t[order]
    n, k = len(p), min(bins, len(p))
    sizes = np.full(k, n // k)
    sizes[: n % k] += 1
    cuts = np.cumsum(sizes)[:-1]
    starts = np.r_[0, cuts[p[cuts] > p[cuts - 1]]]
    counts = np.diff(np.r_[starts, n])
    return np.add.reduceat(p, starts) / counts, np.add.reduceat(t, starts) / counts, counts


def expected_calibration_error(probs: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS) -> float:
    """Sum over the bins of ``count / n * |frequency - mean probability|``; NaN without predictions."""
    confidence, frequency, counts = reliability_bins(probs, targets, bins)
    if len(counts) == 0:
        return float("nan")
    return float((counts * np.abs(frequency - confidence)).sum() / counts.sum())


def brier_score(probs: np.ndarray, targets: np.ndarray) -> float:
    """Mean squared difference between probability and 0/1 outcome; NaN without predictions."""
    p, t = _pair(probs, targets)
    return float(np.mean((p - t) ** 2)) if len(p) else float("nan")


def log_loss(probs: np.ndarray, targets: np.ndarray) -> float:
    """Mean binary cross-entropy (nats), probabilities clipped to [1e-7, 1 - 1e-7]: what temperature scaling
    minimises, and a proper score like Brier's, so it does not hinge on a binning as ECE does."""
    p, t = _pair(probs, targets)
    if not len(p):
        return float("nan")
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(t * np.log(p) + (1 - t) * np.log1p(-p)))


def _scores(p: np.ndarray, t: np.ndarray, bins: int) -> dict[str, float]:
    return {"ece": expected_calibration_error(p, t, bins), "brier": brier_score(p, t), "nll": log_loss(p, t)}


def calibration_report(
    probs: np.ndarray, targets: np.ndarray, label_names: Sequence[str], bins: int = ECE_BINS
) -> dict[str, Any]:
    """ECE, Brier score and log loss of ``probs`` [n, C], pooled over all (image, label) pairs and per label.

    Plain Python values, ready for JSON: ``{"binning", "bins", "ece", "brier", "nll", "per_label": {name:
    {"ece", "brier", "nll"}}}``.
    """
    p, t = np.asarray(probs, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    _check(p, t)
    if len(label_names) != p.shape[1]:
        raise ValueError(f"{len(label_names)} label names for {p.shape[1]} labels")
    return {
        "binning": "equal-mass",
        "bins": bins,
        **_scores(p.ravel(), t.ravel(), bins),
        "per_label": {name: _scores(p[:, k], t[:, k], bins) for k, name in enumerate(label_names)},
    }


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))  # no overflow for any finite x


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The temperature ``T`` whose ``sigmoid(logits / T)`` has the lowest binary cross-entropy on ``targets``.

    The cross-entropy is convex in ``a = 1 / T`` and its derivative ``mean(z · (sigmoid(a·z) - y))`` rises
    with ``a``, so bisection on ``log a`` finds the root without step sizes to tune. A label whose optimum
    lies outside [0.01, 100] gets 1.0, like one whose targets are all equal or whose logits are all 0: its
    data say nothing usable about the scale (separable data send T to 0, which would round every float32
    probability to 0 or 1 and erase the ranking on new images; data against the logits send it to infinity).
    """
    z, y = _pair(logits, targets)
    if not np.isfinite(z).all():
        raise DatasetError("the model's logits are not all finite (NaN or infinity): it cannot be calibrated")
    if len(y) == 0 or y.min() == y.max() or not z.any():
        return 1.0

    def slope(log_a: float) -> float:
        return float(np.mean(z * (_sigmoid(np.exp(log_a) * z) - y)))

    low, high = np.log(1 / MAX_TEMPERATURE), np.log(1 / MIN_TEMPERATURE)
    if slope(low) >= 0 or slope(high) <= 0:
        return 1.0
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2
        if slope(middle) < 0:
            low = middle
        else:
            high = middle
    return float(np.clip(np.exp(-(low + high) / 2), MIN_TEMPERATURE, MAX_TEMPERATURE))


def fit_temperatures(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """One temperature per label for ``logits`` [n, C], each fitted on its own column: ``[C]``."""
    z, t = np.asarray(logits, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    _check(z, t)
    return np.array([fit_temperature(z[:, k], t[:, k]) for k in range(z.shape[1])])


def apply_temperatures(logits: np.ndarray, temperatures: np.ndarray) -> np.ndarray:
    """Calibrated probabilities ``sigmoid(logits / T)`` for ``logits`` [n, C] and temperatures [C], float32."""
    z, temps = np.asarray(logits, dtype=np.float64), np.asarray(temperatures, dtype=np.float64)
    if z.ndim != 2 or temps.shape != (z.shape[1],):
        raise ValueError(f"logits must be [n, C] and temperatures [C]; got {z.shape} and {temps.shape}")
    if not (temps > 0).all():
        raise ValueError("temperatures must be positive")
    return _sigmoid(z / temps).astype(np.float32)
