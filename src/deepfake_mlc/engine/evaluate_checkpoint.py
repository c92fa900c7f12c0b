"""``deepfake-mlc evaluate``: a checkpoint on any split of any supported data set, with every view of it.

The probabilities are the model's as it serves them (calibrated when it has temperatures: then the
uncalibrated ones' calibration is reported beside them). With ``policies``, threshold policies are fitted on
the validation split and judged on the evaluated one. With ``explain``, also how well its class activation
maps point at the manipulations, on data with masks (:mod:`deepfake_mlc.explain.localisation`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from rich.progress import track
from torch import nn

from deepfake_mlc.artifacts import CheckpointMeta, write_json_atomically
from deepfake_mlc.config.schema import DataConfig, Split
from deepfake_mlc.data import build_dataset, build_loader
from deepfake_mlc.data.preprocess import Preprocessing
from deepfake_mlc.data.reading import evenly_spaced, open_sample
from deepfake_mlc.data.sources import data_for, read_split, require_split
from deepfake_mlc.engine.evaluate import predict_logits
from deepfake_mlc.errors import DatasetError
from deepfake_mlc.metrics.calibration import calibration_report
from deepfake_mlc.metrics.evaluation import evaluation_report, policy_report
from deepfake_mlc.metrics.plots import plot_pr_curves, plot_reliability
from deepfake_mlc.metrics.thresholds import ThresholdPolicy
from deepfake_mlc.models.calibrated import probabilities, temperature_tensor
from deepfake_mlc.models.loading import load_checkpoint

EXPLAIN_BATCH = 8  # images per pass; each is repeated once per label present in the batch


@dataclass(frozen=True)
class ExplainRequest:
    """Localisation asked for: maps by ``method`` at ``layer`` (None: the default stage) on ``limit`` images
    (None: every image with a mask and a manipulation)."""

    method: str = "gradcam"
    layer: str | None = None
    limit: int | None = None


def model_data(source: Path, meta: CheckpointMeta, trained: DataConfig, subset: str | None) -> DataConfig:
    """The data at ``source`` read with the checkpoint's preprocessing, labelled with its label names."""
    data = data_for(source, trained, subset)
    if data.format == "manifest" and data.labels is None:
        data = data.model_copy(update={"labels": list(meta.label_names)})
    return data


def split_logits(
    accelerator: Accelerator, model: nn.Module, data: DataConfig, split: Split, labels: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and targets of a whole split, without augmentation, on every process."""
    dataset = build_dataset(data, split, train=False)
    if dataset.label_names != labels:
        raise DatasetError(f"the data's labels {list(dataset.label_names)} are not the model's {list(labels)}")
    logits, targets = predict_logits(model, accelerator.prepare(build_loader(dataset, data, train=False)), accelerator)
    return logits.numpy(), targets.numpy()


def evaluate_checkpoint(
    checkpoint: Path,
    source: Path,
    split: Split,
    out_dir: Path | None = None,
    subset: str | None = None,
    threshold: float | None = None,
    cpu: bool = False,
    explain: ExplainRequest | None = None,
    policies: tuple[ThresholdPolicy, ...] = (),
) -> dict[str, Any]:
    """Metrics, detection view, per-label confusion counts, calibration, ``policies`` judged on ``split``, and
    with ``explain`` the localisation of the maps (on the main process); JSON and figures written to ``out_dir``."""
    accelerator = Accelerator(cpu=cpu)
    model, cfg, meta = load_checkpoint(checkpoint)
    labels = meta.label_names
    data = model_data(source, meta, cfg.data, subset)
    if policies:
        require_split(data, "val", "threshold policies are fitted on the val split")
    masked = masked_samples(data, split, explain.limit) if explain is not None else None  # fails before any work
    model = accelerator.prepare(model)
    temperatures = temperature_tensor(meta.calibration)
    as_served = lambda logits: probabilities(torch.from_numpy(logits), temperatures).numpy()  # noqa: E731
    logits, targets = split_logits(accelerator, model, data, split, labels)
    probs = as_served(logits)
    thresholds = np.asarray((threshold,) * len(labels) if threshold is not None else meta.decision_thresholds())
    report: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "data": str(source),
        "split": split,
        "threshold_source": "--threshold" if threshold is not None else meta.threshold_source(),
        **evaluation_report(probs, targets, labels, thresholds, cfg.train.convention),
        "params": meta.params,
    }
    uncalibrated = probabilities(torch.from_numpy(logits), None).numpy()
    if meta.calibration is not None:
        report["calibration_uncalibrated"] = calibration_report(uncalibrated, targets, labels)
    if policies:
        val_logits, val_targets = split_logits(accelerator, model, data, "val", labels)
        fit = as_served(val_logits), val_targets
        report["policies"] = policy_report(policies, fit, (probs, targets), labels, meta.threshold)
    if explain is not None and masked is not None and accelerator.is_main_process:
        model = accelerator.unwrap_model(model)
        report["localisation"] = localise(model, data, masked, labels, explain, accelerator.device)
    if out_dir is not None and accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomically(out_dir / "evaluation.json", report)
        title = f"{Path(checkpoint).name}: {split}"
        plot_pr_curves(probs, targets, labels, out_dir / "pr_curves.png", title=title)
        curves = {"uncalibrated": (uncalibrated, targets), "calibrated": (probs, targets)}
        plot_reliability(
            curves if meta.calibration else {"model": (probs, targets)}, labels, out_dir / "reliability.png", title
        )
        if "localisation" in report:
            from deepfake_mlc.explain.localisation import plot_localisation

            plot_localisation(
                report["localisation"], out_dir / "localisation.png", title=f"{Path(checkpoint).name}: {split}"
            )
    return report


def masked_samples(data: DataConfig, split: Split, limit: int | None) -> list[tuple[str, tuple[int, ...], str]]:
    """``(image, target, mask)`` of the split's images with a mask and a manipulation, or ``limit`` of them spread
    evenly; the DatasetError of :func:`~deepfake_mlc.data.masks.split_masks` for data without masks."""
    from deepfake_mlc.data.masks import split_masks

    samples, _ = read_split(data, split)
    masks = split_masks(data, split)
    chosen = [(path, target, mask) for (path, target), mask in zip(samples, masks, strict=True) if mask and any(target)]
    return chosen if limit is None else evenly_spaced(chosen, limit)


def localise(
    model: nn.Module,
    data: DataConfig,
    masked: list[tuple[str, tuple[int, ...], str]],
    labels: tuple[str, ...],
    request: ExplainRequest,
    device: torch.device,
) -> dict[str, Any]:
    """The maps of every label present in each of the ``masked`` images, scored against its masks on the masks'
    grid: the method, layer, images explained and :meth:`~deepfake_mlc.explain.localisation.Localisation.report`."""
    from deepfake_mlc.data.masks import read_label_masks
    from deepfake_mlc.explain.cam import Explainer  # pytorch-grad-cam takes seconds to import: only when asked
    from deepfake_mlc.explain.heatmaps import normalise, to_photo
    from deepfake_mlc.explain.localisation import Localisation

    preprocessing = Preprocessing.of(data)
    localisation = Localisation(labels)
    explained = 0
    with Explainer(model, data.image_size, request.method, request.layer, device) as explainer:
        for start in track(range(0, len(masked), EXPLAIN_BATCH), description="explaining", transient=True):
            batch = [
                (image, target, mask)
                for path, target, mask in masked[start : start + EXPLAIN_BATCH]
                if (image := open_sample(path, data.on_corrupt)) is not None
            ]
            if not batch:
                continue
            wanted = sorted({int(k) for _, target, _ in batch for k in np.flatnonzero(target)})
            maps = explainer(torch.from_numpy(np.stack([preprocessing(image) for image, _, _ in batch])), wanted)
            for (_, target, mask), image_maps in zip(batch, maps, strict=True):
                truth = read_label_masks(mask, len(labels))
                every = np.zeros((len(labels), *image_maps.shape[1:]), dtype=np.float32)
                every[wanted] = image_maps
                heatmaps = to_photo(normalise(every), (truth.shape[2], truth.shape[1]), None, None)
                localisation.add(heatmaps, truth, np.asarray(target, dtype=bool))
            explained += len(batch)
    return {"method": request.method, "layer": explainer.layer, "images": explained, **localisation.report()}
