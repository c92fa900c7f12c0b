"""Which images an evaluation reads (a Seq-DeepFake root, a manifest or a run config) and one split's samples.

Without torch: the serving runtimes read evaluation data through it, the torch data sets read the same files.
"""

from __future__ import annotations

from pathlib import Path

from deepfake_mlc.config.loader import load_config
from deepfake_mlc.config.schema import SPLITS, Config, DataConfig, ManifestSplits, Split
from deepfake_mlc.data.annotations import annotation_path, read_annotations, read_manifest
from deepfake_mlc.data.labels import SUBSET_LABELS
from deepfake_mlc.data.reading import Sample
from deepfake_mlc.errors import DatasetError


def data_for(source: Path, trained: DataConfig, subset: str | None) -> DataConfig:
    """The data to evaluate on, read with the checkpoint's own preprocessing.

    ``source`` is a Seq-DeepFake root (folder), a manifest (``.csv``) or a run config (``.yaml``).
    """
    keep = {k: getattr(trained, k) for k in ("image_size", "interpolation", "mean", "std")}
    if source.suffix in (".yaml", ".yml"):
        return load_config(Config, source).data.model_copy(update=keep)
    if source.suffix == ".csv":
        splits = ManifestSplits(train=source, val=source, test=source)
        return trained.model_copy(update={"format": "manifest", "manifests": splits, "labels": trained.labels})
    return trained.model_copy(update={"format": "seqdeepfake", "root": source, "subset": subset or trained.subset})


def trained_on(checkpoint: Path, trained: DataConfig) -> Path:
    """The data a checkpoint was trained on: its run folder's config, else its Seq-DeepFake root."""
    run_config = checkpoint.parent.parent / "config.yaml"
    if run_config.is_file():
        return run_config
    if trained.root is not None:
        return trained.root
    raise DatasetError(f"{checkpoint}: no run config beside it to find its data: give --data")


def available_splits(cfg: DataConfig) -> tuple[Split, ...]:
    """The splits the configured data set has (annotation files that exist, manifests that are set)."""
    if cfg.format == "seqdeepfake":
        assert cfg.root is not None  # enforced by DataConfig
        root = cfg.root.expanduser().resolve()
        return tuple(split for split in SPLITS if annotation_path(root, cfg.subset, split).is_file())
    assert cfg.manifests is not None  # enforced by DataConfig
    return tuple(split for split in SPLITS if getattr(cfg.manifests, split) is not None)


def require_split(data: DataConfig, split: Split, why: str) -> None:
    """A one-line DatasetError naming the splits there are when ``split`` is not one of them."""
    present = available_splits(data)
    if split not in present:
        raise DatasetError(f"the data has no {split} split (it has: {', '.join(present) or 'none'}): {why}")


def split_manifest(cfg: DataConfig, split: Split) -> Path:
    """The manifest of ``split`` in a manifest config; a DatasetError when that split has none."""
    assert cfg.manifests is not None  # enforced by DataConfig
    manifest = getattr(cfg.manifests, split)
    if manifest is None:
        raise DatasetError(f"data.manifests.{split} is not set: no manifest for the {split} split")
    return manifest


def read_split(cfg: DataConfig, split: Split) -> tuple[list[Sample], tuple[str, ...]]:
    """The samples of ``split`` of the configured data set and its label names: what ``build_dataset`` reads."""
    if cfg.format == "seqdeepfake":
        assert cfg.root is not None  # enforced by DataConfig
        return read_annotations(cfg.root.expanduser().resolve(), cfg.subset, split), SUBSET_LABELS[cfg.subset]
    assert cfg.labels is not None
    return read_manifest(split_manifest(cfg, split).expanduser().resolve(), cfg.labels), tuple(cfg.labels)
