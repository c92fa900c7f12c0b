"""What every multi-label image data set here shares: samples, decoding, the corrupt-image policy."""

from __future__ import annotations

import csv
import logging
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

log = logging.getLogger(__name__)

OnCorrupt = Literal["error", "skip"]
Sample = tuple[str, tuple[int, ...]]


class DatasetError(ValueError):
    """A data set that cannot be read as described: the message names the file, line and problem."""


class CorruptImageError(OSError):
    """An image file that cannot be read or decoded."""


def read_rows(csv_path: Path, required: Sequence[str]) -> Iterator[tuple[str, dict[str, str]]]:
    """Rows of an annotation CSV as ``("file.csv:LINE", row)``, after checking its header.

    The location string is what every row-level error message starts with.
    """
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        found = reader.fieldnames or []
        missing = [c for c in required if c not in found]
        if missing:
            raise DatasetError(
                f"{csv_path}:1: header lacks column(s) {', '.join(missing)} (found: {', '.join(found) or 'nothing'})"
            )
        rows = 0
        for row in reader:
            rows += 1
            yield f"{csv_path}:{reader.line_num}", row
    if not rows:
        raise DatasetError(f"{csv_path}: no samples (the file has a header but no rows)")


def existing_file(base: Path, relative: str, where: str) -> str:
    """``base / relative`` as an absolute path, or a DatasetError naming the row that points nowhere."""
    path = (base / relative).resolve()
    if not path.is_file():
        raise DatasetError(f"{where}: image file not found: {path}")
    return str(path)


def open_rgb(path: str | Path) -> Image.Image:
    """Decode an image fully (``convert`` forces the read, so truncated files fail here, not later)."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise CorruptImageError(f"cannot read image {path}: {err}") from None


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
        try:
            image = open_rgb(path)
        except (CorruptImageError, FileNotFoundError) as err:
            if self.on_corrupt == "error":
                raise CorruptImageError(f"{err} (set data.on_corrupt=skip to skip unreadable images)") from None
            with self._skipped.get_lock():
                self._skipped.value += 1
            log.warning("skipped unreadable image %s: %s", path, err)
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
