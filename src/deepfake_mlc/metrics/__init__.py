"""Metrics of the paper's tables (mAP, CP, CR, CF1, OP, OR, OF1), as ASL and ML-GCN compute them."""

from deepfake_mlc.metrics.multilabel import (
    METRIC_NAMES,
    MetricAccumulator,
    binary_auc,
    confusion_counts,
    detection_metrics,
    multilabel_metrics,
    per_label_ap,
    summarize,
)

__all__ = [
    "METRIC_NAMES",
    "MetricAccumulator",
    "binary_auc",
    "confusion_counts",
    "detection_metrics",
    "multilabel_metrics",
    "per_label_ap",
    "summarize",
]
