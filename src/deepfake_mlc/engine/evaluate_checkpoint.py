"""``deepfake-mlc evaluate``: a checkpoint on any split of any supported data set, with every view of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from deepfake_mlc.config.schema import Split
from deepfake_mlc.data import build_dataset, build_loader
from deepfake_mlc.data.sources import data_for
from deepfake_mlc.engine.evaluate import predict
from deepfake_mlc.errors import DatasetError
from deepfake_mlc.metrics import confusion_counts, detection_metrics, summarize
from deepfake_mlc.metrics.plots import plot_pr_curves
from deepfake_mlc.models.loading import load_checkpoint


def evaluate_checkpoint(
    checkpoint: Path,
    source: Path,
    split: Split,
    out_dir: Path | None = None,
    subset: str | None = None,
    threshold: float | None = None,
    cpu: bool = False,
) -> dict[str, Any]:
    """Metrics, detection view, per-label confusion counts; JSON and PR curves written to ``out_dir``."""
    accelerator = Accelerator(cpu=cpu)
    model, cfg, meta = load_checkpoint(checkpoint)
    labels = meta.label_names
    data = data_for(source, cfg.data, subset)
    if data.format == "manifest" and data.labels is None:
        data = data.model_copy(update={"labels": list(labels)})
    dataset = build_dataset(data, split, train=False)
    if dataset.label_names != labels:
        raise DatasetError(f"the data's labels {list(dataset.label_names)} are not the model's {list(labels)}")
    model, loader = accelerator.prepare(model, build_loader(dataset, data, train=False))
    probs, targets = predict(model, loader, accelerator)
    threshold = meta.threshold if threshold is None else threshold
    report: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "data": str(source),
        "split": split,
        "images": len(probs),
        "threshold": threshold,
        "metrics": summarize(probs, targets, labels, threshold, cfg.train.convention),
        "detection": detection_metrics(probs, targets, threshold),
        "confusion": {
            name: dict(zip(("TP", "FP", "FN", "TN"), map(int, row), strict=True))
            for name, row in zip(labels, confusion_counts(probs, targets, threshold), strict=True)
        },
        "params": meta.params,
    }
    if out_dir is not None and accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "evaluation.json").write_text(json.dumps(report, indent=2))
        plot_pr_curves(probs, targets, labels, out_dir / "pr_curves.png", title=f"{Path(checkpoint).name}: {split}")
    return report
