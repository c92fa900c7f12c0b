"""Model registry in timm's style: each family file registers its named models; ``build_model`` builds one.

The registry is also the one table of the paper's rows: each model is registered with its category, the
label embeddings its graph head uses and, for the paper's models, the method name and size the paper
gives it (:class:`PaperRow`). Reports, MLflow tags and tests read them from here.

A name that is not registered but is a timm model (``convnext_tiny``, ``efficientnet_b0``...) builds a
direct classifier on that backbone, so any timm network can be trained without registering it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import timm
from torch import nn

from deepfake_mlc.config.schema import ModelConfig
from deepfake_mlc.errors import ConfigError

Category = Literal["direct", "indirect"]  # the paper's split: a CNN's own head, or a graph network's classifiers


class ModelFactory(Protocol):
    def __call__(self, cfg: ModelConfig, num_labels: int) -> nn.Module: ...


@dataclass(frozen=True)
class PaperRow:
    """How the paper's Tables I/II name a model and the size they give it (at 5 labels)."""

    method: str  # the table's method column: "ResNet50", "IML-GCN"...
    params_m: float


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: how to build it, what kind of method it is and its paper row, if it has one."""

    name: str
    category: Category
    factory: ModelFactory
    description: str
    embedding: str = ""  # the label embeddings the graph head uses unless the config says ("" without one)
    paper: PaperRow | None = None


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str, category: Category, description: str, *, embedding: str = "", paper: PaperRow | None = None
) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator: make ``factory(cfg, num_labels)`` buildable as ``model.name: <name>``."""

    def add(factory: ModelFactory) -> ModelFactory:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelEntry(name, category, factory, description, embedding, paper)
        return factory

    return add


def list_models() -> list[ModelEntry]:
    """Registered models, direct methods first, each category in registration order."""
    return sorted(_REGISTRY.values(), key=lambda entry: entry.category != "direct")


def model_entry(name: str) -> ModelEntry | None:
    """The registered model ``name``; None for other names (timm models included)."""
    return _REGISTRY.get(name)


def embedding_tag(cfg: ModelConfig) -> str:
    """The label embeddings a run's model uses, as the MLflow ``embedding`` tag: the config's kind, else the
    model's default; "none" for models without a graph head (they ignore ``model.graph``)."""
    entry = model_entry(cfg.name)
    if entry is None or entry.category == "direct":
        return "none"
    return cfg.graph.embedding.kind or entry.embedding


def build_model(cfg: ModelConfig, num_labels: int = 5) -> nn.Module:
    """The network named by ``cfg.name``, with ``num_labels`` outputs (logits)."""
    if num_labels < 1:
        raise ValueError(f"num_labels must be positive, not {num_labels}")
    entry = model_entry(cfg.name)
    if entry is not None:
        return entry.factory(cfg, num_labels)
    if timm.is_model(cfg.name):
        from deepfake_mlc.models.direct import build_direct

        return build_direct(cfg, num_labels, cfg.name)
    raise ConfigError(
        f"bad value for 'model.name': unknown model {cfg.name!r} "
        f"(registered: {', '.join(e.name for e in list_models())}; or any timm model name)"
    )


def count_parameters(model: nn.Module) -> int:
    """Trainable and frozen parameters, buffers excluded (what the paper's '# Params' counts)."""
    return sum(p.numel() for p in model.parameters())
