"""Data: the Seq-DeepFake reader, users' manifests, transforms, loaders, statistics and the synthetic set."""

from deepfake_mlc.data.base import CorruptImageError, DatasetError, MultiLabelImageDataset, collate_skipping
from deepfake_mlc.data.labels import SUBSET_LABELS
from deepfake_mlc.data.loader import build_dataset, build_loader
from deepfake_mlc.data.manifest import ManifestDataset
from deepfake_mlc.data.seqdeepfake import SeqDeepFake
from deepfake_mlc.data.stats import LabelStats, label_stats
from deepfake_mlc.data.transforms import build_transform

__all__ = [
    "SUBSET_LABELS",
    "CorruptImageError",
    "DatasetError",
    "LabelStats",
    "ManifestDataset",
    "MultiLabelImageDataset",
    "SeqDeepFake",
    "build_dataset",
    "build_loader",
    "build_transform",
    "collate_skipping",
    "label_stats",
]
