"""``deepfake-mlc calibrate``: per-label temperatures and decision thresholds fitted on validation data.

Both are fitted on the validation split, never on the images they are judged on: the temperatures first
(from the raw logits), then the thresholds on the calibrated probabilities, since those are what the
thresholds are compared with at prediction. Both are stored in the checkpoint's metadata (the weights are
untouched), so ``predict``, every runtime and every later export apply them. The test split, when the data
has one, shows what they give on unseen images: calibration error before and after, and per label the
false-positive rate on originals and the recall the thresholds cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from accelerate import Accelerator

from deepfake_mlc.artifacts import (
    Calibration,
    read_checkpoint,
    resolve_checkpoint,
    write_checkpoint,
    write_json_atomically,
)
from deepfake_mlc.data.sources import available_splits, require_split, trained_on
from deepfake_mlc.engine.evaluate_checkpoint import model_data, split_logits
from deepfake_mlc.metrics.calibration import apply_temperatures, calibration_report, fit_temperatures
from deepfake_mlc.metrics.plots import plot_reliability
from deepfake_mlc.metrics.thresholds import ThresholdPolicy, fit_thresholds, parse_policy, policy_outcome
from deepfake_mlc.models.loading import load_checkpoint

FIT_SPLIT, JUDGE_SPLIT = "val", "test"


def calibrate_checkpoint(
    checkpoint: Path,
    source: Path | None = None,
    policy: ThresholdPolicy | None = None,
    temperature: bool = True,
    subset: str | None = None,
    out_dir: Path | None = None,
    cpu: bool = False,
) -> dict[str, Any] | None:
    """Fit, store in the checkpoint and report; ``policy`` None refits the checkpoint's own policy, if any.

    Writes ``calibration.json`` and ``reliability.png`` to ``out_dir`` (default: the run folder's
    ``calibration/``, or ``NAME-calibration/`` beside a checkpoint outside a run folder); returns the report
    on the main process, None on the others.
    """
    checkpoint = resolve_checkpoint(checkpoint)
    accelerator = Accelerator(cpu=cpu)
    model, cfg, meta = load_checkpoint(checkpoint)
    labels = meta.label_names
    source = source or trained_on(checkpoint, cfg.data)
    data = model_data(source, meta, cfg.data, subset)
    require_split(data, FIT_SPLIT, "temperatures and thresholds are fitted on validation data; give --data with one")
    if policy is None and meta.threshold_policy is not None:
        policy = parse_policy(meta.threshold_policy)
    model = accelerator.prepare(model)
    logits, targets = split_logits(accelerator, model, data, FIT_SPLIT, labels)
    temperatures = fit_temperatures(logits, targets) if temperature else np.ones(len(labels))
    raw, calibrated = apply_temperatures(logits, np.ones(len(labels))), apply_temperatures(logits, temperatures)
    before, after = calibration_report(raw, targets, labels), calibration_report(calibrated, targets, labels)
    calibration = (
        Calibration(
            temperatures=tuple(map(float, temperatures)),
            split=FIT_SPLIT,
            images=len(targets),
            ece_before=before["ece"],
            ece_after=after["ece"],
        )
        if temperature
        else None
    )
    fitted = fit_thresholds(policy, calibrated, targets, default=meta.threshold) if policy is not None else None
    report: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "data": str(source),
        "fitted_on": {"split": FIT_SPLIT, "images": len(targets)},
        "temperatures": dict(zip(labels, map(float, temperatures), strict=True)) if temperature else None,
        "threshold_policy": None if policy is None else str(policy),
        "thresholds": None if fitted is None else dict(zip(labels, map(float, fitted.thresholds), strict=True)),
        "unreached": [] if fitted is None else [labels[k] for k in fitted.unreached],
        FIT_SPLIT: {"before": before, "after": after},
    }
    curves = {f"{FIT_SPLIT}, uncalibrated": (raw, targets), f"{FIT_SPLIT}, calibrated": (calibrated, targets)}
    if JUDGE_SPLIT in available_splits(data):
        test_logits, test_targets = split_logits(accelerator, model, data, JUDGE_SPLIT, labels)
        test_raw = apply_temperatures(test_logits, np.ones(len(labels)))
        test_calibrated = apply_temperatures(test_logits, temperatures)
        report[JUDGE_SPLIT] = {
            "images": len(test_targets),
            "before": calibration_report(test_raw, test_targets, labels),
            "after": calibration_report(test_calibrated, test_targets, labels),
            "thresholds": None
            if fitted is None
            else policy_outcome(test_calibrated, test_targets, fitted.thresholds, labels),
        }
        curves = {
            f"{JUDGE_SPLIT}, uncalibrated": (test_raw, test_targets),
            f"{JUDGE_SPLIT}, calibrated": (test_calibrated, test_targets),
        }
    if not accelerator.is_main_process:
        return None
    stem = checkpoint.with_name(checkpoint.name.removesuffix(".safetensors"))
    in_run = checkpoint.parent.name == "checkpoints"
    out_dir = out_dir or (
        checkpoint.parent.parent / "calibration" if in_run else stem.with_name(f"{stem.name}-calibration")
    )
    out_dir.mkdir(parents=True, exist_ok=True)  # an unwritable folder fails before the checkpoint is touched
    update: dict[str, Any] = {"calibration": calibration}
    if fitted is not None:
        update |= {"thresholds": tuple(map(float, fitted.thresholds)), "threshold_policy": str(policy)}
    write_checkpoint(stem, read_checkpoint(checkpoint)[0], meta.model_copy(update=update))
    write_json_atomically(out_dir / "calibration.json", report)
    split = JUDGE_SPLIT if JUDGE_SPLIT in report else FIT_SPLIT
    plot_reliability(curves, labels, out_dir / "reliability.png", f"{checkpoint}: {split} split")
    return {**report, "written": [str(checkpoint), str(out_dir / "calibration.json"), str(out_dir / "reliability.png")]}
