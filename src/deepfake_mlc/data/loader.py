"""Data sets and loaders from a :class:`DataConfig`, whichever format the data is in."""

from __future__ import annotations

import signal

import torch
from torch.utils.data import DataLoader

from deepfake_mlc.config.schema import DataConfig, Split
from deepfake_mlc.data.base import MultiLabelImageDataset, collate_skipping
from deepfake_mlc.data.manifest import ManifestDataset
from deepfake_mlc.data.reading import evenly_spaced
from deepfake_mlc.data.seqdeepfake import SeqDeepFake
from deepfake_mlc.data.sources import split_manifest
from deepfake_mlc.data.transforms import build_transform


def build_dataset(
    cfg: DataConfig, split: Split, train: bool | None = None, seed: int | None = None
) -> MultiLabelImageDataset:
    """The ``split`` of the configured data set; augmentation follows ``train`` (default: split == train).

    ``seed`` makes the augmentation a function of (seed, epoch, sample): see ``MultiLabelImageDataset``.
    """
    augment = split == "train" if train is None else train
    transform = build_transform(cfg, train=augment)
    seed = seed if augment else None
    dataset: MultiLabelImageDataset
    if cfg.format == "seqdeepfake":
        assert cfg.root is not None  # enforced by DataConfig
        dataset = SeqDeepFake(cfg.root, cfg.subset, split, transform, cfg.on_corrupt, augment_seed=seed)
    else:
        assert cfg.labels is not None  # enforced by DataConfig
        manifest = split_manifest(cfg, split)
        dataset = ManifestDataset(manifest, cfg.labels, transform, cfg.on_corrupt, augment_seed=seed)
    if split == "train" and cfg.fraction < 1:
        dataset.samples = evenly_spaced(dataset.samples, max(1, round(cfg.fraction * len(dataset.samples))))
    return dataset


def build_loader(dataset: MultiLabelImageDataset, cfg: DataConfig, train: bool, seed: int = 0) -> DataLoader:
    """A DataLoader with workers, pinned memory on GPU machines and persistent workers.

    Training loaders shuffle (seeded) and drop the last partial batch; evaluation loaders keep order
    and every sample.
    """
    workers = cfg.num_workers
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size if train else (cfg.eval_batch_size or cfg.batch_size),
        shuffle=train,
        drop_last=train and len(dataset) > cfg.batch_size,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        collate_fn=collate_skipping,
        generator=torch.Generator().manual_seed(seed) if train else None,
        worker_init_fn=ignore_stop_signals if workers > 0 else None,
    )


def ignore_stop_signals(worker_id: int) -> None:
    """Loader workers leave SIGTERM/SIGINT to the training process, which stops at a step boundary.

    A scheduler signals the whole process group; a worker that died of it would fail the batch the loop is
    waiting for before the state is saved. Workers still end with the training process (they watch it).
    """
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)
