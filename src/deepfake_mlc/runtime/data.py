"""Images as arrays, preprocessed exactly as a model file says: evaluation splits and loose files.

Runtimes take numpy arrays, so every runtime sees the same bytes. Reading needs no torch (the serving
image has none): the annotation readers and the preprocessing are the ones the training data sets use
(:mod:`deepfake_mlc.data.sources`, :class:`~deepfake_mlc.data.preprocess.Preprocessing`), and images are
decoded by a thread pool (PIL releases the GIL while it decodes and resizes).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
from rich.progress import track

from deepfake_mlc.artifacts import ModelInfo
from deepfake_mlc.config.schema import DataConfig, Split
from deepfake_mlc.data.degrade import Perturbation, perturbation_seed, pixels_key
from deepfake_mlc.data.labels import SUBSET_LABELS
from deepfake_mlc.data.preprocess import Preprocessing
from deepfake_mlc.data.reading import OnCorrupt, evenly_spaced, open_rgb, open_sample
from deepfake_mlc.data.sources import data_for, read_split
from deepfake_mlc.errors import DatasetError


def preprocessing_config(info: ModelInfo, subset: str | None = None) -> DataConfig:
    """A data config carrying the model's preprocessing; where the images are is filled in by ``data_for``.

    The Seq-DeepFake subset defaults to the one whose label names the model has.
    """
    subset = subset or next((s for s, names in SUBSET_LABELS.items() if names == info.label_names), "components")
    return DataConfig(
        root=Path("."),
        subset=subset,
        labels=list(info.label_names),
        image_size=info.preprocessing.image_size,
        interpolation=info.preprocessing.interpolation,
        mean=info.preprocessing.mean,
        std=info.preprocessing.std,
        num_workers=min(4, os.cpu_count() or 1),
    )


def _load(
    path: str, preprocessing: Preprocessing, on_corrupt: OnCorrupt, perturbation: Perturbation | None, seed: int
) -> np.ndarray | None:
    image = open_sample(path, on_corrupt)
    if image is not None and perturbation is not None:
        image = perturbation(image, perturbation_seed(pixels_key(image), perturbation, seed))
    return None if image is None else preprocessing(image)


def eval_batches(
    source: Path,
    info: ModelInfo,
    split: Split = "test",
    limit: int | None = None,
    subset: str | None = None,
    perturbation: Perturbation | None = None,
    seed: int = 0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(images, targets)`` batches of a split, without augmentation, with a progress bar.

    ``source`` is a Seq-DeepFake root, a manifest ``.csv`` or a run config ``.yaml``. ``limit`` keeps
    that many images spread evenly over the split (splits are often sorted by label). Unreadable images
    stop the run, or are skipped where the data config says ``on_corrupt: skip``. ``perturbation`` alters
    each decoded image before the model's preprocessing, as sharing would have; its randomness (noise) is a
    function of the image's pixels, the perturbation and ``seed``, so every run on every machine sees the same
    images.
    """
    data = data_for(Path(source), preprocessing_config(info, subset), subset)
    samples, label_names = read_split(data, split)
    if label_names != info.label_names:
        raise DatasetError(f"the data's labels {list(label_names)} are not the model's {list(info.label_names)}")
    if limit is not None and limit < len(samples):
        samples = evenly_spaced(samples, limit)
    load = partial(
        _load, preprocessing=Preprocessing.of(data), on_corrupt=data.on_corrupt, perturbation=perturbation, seed=seed
    )
    size = data.eval_batch_size or data.batch_size
    starts = range(0, len(samples), size)
    with ThreadPoolExecutor(max(1, data.num_workers)) as pool:
        what = f"reading {len(samples)} {split} images" + ("" if perturbation is None else f" under {perturbation}")
        for start in track(starts, description=what, transient=True):
            chunk = samples[start : start + size]
            images = pool.map(load, [path for path, _ in chunk])
            kept = [(image, target) for image, (_, target) in zip(images, chunk, strict=True) if image is not None]
            if kept:  # none: every image of the batch was unreadable and skipped
                yield np.stack([image for image, _ in kept]), np.asarray([t for _, t in kept], dtype=np.float32)


def eval_arrays(
    source: Path, info: ModelInfo, split: Split = "test", limit: int | None = None, subset: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """All images ``(N, 3, H, W)`` float32 and targets ``(N, labels)`` of :func:`eval_batches`, in memory."""
    batches = list(eval_batches(source, info, split, limit, subset))
    if not batches:
        raise DatasetError(f"no readable {split} images in {source}")
    images, targets = zip(*batches, strict=True)
    return np.concatenate(images), np.concatenate(targets)


def load_images(paths: Sequence[Path], info: ModelInfo) -> np.ndarray:
    """Image files as one ``(N, 3, H, W)`` float32 array in the model's preprocessing."""
    preprocessing = Preprocessing.of(info.preprocessing)
    return np.stack([preprocessing(open_rgb(path)) for path in paths])
