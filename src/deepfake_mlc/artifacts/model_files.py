"""Model files by name: which kind a path is, the formats and precisions of exports and how their files are named.

One naming scheme, shared by export and serve-bench: ``<stem>-<precision>.onnx`` / ``.engine`` beside the
checkpoint, an engine's metadata in ``NAME.engine.json`` and the ONNX graph it was built from in ``NAME.onnx``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from deepfake_mlc.errors import CheckpointError, ExportError, InputNotFoundError

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


Format = Literal["onnx", "onnx-int8", "tensorrt"]
PRECISIONS: dict[str, tuple[str, ...]] = {  # what each format can be written in, its default first
    "onnx": ("fp32", "fp16"),
    "onnx-int8": ("int8",),
    "tensorrt": ("fp16", "fp32", "int8"),
}
SUFFIXES = {"onnx": ".onnx", "onnx-int8": ".onnx", "tensorrt": ".engine"}


def export_precision(format: str, precision: str | None = None) -> str:
    """``precision`` if ``format`` can be written in it, the format's default for ``None``; else a one-line error."""
    if precision is None:
        return PRECISIONS[format][0]
    if precision not in PRECISIONS[format]:
        raise ExportError(f"--format {format} takes --precision {'|'.join(PRECISIONS[format])}")
    return precision


def export_name(model: Path, format: str, precision: str) -> str:
    """``<stem>-<precision>.onnx`` or ``.engine``: the file name export and serve-bench give an export of ``model``.

    ``<stem>`` is the checkpoint's (``best`` for ``best.safetensors``); an exported model's stem loses its
    precision, so what is derived from ``best-fp32.onnx`` is named as if made from the checkpoint.
    """
    base, _, last = model.stem.rpartition("-")
    stem = base if base and any(last in precisions for precisions in PRECISIONS.values()) else model.stem
    return f"{stem}-{precision}{SUFFIXES[format]}"


def engine_graph_path(engine: Path) -> Path:
    """The ONNX model a TensorRT engine is built from, kept beside it: strongly typed, its precision lives there."""
    return engine.with_suffix(".onnx")
