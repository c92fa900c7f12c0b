"""Which kind of model file a path is, and where an engine keeps its metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from deepfake_mlc.errors import CheckpointError, InputNotFoundError

ModelKind = Literal["checkpoint", "onnx", "tensorrt"]
KIND_BY_SUFFIX: dict[str, ModelKind] = {
    ".safetensors": "checkpoint",
    ".json": "checkpoint",
    ".onnx": "onnx",
    ".engine": "tensorrt",
    ".plan": "tensorrt",
    ".trt": "tensorrt",
}


def model_kind(path: Path) -> ModelKind:
    """Which kind of model file ``path`` is, from its name (a folder is a run folder)."""
    if path.is_dir():
        return "checkpoint"
    if not path.exists():
        raise InputNotFoundError(f"model file not found: {path}")
    kind = KIND_BY_SUFFIX.get(path.suffix.lower())
    if kind is None:
        raise CheckpointError(
            f"{path}: not a model file (expected a run folder, .safetensors, .onnx or .engine, got {path.suffix!r})"
        )
    return kind


def engine_metadata_path(engine: Path) -> Path:
    """A TensorRT engine has no room for metadata: it lives in ``NAME.engine.json`` beside it."""
    return engine.with_name(engine.name + ".json")
