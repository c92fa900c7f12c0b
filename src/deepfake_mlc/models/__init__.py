"""Models: a registry of the paper's direct and graph-based classifiers, plus any timm backbone."""

from deepfake_mlc.models import agcn, direct, gcn  # noqa: F401  (registers the model families)
from deepfake_mlc.models.backbone import WeightsError, load_weights
from deepfake_mlc.models.embeddings import EmbeddingError, image_embeddings, load_embeddings
from deepfake_mlc.models.gcn import FoldedClassifier, GraphClassifier
from deepfake_mlc.models.graph import label_adjacency, normalize_adjacency
from deepfake_mlc.models.registry import ModelEntry, build_model, count_parameters, list_models, register_model

__all__ = [
    "EmbeddingError",
    "FoldedClassifier",
    "GraphClassifier",
    "ModelEntry",
    "WeightsError",
    "build_model",
    "count_parameters",
    "image_embeddings",
    "label_adjacency",
    "list_models",
    "load_embeddings",
    "load_weights",
    "normalize_adjacency",
    "register_model",
]
