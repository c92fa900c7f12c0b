"""The torch data set every multi-label image data set here is: samples, targets, seeded augmentation, skips.

Reading the files (CSV rows, images, the corrupt-image policy) is :mod:`deepfake_mlc.data.reading`'s,
without torch, so the serving runtimes can share it.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset

from deepfake_mlc.data.reading import OnCorrupt, Sample, open_sample


class MultiLabelImageDataset(Dataset):
    """A list of ``(absolute_path, target)`` samples with a 0/1 target per label.

    ``on_corrupt="skip"`` makes ``__getitem__`` return ``None`` for an unreadable image, logged with
    its path and counted in :attr:`num_skipped` (shared with DataLoader workers);
    :func:`collate_skipping` drops those entries from the batch.

    With ``augment_seed`` set, the random augmentation of a sample is drawn from a generator seeded by
    ``(augment_seed, epoch, index)`` (see :meth:`set_epoch`): training is then reproducible whatever the
    number of workers, processes or restarts, which exact resume relies on.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        label_names: Sequence[str],
        transform: Callable[[Image.Image], Any] | None = None,
        on_corrupt: OnCorrupt = "error",
        augment_seed: int | None = None,
    ) -> None:
        if on_corrupt not in ("error", "skip"):
            raise ValueError(f"on_corrupt must be 'error' or 'skip', not {on_corrupt!r}")
        self.samples = list(samples)
        self.label_names = tuple(label_names)
        self.transform = transform
        self.on_corrupt = on_corrupt
        self.augment_seed = augment_seed
        self._skipped = multiprocessing.get_context().Value("i", 0)
        self._epoch = multiprocessing.get_context().Value("i", 0)

    def set_epoch(self, epoch: int) -> None:
        """Tell every worker process which epoch's augmentation to draw."""
        self._epoch.value = epoch

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def targets(self) -> torch.Tensor:
        """All targets as an ``[n, num_labels]`` float tensor (label statistics, metrics)."""
        if not self.samples:
            return torch.zeros(0, self.num_labels)
        return torch.tensor([t for _, t in self.samples], dtype=torch.float32)

    @property
    def num_skipped(self) -> int:
        """How many unreadable images were skipped so far, over all worker processes."""
        return int(self._skipped.value)

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor] | None:
        path, target = self.samples[index]
        image = open_sample(path, self.on_corrupt)
        if image is None:
            with self._skipped.get_lock():
                self._skipped.value += 1
            return None
        if self.transform is not None:
            if self.augment_seed is None:
                image = self.transform(image)
            else:
                state = torch.get_rng_state()  # the CPU generator only: torch.manual_seed costs 100x more
                torch.default_generator.manual_seed(hash((self.augment_seed, self._epoch.value, index)) & 0x7FFF_FFFF)
                try:
                    image = self.transform(image)
                finally:
                    torch.set_rng_state(state)
        return image, torch.tensor(target, dtype=torch.float32)


def collate_skipping(batch: list[tuple[Any, torch.Tensor] | None]) -> tuple[Any, torch.Tensor] | None:
    """Default collation after dropping skipped (``None``) samples; ``None`` if all were skipped."""
    kept = [item for item in batch if item is not None]
    if not kept:
        return None
    return torch.utils.data.default_collate(kept)
