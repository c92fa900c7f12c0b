"""Data: the Seq-DeepFake reader, users' manifests, transforms, loaders, statistics and the synthetic set.

Names are loaded on first use: the torch-free modules (labels, annotations, reading, preprocess, sources)
must import without torch for the serving runtimes, and importing any of them runs this file first.
"""

from __future__ import annotations

from deepfake_mlc.lazy import lazy_attributes

LAZY = {
    "SUBSET_LABELS": "deepfake_mlc.data.labels",
    "LabelStats": "deepfake_mlc.data.stats",
    "ManifestDataset": "deepfake_mlc.data.manifest",
    "MultiLabelImageDataset": "deepfake_mlc.data.base",
    "SeqDeepFake": "deepfake_mlc.data.seqdeepfake",
    "build_dataset": "deepfake_mlc.data.loader",
    "build_loader": "deepfake_mlc.data.loader",
    "build_transform": "deepfake_mlc.data.transforms",
    "collate_skipping": "deepfake_mlc.data.base",
    "label_stats": "deepfake_mlc.data.stats",
}


__getattr__ = lazy_attributes(__name__, LAZY)


__all__ = sorted(LAZY)
