"""Give a graph model its label graph from the training split: co-occurrence adjacency and node features."""

from __future__ import annotations

from typing import Any

import torch

from deepfake_mlc.config.schema import Config
from deepfake_mlc.data import MultiLabelImageDataset, build_dataset, build_loader
from deepfake_mlc.data.stats import LabelStats
from deepfake_mlc.models import GraphClassifier, image_embeddings, label_adjacency, load_embeddings


@torch.no_grad()
def backbone_features(model: GraphClassifier, cfg: Config, accelerator: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled CNN features and targets of every training image (evaluation transform, no augmentation)."""
    dataset = build_dataset(cfg.data, "train", train=False)
    loader = accelerator.prepare_data_loader(build_loader(dataset, cfg.data, train=False))
    backbone = model.backbone.to(accelerator.device).eval()
    features, targets = [], []
    for batch in loader:
        if batch is None:
            continue
        images, labels = batch
        feats, labels = accelerator.gather_for_metrics((backbone(images).float(), labels))
        features.append(feats.cpu())
        targets.append(labels.cpu())
    return torch.cat(features), torch.cat(targets)


def install_label_graph(
    model: torch.nn.Module, cfg: Config, train_set: MultiLabelImageDataset, stats: LabelStats, accelerator: Any
) -> None:
    """ML-GCN's adjacency from ``stats`` and the configured node features; nothing for direct models.

    Image embeddings are computed from the training images when no file is given (the same on every
    process: the features are gathered across processes).
    """
    if not isinstance(model, GraphClassifier):
        return
    graph = cfg.model.graph
    kind, dim = model.embedding_kind, model.node_features.shape[1]
    if kind == "image" and graph.embedding.path is None:
        features, targets = backbone_features(model, cfg, accelerator)
        node_features = image_embeddings(features, targets, dim)
    else:
        node_features = load_embeddings(graph.embedding, kind, dim, train_set.label_names)
    adjacency = label_adjacency(stats.cooccurrence, stats.counts, graph.t, graph.p, graph.reweight)
    model.set_label_graph(node_features, adjacency)
