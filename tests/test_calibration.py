"""Calibration (ECE, Brier, temperature scaling) and threshold policies against known answers."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import brier_score_loss
from sklearn.metrics import log_loss as sklearn_log_loss

from deepfake_mlc.errors import ConfigError, DatasetError
from deepfake_mlc.metrics.calibration import (
    ECE_BINS,
    apply_temperatures,
    brier_score,
    calibration_report,
    expected_calibration_error,
    fit_temperature,
    fit_temperatures,
    log_loss,
    reliability_bins,
)
from deepfake_mlc.metrics.plots import plot_reliability
from deepfake_mlc.metrics.thresholds import (
    POLICY_HELP,
    FittedThresholds,
    ThresholdPolicy,
    best_f1_thresholds,
    fit_thresholds,
    parse_policy,
    policy_outcome,
)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def calibrated_sample(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    return p, (rng.random(n) < p).astype(np.float64)


# --- ECE and Brier -------------------------------------------------------------------------------------------


def test_ece_of_a_calibrated_predictor_is_small_and_of_an_overconfident_one_large() -> None:
    p, y = calibrated_sample(200_000)
    assert expected_calibration_error(p, y) < 0.01
    overconfident = sigmoid(3 * (np.log(p) - np.log1p(-p)))
    assert expected_calibration_error(overconfident, y) > 0.05


def test_ece_of_a_constant_predictor_at_the_base_rate_is_zero() -> None:
    _, y = calibrated_sample(10_000, seed=1)
    constant = np.full(len(y), y.mean())
    assert expected_calibration_error(constant, y) == pytest.approx(0.0, abs=1e-12)
    confidence, _, counts = reliability_bins(constant, y)
    assert len(confidence) == 1 and counts[0] == len(y)  # equal probabilities are never split


def test_bins_are_equal_mass() -> None:
    p, y = calibrated_sample(1003, seed=2)
    confidence, _, counts = reliability_bins(p, y)
    assert len(counts) == ECE_BINS and counts.sum() == 1003
    assert counts.max() - counts.min() <= 1
    assert np.all(np.diff(confidence) > 0)
    _, _, few = reliability_bins(p[:4], y[:4])
    np.testing.assert_array_equal(few, [1, 1, 1, 1])
    assert all(len(a) == 0 for a in reliability_bins(np.zeros(0), np.zeros(0)))


def test_ece_by_hand() -> None:
    probs, targets = np.array([0.8, 0.1, 0.6, 0.3]), np.array([1, 0, 1, 1])
    confidence, frequency, counts = reliability_bins(probs, targets, bins=2)
    np.testing.assert_allclose(confidence, [0.2, 0.7])
    np.testing.assert_allclose(frequency, [0.5, 1.0])
    np.testing.assert_array_equal(counts, [2, 2])
    # bins {0.1, 0.3} and {0.6, 0.8}: 2/4 * |0.5 - 0.2| + 2/4 * |1.0 - 0.7|
    assert expected_calibration_error(probs, targets, bins=2) == pytest.approx(0.3)


def test_brier_and_log_loss_match_sklearn() -> None:
    p, y = calibrated_sample(1000, seed=3)
    assert brier_score(p, y) == pytest.approx(brier_score_loss(y, p), rel=1e-12)
    assert log_loss(p, y) == pytest.approx(sklearn_log_loss(y, p), rel=1e-9)


def test_calibration_report_pools_all_pairs_and_is_json() -> None:
    rng = np.random.default_rng(4)
    probs = rng.random((500, 3))
    targets = (rng.random((500, 3)) < probs**2).astype(int)
    report = calibration_report(probs, targets, ["eye", "nose", "lip"])
    assert json.loads(json.dumps(report)) == report
    assert report["binning"] == "equal-mass" and report["bins"] == ECE_BINS
    assert report["ece"] == pytest.approx(expected_calibration_error(probs.ravel(), targets.ravel()))
    assert report["brier"] == pytest.approx(brier_score_loss(targets.ravel(), probs.ravel()))
    assert report["per_label"]["nose"]["ece"] == pytest.approx(expected_calibration_error(probs[:, 1], targets[:, 1]))
    assert 0 < report["ece"] < 1
    with pytest.raises(ValueError, match="2 label names for 3 labels"):
        calibration_report(probs, targets, ["eye", "nose"])


# --- temperature scaling ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def true_logits() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    z = rng.normal(0, 2, 100_000)
    return z, (rng.random(len(z)) < sigmoid(z)).astype(np.float64)


@pytest.mark.parametrize("scale", [2.5, 0.5])
def test_temperature_recovers_the_scale(true_logits: tuple[np.ndarray, np.ndarray], scale: float) -> None:
    z, y = true_logits
    assert fit_temperature(z * scale, y) == pytest.approx(scale, rel=0.05)


def test_temperature_without_information_is_one() -> None:
    z = np.linspace(-3, 3, 50)
    assert fit_temperature(z, np.zeros(50)) == 1.0
    assert fit_temperature(z, np.ones(50)) == 1.0
    assert fit_temperature(np.zeros(50), np.r_[np.zeros(25), np.ones(25)]) == 1.0


def test_temperature_of_separable_or_reversed_data_is_one() -> None:
    z = np.linspace(-3, 3, 50)
    assert fit_temperature(z, (z > 0).astype(float)) == 1.0  # separable: T -> 0 would erase the ranking
    assert fit_temperature(z, (z < 0).astype(float)) == 1.0  # reversed: no positive T helps


def test_non_finite_logits_are_a_one_line_error() -> None:
    with pytest.raises(DatasetError, match="not all finite"):
        fit_temperature(np.array([0.0, np.inf, 1.0]), np.array([0.0, 1.0, 1.0]))


def test_applied_temperatures_reduce_ece(true_logits: tuple[np.ndarray, np.ndarray]) -> None:
    z, y = true_logits
    logits = np.stack([z * 2.5, z / 2], axis=1)
    targets = np.stack([y, y], axis=1)
    temperatures = fit_temperatures(logits, targets)
    np.testing.assert_allclose(temperatures, [2.5, 0.5], rtol=0.05)
    calibrated = apply_temperatures(logits, temperatures)
    assert calibrated.dtype == np.float32
    for k in range(2):
        before = expected_calibration_error(sigmoid(logits[:, k]), y)
        after = expected_calibration_error(calibrated[:, k], y)
        assert after < before / 3


def test_apply_temperatures_is_stable_for_large_logits() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probs = apply_temperatures(np.array([[-1e4, 0.0, 1e4]]), np.array([0.5, 1.0, 0.5]))
    np.testing.assert_array_equal(probs, [[0.0, 0.5, 1.0]])


# --- threshold policies ----------------------------------------------------------------------------------------


def brute_force_f1(scores: np.ndarray, hits: np.ndarray) -> tuple[float, float]:
    """The best F1 over every candidate threshold, and the highest threshold that reaches it."""
    distinct = np.unique(scores)
    candidates = np.r_[distinct[0] / 2, (distinct[:-1] + distinct[1:]) / 2, (distinct[-1] + 1) / 2]
    f1 = [2 * (hits * (scores > c)).sum() / ((scores > c).sum() + hits.sum()) for c in candidates]
    best = max(f1)
    return best, max(c for c, f in zip(candidates, f1, strict=True) if f == best)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_best_f1_thresholds_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 2, (150, 4))
    probs = np.round(np.clip(targets * 0.3 + rng.random((150, 4)) * 0.7, 0, 1), 2)  # rounded: many ties
    targets[:, 3] = 0
    thresholds = best_f1_thresholds(probs, targets, 0.4)
    for k in range(3):
        _, expected = brute_force_f1(probs[:, k], targets[:, k])
        assert thresholds[k] == pytest.approx(expected)
    assert thresholds[3] == 0.4  # no positives: the default
    fitted = fit_thresholds(ThresholdPolicy("f1"), probs, targets, default=0.4)
    np.testing.assert_array_equal(fitted.thresholds, thresholds)
    assert fitted.unreached == ()


def test_best_f1_threshold_may_fire_on_every_image() -> None:
    scores = np.array([[0.9], [0.8], [0.3], [0.2]])
    # firing on all four (F1 6/7) beats the top two (4/5): the threshold goes below the lowest score
    assert best_f1_thresholds(scores, np.array([[1], [1], [0], [1]]), 0.5)[0] == pytest.approx(0.1)
    assert best_f1_thresholds(scores, np.array([[1], [1], [0], [0]]), 0.5)[0] == pytest.approx(0.55)


def scores_with_manipulated(originals: np.ndarray, manipulated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One label's scores: originals (all-zero target rows) then manipulated images (another label set)."""
    probs = np.r_[originals, manipulated][:, None].repeat(2, axis=1)
    targets = np.zeros((len(probs), 2))
    targets[len(originals) :, 1] = 1  # manipulated in label 1 only: label 0's negatives, but no originals
    return probs, targets


@pytest.mark.parametrize("x", [0.01, 0.05, 0.2])
def test_fpr_policy_on_uniform_originals(x: float) -> None:
    rng = np.random.default_rng(6)
    probs, targets = scores_with_manipulated(rng.random(100_000), rng.random(20_000) * 0.2 + 0.8)
    thresholds = fit_thresholds(ThresholdPolicy("fpr", x), probs, targets).thresholds
    np.testing.assert_allclose(thresholds, 1 - x, atol=0.005)
    realised = (probs[:100_000] > thresholds).mean(axis=0)
    assert np.all(realised <= x) and np.all(realised >= x - 0.002)


def test_fpr_policy_never_exceeds_x_on_ties() -> None:
    originals = np.array([0.9, 0.7, 0.7, 0.7, 0.2])
    probs, targets = scores_with_manipulated(originals, np.array([0.95, 0.1]))
    expected = {0.1: (0.9 + 1) / 2, 0.4: (0.9 + 0.7) / 2, 0.8: (0.7 + 0.2) / 2, 0.99: (0.7 + 0.2) / 2}
    for x, threshold in expected.items():
        fitted = fit_thresholds(ThresholdPolicy("fpr", x), probs, targets).thresholds
        np.testing.assert_allclose(fitted, threshold)
        assert (originals > fitted[0]).mean() <= x
    tied = fit_thresholds(ThresholdPolicy("fpr", 0.5), *scores_with_manipulated(np.full(4, 0.5), np.zeros(0)))
    np.testing.assert_allclose(tied.thresholds, 0.75)  # no cut lets 2 of 4 fire: none fires


def test_fpr_policy_ignores_manipulated_images() -> None:
    rng = np.random.default_rng(7)
    originals = rng.random(1000)
    low = fit_thresholds(ThresholdPolicy("fpr", 0.05), *scores_with_manipulated(originals, rng.random(500) * 0.1))
    high = fit_thresholds(ThresholdPolicy("fpr", 0.05), *scores_with_manipulated(originals, 0.9 + rng.random(500) / 10))
    np.testing.assert_array_equal(low.thresholds, high.thresholds)


def test_fpr_policy_needs_originals() -> None:
    probs, targets = np.random.default_rng(8).random((10, 2)), np.ones((10, 2))
    with pytest.raises(DatasetError, match=r"fpr:0\.05 needs originals") as error:
        fit_thresholds(ThresholdPolicy("fpr", 0.05), probs, targets)
    assert "\n" not in str(error.value)


def test_precision_policy_by_hand() -> None:
    probs = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])[:, None].repeat(3, axis=1)
    targets = np.zeros((6, 3))
    targets[:, 0] = [1, 1, 0, 1, 0, 0]  # precision firing on the top 1..6: 1, 1, 2/3, 3/4, 3/5, 1/2
    targets[:, 1] = [0, 1, 0, 0, 0, 0]  # 0, 1/2, 1/3, 1/4, 1/5, 1/6; label 2 has no positives
    expected = {0.95: 0.75, 0.75: 0.55, 0.7: 0.55, 0.6: 0.45, 0.5: 0.2}
    for x, threshold in expected.items():
        fitted = fit_thresholds(ThresholdPolicy("precision", x), probs, targets, default=0.3)
        assert fitted.thresholds[0] == pytest.approx(threshold)
        assert fitted.thresholds[1] == pytest.approx(0.75)  # precision 1/2 at best: unreached above 1/2
        assert fitted.thresholds[2] == 0.3
        assert fitted.unreached == ((1,) if x > 0.5 else ())


def test_policy_outcome_by_hand() -> None:
    probs = np.array([[0.6, 0.1], [0.2, 0.1], [0.2, 0.9], [0.7, 0.8], [0.9, 0.3]])
    targets = np.array([[0, 0], [0, 0], [0, 1], [1, 1], [1, 0]])
    outcome = policy_outcome(probs, targets, np.array([0.5, 0.85]), ["eye", "nose"])
    assert outcome["eye"] == {
        "threshold": 0.5,
        "fpr_originals": 0.5,  # 0.6 of the two originals fires
        "recall": 1.0,
        "precision": 2 / 3,
        "flagged_originals": 1,
        "originals": 2,
        "positives": 2,
    }
    assert outcome["nose"]["fpr_originals"] == 0.0
    assert outcome["nose"]["recall"] == 0.5 and outcome["nose"]["precision"] == 1.0
    silent = policy_outcome(probs[2:], np.array([[0, 1], [1, 1], [0, 0]]), np.array([0.95, 0.95]), ["eye", "nose"])
    assert silent["eye"]["precision"] is None  # nothing fires
    no_originals = policy_outcome(probs[2:4], targets[2:4], np.array([0.5, 0.5]), ["eye", "nose"])
    assert no_originals["eye"]["fpr_originals"] is None and no_originals["eye"]["originals"] == 0
    assert json.loads(json.dumps(outcome)) == outcome


@pytest.mark.parametrize("text", ["f1", "fpr:0.05", "precision:0.9", "fpr:0.001"])
def test_parse_policy_round_trips(text: str) -> None:
    policy = parse_policy(text)
    assert str(policy) == text
    assert parse_policy(str(policy)) == policy


@pytest.mark.parametrize(
    "text", ["recall:0.9", "F1", "", "fpr", "fpr:", "fpr:abc", "fpr:0", "fpr:1", "precision:1.5", "fpr:nan", "f1:0.3"]
)
def test_parse_policy_rejects(text: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_policy(text)
    message = str(error.value)
    assert "\n" not in message and "f1, fpr:X" in message and POLICY_HELP in message


def test_unknown_policy_message() -> None:
    with pytest.raises(ConfigError, match=r"^unknown threshold policy 'recall:0.9' \(one of f1, fpr:X"):
        parse_policy("recall:0.9")


def test_fitted_thresholds_type() -> None:
    fitted = fit_thresholds(parse_policy("precision:0.6"), np.array([[0.9], [0.1]]), np.array([[1], [0]]))
    assert isinstance(fitted, FittedThresholds)
    assert fitted.thresholds.shape == (1,) and fitted.thresholds[0] == pytest.approx(0.5)


# --- the figure ------------------------------------------------------------------------------------------------


def test_plot_reliability(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    logits = rng.normal(0, 2, (2000, 5))
    targets = (rng.random((2000, 5)) < sigmoid(logits)).astype(int)
    curves = {"uncalibrated": (sigmoid(3 * logits), targets), "calibrated": (sigmoid(logits), targets)}
    labels = ["eye", "eyebrow", "lip", "nose", "hair"]
    out = plot_reliability(curves, labels, tmp_path / "a" / "reliability.png", "Reliability")
    assert out == tmp_path / "a" / "reliability.png"
    assert out.stat().st_size > 0
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > 400 and image.height > 300
    with pytest.raises(ValueError, match="4 label names for 5 labels"):
        plot_reliability(curves, labels[:4], tmp_path / "bad.png", "")
