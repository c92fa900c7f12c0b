"""The figures: valid PNGs of a sensible size, and PR curve points identical to scikit-learn's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import precision_recall_curve

from deepfake_mlc.metrics.plots import plot_grouped_bars, plot_pr_curves, pr_curve


def assert_png(path: Path, min_width: int = 400, min_height: int = 300) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= min_width and image.height >= min_height
        assert image.width <= 4000 and image.height <= 4000
        assert image.convert("L").getextrema()[0] < 100  # not blank: text and lines are drawn


@pytest.mark.parametrize("seed", [0, 1])
def test_pr_curve_matches_sklearn_without_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 2, 200)
    scores = rng.permutation(200) / 200.0  # distinct scores
    precision, recall = pr_curve(scores, targets)
    expected_p, expected_r, _ = precision_recall_curve(targets, scores, drop_intermediate=False)
    np.testing.assert_allclose(precision, expected_p, rtol=1e-12)
    np.testing.assert_allclose(recall, expected_r, rtol=1e-12)


def test_pr_curve_groups_tied_scores_into_one_threshold() -> None:
    precision, recall = pr_curve(np.array([0.9, 0.5, 0.5, 0.1]), np.array([1, 0, 1, 0]))
    np.testing.assert_allclose(precision, [0.5, 2 / 3, 1.0, 1.0])
    np.testing.assert_allclose(recall, [1.0, 1.0, 0.5, 0.0])


def test_pr_curve_without_positives_is_flat_at_zero_recall() -> None:
    precision, recall = pr_curve(np.array([0.8, 0.2]), np.array([0, 0]))
    np.testing.assert_array_equal(recall, 0.0)
    np.testing.assert_array_equal(precision, [0.0, 0.0, 1.0])


def test_plot_pr_curves(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 2, (120, 4))
    targets[:, 3] = 0  # a label with no positives: AP 0, no curve
    probs = np.clip(targets * 0.4 + rng.random((120, 4)) * 0.6, 0, 1)
    out = plot_pr_curves(
        torch.tensor(probs), torch.tensor(targets), ["eye", "nose", "lip", "hair"], tmp_path / "a" / "pr.png"
    )
    assert out == tmp_path / "a" / "pr.png"
    assert_png(out)
    with pytest.raises(ValueError, match="3 label names for 4 labels"):
        plot_pr_curves(probs, targets, ["eye", "nose", "lip"], tmp_path / "bad.png")


def test_plot_grouped_bars(tmp_path: Path) -> None:
    groups = {
        "mAP": {"ResNet50": 96.0, "ML-GCN": 95.1, "ML-AGCN": 96.4},
        "CF1": {"ResNet50": 90.2, "ML-GCN": 89.0},  # ML-AGCN missing: a gap
        "OF1": {"ResNet50": 91.0, "ML-GCN": 90.5, "ML-AGCN": 91.7},
    }
    assert_png(plot_grouped_bars(groups, tmp_path / "bars.png", title="Components", hatched={"ML-GCN", "ML-AGCN"}))
    assert_png(plot_grouped_bars(groups, tmp_path / "zoom.png", value_labels=True, ylim=(85, 100)))
    with pytest.raises(ValueError, match="no values"):
        plot_grouped_bars({}, tmp_path / "empty.png")
