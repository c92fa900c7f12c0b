"""A trained model back from its checkpoint: the network its config names, with its weights."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from deepfake_mlc.artifacts import CheckpointMeta, read_checkpoint
from deepfake_mlc.config import Config, validate
from deepfake_mlc.errors import CheckpointError
from deepfake_mlc.models.registry import build_model


def load_checkpoint(path: str | Path) -> tuple[nn.Module, Config, CheckpointMeta]:
    """Rebuild the model a checkpoint was trained as and load its weights: ``(model in eval mode, config, meta)``."""
    state, meta = read_checkpoint(path)
    config = validate(Config, meta.config, source=str(path))
    model = build_model(config.model, len(meta.label_names))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not fit {config.model.name} (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model.eval(), config, meta
