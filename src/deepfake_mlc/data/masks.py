"""Ground-truth manipulation masks: where each label's manipulation changed pixels, without torch.

One single-channel 8-bit PNG per image, of the image's size: bit ``i`` (value ``1 << i``) is set where the
manipulation of label ``i`` (0-based, in the data set's label order) changed the pixel, so one file holds
all labels and an original is all zeros. The annotation CSV names it in an optional ``mask_path`` column,
relative to the same base as the image: the root for Seq-DeepFake CSVs (``data synth --masks`` writes
them), the manifest's folder for a manifest. The image readers ignore the column.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from deepfake_mlc.config.schema import DataConfig, Split
from deepfake_mlc.data.annotations import annotation_path
from deepfake_mlc.data.reading import read_rows
from deepfake_mlc.data.sources import split_manifest
from deepfake_mlc.errors import CorruptImageError, DatasetError

MASK_COLUMN = "mask_path"
MAX_LABELS = 8  # one bit of a uint8 pixel per label


def write_label_masks(path: str | Path, size: tuple[int, int], masks: Mapping[int, np.ndarray]) -> None:
    """Write one mask PNG of ``size=(width, height)``: bit ``i`` where ``masks[i]`` (a bool array) is set.

    Labels absent from ``masks`` get no bit anywhere.
    """
    bits = np.zeros(size[::-1], dtype=np.uint8)
    for index, changed in masks.items():
        if not 0 <= index < MAX_LABELS:
            raise ValueError(f"label index {index} does not fit a mask (0..{MAX_LABELS - 1})")
        bits[changed] |= np.uint8(1 << index)
    Image.fromarray(bits).save(path, "PNG")


def read_label_masks(path: str | Path, num_labels: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """A mask PNG as bool ``[num_labels, height, width]``, resized (nearest) to ``size=(width, height)`` if given."""
    if not 0 < num_labels <= MAX_LABELS:
        raise ValueError(f"a mask holds 1..{MAX_LABELS} labels, not {num_labels}")
    bits = _open_mask(Path(path), size)
    if (bits >> num_labels).any():
        raise DatasetError(f"mask {path} has bits beyond its {num_labels} labels: not a mask of these labels")
    return (bits[None] >> np.arange(num_labels, dtype=np.uint8)[:, None, None] & 1).astype(bool)


def _open_mask(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    """The decoded 8-bit mask; a missing file is a DatasetError, an undecodable one a CorruptImageError."""
    try:
        img = Image.open(path)
        img.load()
    except FileNotFoundError:
        raise DatasetError(f"mask file not found: {path}") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as err:
        raise CorruptImageError(f"cannot read mask {path}: {err}") from None
    with img:
        if img.mode != "L":
            raise DatasetError(f"mask {path} is a {img.mode} image, not single-channel 8-bit (mode L)")
        if size is not None and img.size != size:
            return np.asarray(img.resize(size, Image.Resampling.NEAREST), dtype=np.uint8)
        return np.asarray(img, dtype=np.uint8)


def split_masks(cfg: DataConfig, split: Split) -> list[str | None]:
    """The absolute mask path of each sample of ``read_split(cfg, split)``, in its order (None: no mask in that row)."""
    if cfg.format == "seqdeepfake":
        assert cfg.root is not None  # enforced by DataConfig
        base = cfg.root.expanduser().resolve()
        csv_path = annotation_path(base, cfg.subset, split)
        hint = "generate the synthetic set with `deepfake-mlc data synth --masks`"
    else:
        csv_path = split_manifest(cfg, split).expanduser().resolve()
        base = csv_path.parent
        hint = "add one (a mask PNG per image, bit i for label i, relative to the manifest)"
    if not csv_path.is_file():
        raise DatasetError(f"annotation file not found: {csv_path}")
    paths: list[str | None] = []
    for where, row in read_rows(csv_path, ()):
        if MASK_COLUMN not in row:
            raise DatasetError(f"{csv_path} has no {MASK_COLUMN} column: {hint}")
        relative = (row[MASK_COLUMN] or "").strip()
        if not relative:
            paths.append(None)
            continue
        path = (base / relative).resolve()
        if not path.is_file():
            raise DatasetError(f"{where}: mask file not found: {path}")
        paths.append(str(path))
    return paths
