"""What a runtime must know about a model besides its weights, read from any model file we write.

A checkpoint keeps it in its embedded metadata, an exported ONNX model in a ``metadata_props`` entry
(:data:`METADATA_KEY`, JSON) and a TensorRT engine, which has no room for it, in a side file
``NAME.engine.json``. The same JSON is written in the last two cases, so a model file alone is enough
to preprocess images, name the labels and take decisions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from deepfake_mlc.errors import CheckpointError

METADATA_KEY = "deepfake_mlc"
MODEL_FORMAT = "deepfake-mlc/model-v1"
ModelKind = Literal["checkpoint", "onnx", "tensorrt"]
KIND_BY_SUFFIX: dict[str, ModelKind] = {
    ".safetensors": "checkpoint",
    ".json": "checkpoint",
    ".onnx": "onnx",
    ".engine": "tensorrt",
    ".plan": "tensorrt",
    ".trt": "tensorrt",
}


@dataclass(frozen=True)
class ModelInfo:
    """Labels, preprocessing and decision thresholds of a model, and the checkpoint it comes from.

    ``thresholds`` (one per label, tuned on validation data) replace ``threshold`` when present;
    ``source`` and ``sha256`` identify the training checkpoint, so two files can be told to hold the
    same model.
    """

    label_names: tuple[str, ...]
    image_size: int
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    threshold: float
    thresholds: tuple[float, ...] | None
    source: str
    sha256: str | None

    def decision_thresholds(self) -> tuple[float, ...]:
        """The threshold of each label: the tuned ones, else the model's single threshold."""
        return self.thresholds if self.thresholds is not None else (self.threshold,) * len(self.label_names)

    def to_metadata(self, **extra: Any) -> dict[str, Any]:
        """The JSON-ready form written into exported models, with ``extra`` keys (precision, model...)."""
        return {"format": MODEL_FORMAT, **asdict(self), **extra}

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> ModelInfo:
        thresholds = meta.get("thresholds")
        return cls(
            label_names=tuple(meta["label_names"]),
            image_size=int(meta["image_size"]),
            interpolation=str(meta["interpolation"]),
            mean=tuple(float(v) for v in meta["mean"]),
            std=tuple(float(v) for v in meta["std"]),
            threshold=float(meta["threshold"]),
            thresholds=None if thresholds is None else tuple(float(t) for t in thresholds),
            source=str(meta["source"]),
            sha256=meta.get("sha256"),
        )


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks (checkpoints are hundreds of MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_info(checkpoint: Path, meta: dict[str, Any]) -> ModelInfo:
    """The info of a checkpoint from its metadata (``checkpoint`` is the ``.safetensors`` file)."""
    pre = meta["preprocessing"]
    return ModelInfo.from_metadata(
        {
            **pre,
            "label_names": meta["label_names"],
            "threshold": meta["threshold"],
            "thresholds": meta.get("thresholds"),
            "source": str(checkpoint),
            "sha256": file_sha256(checkpoint),
        }
    )


def model_kind(path: Path) -> ModelKind:
    """Which kind of model file ``path`` is, from its name (a folder is a run folder)."""
    if path.is_dir():
        return "checkpoint"
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    kind = KIND_BY_SUFFIX.get(path.suffix.lower())
    if kind is None:
        raise CheckpointError(
            f"{path}: not a model file (expected a run folder, .safetensors, .onnx or .engine, got {path.suffix!r})"
        )
    return kind


def engine_metadata_path(engine: Path) -> Path:
    return engine.with_name(engine.name + ".json")


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())[:300]


def read_onnx_metadata(path: Path) -> dict[str, Any]:
    """Our metadata of an exported ONNX model; a corrupt, foreign or truncated file is a one-line error.

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
    return _parse_metadata(path, props.get(METADATA_KEY), "an ONNX model")


def read_export_metadata(path: Path) -> dict[str, Any]:
    """The metadata JSON of an exported model (ONNX or TensorRT engine)."""
    if model_kind(path) == "onnx":
        return read_onnx_metadata(path)
    side = engine_metadata_path(path)
    text = side.read_text() if side.is_file() else None
    return _parse_metadata(path, text, f"a TensorRT engine without {side.name} beside it")


def _parse_metadata(path: Path, text: str | None, what: str) -> dict[str, Any]:
    if text is None:
        raise CheckpointError(f"{path}: {what} without deepfake-mlc metadata (export it with deepfake-mlc export)")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: unreadable deepfake-mlc metadata ({err})") from None
    if meta.get("format") != MODEL_FORMAT:
        raise CheckpointError(f"{path}: unknown model metadata format {meta.get('format')!r}, expected {MODEL_FORMAT}")
    return meta


def read_model_info(path: Path) -> ModelInfo:
    """The :class:`ModelInfo` of a run folder, checkpoint, ONNX model or TensorRT engine."""
    path = Path(path).expanduser()
    if model_kind(path) == "checkpoint":
        from deepfake_mlc.engine.checkpoint import read_checkpoint, resolve_checkpoint  # torch, safetensors

        checkpoint = resolve_checkpoint(path)
        return checkpoint_info(checkpoint, read_checkpoint(checkpoint)[1])
    return ModelInfo.from_metadata(read_export_metadata(path))
