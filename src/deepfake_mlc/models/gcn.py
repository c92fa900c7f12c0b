"""Indirect methods: a CNN for the image and a graph network that turns label nodes into classifiers.

``logits = features(image) · Wᵀ`` where ``W`` ([labels, D]) is the output of the graph network over the
label co-occurrence graph. ``W`` does not depend on the image, so :meth:`GraphClassifier.fold` turns a
trained model into a plain CNN + linear classifier for inference and export.

Registered here: ML-GCN (ResNet-101, max pooling, word embeddings) and IML-GCN (TResNet-M, average
pooling, 300-d word or 200-d image embeddings). ML-AGCN, which swaps the layer type, is in
:mod:`deepfake_mlc.models.agcn`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deepfake_mlc.config.schema import ModelConfig
from deepfake_mlc.models.backbone import create_timm
from deepfake_mlc.models.embeddings import embedding_spec
from deepfake_mlc.models.graph import GraphConvolution, normalize_adjacency
from deepfake_mlc.models.registry import PaperRow, register_model

LayerFactory = Callable[[int, int], nn.Module]


class FoldedClassifier(nn.Module):
    """Backbone + bias-free linear classifier: what a graph model computes once its graph is fixed."""

    def __init__(self, backbone: nn.Module, weight: torch.Tensor) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        with torch.no_grad():
            self.classifier.weight.copy_(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(x))


class GraphClassifier(nn.Module):
    """Two graph layers (``d -> hidden -> D``, LeakyReLU between, no bias) over the label graph.

    ``node_features`` ([labels, d]) and ``adjacency`` (the re-weighted matrix of
    :func:`~deepfake_mlc.models.graph.label_adjacency`) are buffers: they come from the training data
    through :meth:`set_label_graph` and travel with every checkpoint.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_labels: int,
        embedding_dim: int,
        hidden: int,
        make_layer: LayerFactory = GraphConvolution,
        negative_slope: float = 0.2,
        embedding_kind: str = "word",
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.embedding_kind = embedding_kind  # which node features set_label_graph expects
        self.negative_slope = negative_slope
        self.register_buffer("node_features", torch.zeros(num_labels, embedding_dim))
        self.register_buffer("adjacency", torch.eye(num_labels))
        self.gc1 = make_layer(embedding_dim, hidden)
        self.gc2 = make_layer(hidden, backbone.num_features)

    def set_label_graph(self, node_features: np.ndarray | torch.Tensor, adjacency: np.ndarray | torch.Tensor) -> None:
        """Install the label embeddings and the re-weighted co-occurrence matrix."""
        for name, value in (("node_features", node_features), ("adjacency", adjacency)):
            buffer = getattr(self, name)
            value = torch.as_tensor(value, dtype=buffer.dtype)
            if value.shape != buffer.shape:
                raise ValueError(f"{name} must have shape {tuple(buffer.shape)}, got {tuple(value.shape)}")
            buffer.copy_(value)

    def label_classifiers(self) -> torch.Tensor:
        """``W`` [labels, D]: one classifier per label, the graph network's output."""
        propagation = normalize_adjacency(self.adjacency)
        h = F.leaky_relu(self.gc1(self.node_features, propagation), self.negative_slope)
        return self.gc2(h, propagation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x) @ self.label_classifiers().t()

    def fold(self) -> FoldedClassifier:
        """The same function as a plain classifier (shares this model's backbone)."""
        with torch.no_grad():
            return FoldedClassifier(self.backbone, self.label_classifiers())


def register_graph_model(
    name: str,
    description: str,
    paper: PaperRow,
    *,
    backbone: str,
    pool: str,
    embedding: str,
    dim: int,
    make_layer: Callable[[ModelConfig], LayerFactory],
) -> None:
    """Register an indirect method with these defaults (each overridable in the config). ``embedding`` is
    stated once: the node features it is built with are the ones the registry reports for it."""

    def build(cfg: ModelConfig, num_labels: int) -> GraphClassifier:
        embedding_kind, embedding_dim = embedding_spec(cfg.graph.embedding, embedding, dim, num_labels)
        features = create_timm(cfg, cfg.backbone or backbone, 0, cfg.pool or pool)
        return GraphClassifier(
            features,
            num_labels,
            embedding_dim,
            cfg.graph.hidden,
            make_layer(cfg),
            cfg.graph.negative_slope,
            embedding_kind,
        )

    register_model(name, "indirect", description, embedding=embedding, paper=paper)(build)


def _gcn_layer(cfg: ModelConfig) -> LayerFactory:
    return GraphConvolution


register_graph_model(
    "ml_gcn",
    "ML-GCN: ResNet-101 (max pool) + 2-layer GCN on word embeddings",
    PaperRow("ML-GCN", 44.9),
    backbone="resnet101",
    pool="max",
    embedding="word",
    dim=300,
    make_layer=_gcn_layer,
)
register_graph_model(
    "iml_gcn_word",
    "IML-GCN: TResNet-M + 2-layer GCN on word embeddings",
    PaperRow("IML-GCN", 31.7),
    backbone="tresnet_m",
    pool="avg",
    embedding="word",
    dim=300,
    make_layer=_gcn_layer,
)
register_graph_model(
    "iml_gcn_image",
    "IML-GCN: TResNet-M + 2-layer GCN on 200-d image embeddings",
    PaperRow("IML-GCN", 31.6),
    backbone="tresnet_m",
    pool="avg",
    embedding="image",
    dim=200,
    make_layer=_gcn_layer,
)
