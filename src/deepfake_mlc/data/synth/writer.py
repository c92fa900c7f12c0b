"""Writing the data set: labels planned in the main process, images (and masks) rendered and saved by workers.

Every image has its own random streams, seeded from ``(seed, subset, split, index)``, so the files do
not depend on the number of workers or the order they finish in; the CSVs are written in index order.
"""

from __future__ import annotations

import csv
import ctypes
import multiprocessing
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from deepfake_mlc.config.schema import SPLITS
from deepfake_mlc.data.labels import SUBSET_DIRS, format_step_ids, sequence_folder
from deepfake_mlc.data.masks import MASK_COLUMN, write_label_masks
from deepfake_mlc.data.synth.config import SynthConfig
from deepfake_mlc.data.synth.priors import StepPrior
from deepfake_mlc.data.synth.sample import render_sample
from deepfake_mlc.errors import OutputExistsError

SUBSET_IDS = {subset: i for i, subset in enumerate(SUBSET_DIRS)}
LABEL_STREAM, PIXEL_STREAM = 0, 1
CHANGED = 0.5  # blending weight from which a mask marks a pixel as changed by its step
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters

Job = tuple[str, str, int, tuple[int, ...]]  # subset, split, index, steps


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`generate` wrote: images per subset and split, and how long it took."""

    counts: dict[str, dict[str, int]]
    seconds: float

    @property
    def total_images(self) -> int:
        return sum(n for splits in self.counts.values() for n in splits.values())

    @property
    def images_per_second(self) -> float:
        return self.total_images / self.seconds if self.seconds > 0 else 0.0


def image_seed(seed: int, subset: str, split: str, index: int, stream: int) -> list[int]:
    """Seed of one image's random stream (``LABEL_STREAM`` for its steps, ``PIXEL_STREAM`` for pixels)."""
    return [seed, SUBSET_IDS[subset], SPLITS.index(split), index, stream]


def image_path(subset: str, split: str, index: int, steps: tuple[int, ...]) -> str:
    """``file_path`` of the CSV: relative to the output root, in the folder named by the sequence."""
    return f"{SUBSET_DIRS[subset]}/images/{split}/{sequence_folder(steps, subset)}/{index:06d}.jpg"


def mask_path(subset: str, split: str, index: int, steps: tuple[int, ...]) -> str:
    """``mask_path`` of the CSV: the image's path under ``masks/`` instead of ``images/``, as a PNG."""
    return f"{SUBSET_DIRS[subset]}/masks/{split}/{sequence_folder(steps, subset)}/{index:06d}.png"


def plan(cfg: SynthConfig) -> list[Job]:
    """The step sequence of every image, in subset, split, index order."""
    prior = StepPrior(cfg.prior, cfg.correlated)
    return [
        (
            subset,
            split,
            index,
            prior.sample(np.random.default_rng(image_seed(cfg.seed, subset, split, index, LABEL_STREAM))),
        )
        for subset in cfg.subsets
        for split in SPLITS
        for index in range(getattr(cfg.splits, split))
    ]


def generate(cfg: SynthConfig, out: str | Path, progress: bool = True) -> SynthSummary:
    """Write the data set described by ``cfg`` under ``out`` in the Seq-DeepFake layout."""
    out = Path(out)
    for subset in cfg.subsets:
        folder = out / SUBSET_DIRS[subset]
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise OutputExistsError(
                f"{folder} already exists and is not empty; delete it or choose another output folder "
                "(refusing to mix old and new images)"
            )
    start = time.perf_counter()
    jobs = plan(cfg)
    paths = (image_path, mask_path) if cfg.masks else (image_path,)
    for folder in sorted({(out / path(*job)).parent for job in jobs for path in paths}):
        folder.mkdir(parents=True, exist_ok=True)
    write = partial(
        _write_image,
        out=out,
        seed=cfg.seed,
        image_size=cfg.image_size,
        natural_attribute_rate=cfg.natural_attribute_rate,
        trace_strength=cfg.trace_strength,
        jpeg_quality=cfg.jpeg_quality,
        masks=cfg.masks,
    )
    columns = (
        TextColumn("synthesising"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("images", total=len(jobs))
        for _ in _run(write, jobs, cfg.workers):
            bar.advance(task)
    _write_annotations(out, cfg.subsets, jobs, cfg.masks)
    counts = {subset: {split: getattr(cfg.splits, split) for split in SPLITS} for subset in cfg.subsets}
    return SynthSummary(counts, time.perf_counter() - start)


def _write_image(
    job: Job,
    out: Path,
    seed: int,
    image_size: int,
    natural_attribute_rate: float,
    trace_strength: float,
    jpeg_quality: int,
    masks: bool,
) -> None:
    subset, split, index, steps = job
    sample = render_sample(
        subset,
        steps,
        image_seed(seed, subset, split, index, PIXEL_STREAM),
        image_size,
        natural_attribute_rate,
        trace_strength,
    )
    Image.fromarray(sample.image).save(out / image_path(*job), "JPEG", quality=jpeg_quality)
    if masks:
        changed = {step - 1: weight >= CHANGED for step, weight in zip(steps, sample.masks, strict=True)}
        write_label_masks(out / mask_path(*job), (image_size, image_size), changed)


def _run(fn: Callable[[Job], None], jobs: list[Job], workers: int) -> Iterator[None]:
    """``fn`` over ``jobs``, in-process or in a pool; yields once per finished job."""
    if workers == 0:
        yield from map(fn, jobs)
        return
    # forkserver: workers fork from a clean process that imported this module once, not from this one,
    # whose other threads (a gRPC client's, a runtime's pool) may hold a lock a forked child waits on forever
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
    else:
        context = multiprocessing.get_context("spawn")
    chunk = max(1, min(16, len(jobs) // (workers * 16)))  # small chunks: no worker idles long at the end
    with context.Pool(workers, initializer=_keep_freed_memory) as pool:
        yield from pool.imap_unordered(fn, jobs, chunksize=chunk)


def _keep_freed_memory() -> None:
    """Let a worker reuse the memory it frees instead of handing it back to the system (glibc only).

    Every image allocates and frees a few MB in arrays of 50-400 KB; by default glibc hands them back and
    the next image faults the pages in again (about 500 page faults per image, a few percent of the time).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return
    mallopt(M_MMAP_THRESHOLD, 16 << 20)
    mallopt(M_TRIM_THRESHOLD, 64 << 20)


def _write_annotations(out: Path, subsets: Iterable[str], jobs: Iterable[Job], masks: bool) -> None:
    """One CSV per subset and split (a header only for an empty split), rows in index order."""
    rows: dict[tuple[str, str], list[tuple[str, ...]]] = {(subset, split): [] for subset in subsets for split in SPLITS}
    for job in jobs:
        subset, split, _, steps = job
        row = (image_path(*job), format_step_ids(steps))
        rows[subset, split].append((*row, mask_path(*job)) if masks else row)
    header = ("file_path", "label", MASK_COLUMN) if masks else ("file_path", "label")
    for (subset, split), entries in rows.items():
        path = out / SUBSET_DIRS[subset] / "annotations" / f"{split}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(entries)
