"""The :class:`~deepfake_mlc.artifacts.ModelInfo` of any model file we write, as the runtimes read it.

A checkpoint keeps it in its embedded metadata, an exported ONNX model in a ``metadata_props`` entry
(:data:`METADATA_KEY`, JSON) and a TensorRT engine, which has no room for it, in a side file
``NAME.engine.json``. So a model file alone is enough to preprocess images, name the labels and decide.
"""

from __future__ import annotations

from pathlib import Path

from deepfake_mlc.artifacts import (
    ModelInfo,
    engine_metadata_path,
    file_sha256,
    model_kind,
    parse_model_info,
    read_checkpoint_meta,
    resolve_checkpoint,
)
from deepfake_mlc.errors import CheckpointError

METADATA_KEY = "deepfake_mlc"


def checkpoint_info(path: str | Path) -> ModelInfo:
    """The info of a checkpoint (run folder or ``.safetensors``), identified by its file's SHA-256."""
    checkpoint = resolve_checkpoint(path)
    return ModelInfo.of_checkpoint(str(checkpoint), read_checkpoint_meta(checkpoint), file_sha256(checkpoint))


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())[:300]


def read_onnx_info(path: Path) -> ModelInfo:
    """The info of an exported ONNX model; a corrupt, foreign or truncated file is a one-line error.

    ONNX Runtime reads it (the ``onnx`` package is not in the serving image), in a CPU session that
    loads the graph without optimising it: the file is checked as the runtimes will read it.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # ORT's own exception types: not a model, or not one it can load
        raise CheckpointError(f"{path}: not a readable ONNX model ({_one_line(err)})") from None
    props = session.get_modelmeta().custom_metadata_map
    return parse_model_info(props.get(METADATA_KEY), str(path), "an ONNX model")


def read_export_info(path: Path) -> ModelInfo:
    """The info of an exported model (ONNX or TensorRT engine)."""
    if model_kind(path) == "onnx":
        return read_onnx_info(path)
    side = engine_metadata_path(path)
    text = side.read_text() if side.is_file() else None
    return parse_model_info(text, str(path), f"a TensorRT engine without {side.name} beside it")


def read_model_info(path: Path) -> ModelInfo:
    """The :class:`ModelInfo` of a run folder, checkpoint, ONNX model or TensorRT engine."""
    path = Path(path).expanduser()
    return checkpoint_info(path) if model_kind(path) == "checkpoint" else read_export_info(path)
