"""Reading annotation CSVs and images from disk, without torch: the data sets and the serving runtimes share it.

Every error names the file (and the CSV line) it is about.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Literal, TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from deepfake_mlc.errors import CorruptImageError, DatasetError

log = logging.getLogger(__name__)

OnCorrupt = Literal["error", "skip"]
ORIENTATION = 0x0112  # the EXIF tag: how the stored pixels must be turned to be seen upright
Sample = tuple[str, tuple[int, ...]]
T = TypeVar("T")


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


def open_rgb(path: str | Path | BinaryIO, name: str | None = None) -> Image.Image:
    """Decode an image fully (``convert`` forces the read, so truncated files fail here, not later), upright.

    ``path`` is a file, or an open binary stream (a served request's bytes) that errors call ``name``.

    An image of more than PIL's ``MAX_IMAGE_PIXELS`` (about 89 megapixels) is refused from its header,
    before decoding: a small file can claim a size that would fill the memory (a decompression bomb). A
    photo's EXIF orientation is applied (phones store portraits sideways and say so), and 16-bit or float
    grey levels are scaled to 8 bits instead of being clipped to white.
    """
    where = name or path
    try:
        with Image.open(path) as img:
            if img.width * img.height > (Image.MAX_IMAGE_PIXELS or float("inf")):
                raise _too_large(where, f"{img.width}×{img.height}")
            upright = ImageOps.exif_transpose(img) if img.getexif().get(ORIENTATION, 1) != 1 else img
            return _to_8_bit(upright).convert("RGB")
    except FileNotFoundError:
        raise
    except Image.DecompressionBombError as err:  # PIL's own refusal, from twice the limit on
        raise _too_large(where, str(err).split(" exceeds")[0]) from None
    except (UnidentifiedImageError, OSError, ValueError) as err:  # PIL names a stream by its repr: say ``name``
        raise CorruptImageError(f"cannot read image {where}: {str(err).replace(str(path), str(where))}") from None


def _to_8_bit(img: Image.Image) -> Image.Image:
    """Grey levels of 16-bit (``I;16*``), 32-bit integer (``I``) or float (``F``) images scaled to 0-255."""
    if img.mode not in ("I", "F") and not img.mode.startswith("I;16"):
        return img
    pixels = np.asarray(img, dtype=np.float64)
    top = 65535.0 if img.mode.startswith("I;16") else max(float(pixels.max()), 1.0)
    if img.mode == "F" and pixels.max() <= 1.0:
        top = 1.0
    return Image.fromarray(np.clip(pixels / top * 255 + 0.5, 0, 255).astype(np.uint8), "L")


def _too_large(path: object, size: str) -> CorruptImageError:
    limit = (Image.MAX_IMAGE_PIXELS or 0) / 1e6
    return CorruptImageError(
        f"cannot read image {path}: refused, {size} is more than {limit:.0f} megapixels "
        "(a decompression bomb, or a scan to shrink first)"
    )


def open_sample(path: str | Path, on_corrupt: OnCorrupt) -> Image.Image | None:
    """A data set's image, or ``None`` (logged with its path) when it is unreadable and ``on_corrupt`` is skip."""
    try:
        return open_rgb(path)
    except (CorruptImageError, FileNotFoundError) as err:
        if on_corrupt == "error":
            raise CorruptImageError(f"{err} (set data.on_corrupt=skip to skip unreadable images)") from None
        log.warning("skipped unreadable image %s: %s", path, err)
        return None


def evenly_spaced(items: Sequence[T], count: int) -> list[T]:
    """``count`` of ``items`` spread evenly over them, first and last included; all when there are fewer.

    Annotation files are often sorted by label or sequence: the first ``count`` would be one kind only.
    """
    if count >= len(items):
        return list(items)
    if count <= 1:
        return list(items[:count])
    step = (len(items) - 1) / (count - 1)
    return [items[round(i * step)] for i in range(count)]
