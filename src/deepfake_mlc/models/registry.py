"""Model registry in timm's style: each family file registers its named models; ``build_model`` builds one.

A name that is not registered but is a timm model (``convnext_tiny``, ``efficientnet_b0``...) builds a
direct classifier on that backbone, so any timm network can be trained without registering it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import timm
from torch import nn

from deepfake_mlc.config.loader import ConfigError
from deepfake_mlc.config.schema import ModelConfig


class ModelFactory(Protocol):
    def __call__(self, cfg: ModelConfig, num_labels: int) -> nn.Module: ...


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: how to build it and what the paper reports for it."""

    name: str
    family: str
    factory: ModelFactory
    description: str
    paper_params_m: float | None = None


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str, family: str, description: str, paper_params_m: float | None = None
) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator: make ``factory(cfg, num_labels)`` buildable as ``model.name: <name>``."""

    def add(factory: ModelFactory) -> ModelFactory:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelEntry(name, family, factory, description, paper_params_m)
        return factory

    return add


def list_models() -> list[ModelEntry]:
    """Registered models, direct methods first, each family in registration order."""
    return sorted(_REGISTRY.values(), key=lambda entry: entry.family != "direct")


def build_model(cfg: ModelConfig, num_labels: int = 5) -> nn.Module:
    """The network named by ``cfg.name``, with ``num_labels`` outputs (logits)."""
    if num_labels < 1:
        raise ValueError(f"num_labels must be positive, not {num_labels}")
    entry = _REGISTRY.get(cfg.name)
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
