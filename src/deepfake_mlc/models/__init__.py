"""Models: a registry of the paper's direct and graph-based classifiers, plus any timm backbone."""

from deepfake_mlc.models import agcn, direct, gcn  # noqa: F401  (registers the model families)
from deepfake_mlc.models.backbone import load_weights
from deepfake_mlc.models.embeddings import image_embeddings, load_embeddings
from deepfake_mlc.models.gcn import FoldedClassifier, GraphClassifier
from deepfake_mlc.models.graph import label_adjacency, normalize_adjacency
from deepfake_mlc.models.loading import load_checkpoint
from deepfake_mlc.models.registry import (
    ModelEntry,
    PaperRow,
    build_model,
    count_parameters,
    embedding_tag,
    list_models,
    model_entry,
    register_model,
)

__all__ = [
    "FoldedClassifier",
    "GraphClassifier",
    "ModelEntry",
    "PaperRow",
    "build_model",
    "count_parameters",
    "embedding_tag",
    "image_embeddings",
    "label_adjacency",
    "list_models",
    "load_checkpoint",
    "load_embeddings",
    "load_weights",
    "model_entry",
    "normalize_adjacency",
    "register_model",
]
