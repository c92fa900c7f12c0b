"""The metadata of checkpoints and exported models, as typed, versioned records.

A checkpoint's metadata (:class:`CheckpointMeta`) is embedded in its safetensors file and mirrored in a
``.json`` beside it; an exported model's (:class:`ModelInfo`) is in the ONNX model's ``metadata_props``
or in a TensorRT engine's side file. Both carry ``schema_version``: a reader upgrades what earlier
releases wrote (:data:`SCHEMA_VERSION` 1: the ``*-v1`` formats of release 0.1.0; 2: no face crop; 3: no calibration
and no threshold policy) and refuses a newer
version with the way out, instead of misreading fields it does not know. A release that adds a field
bumps :data:`SCHEMA_VERSION` and teaches :func:`_upgrade` the step.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PositiveFloat, ValidationError, model_validator

from deepfake_mlc.config.schema import FaceCropConfig
from deepfake_mlc.errors import CheckpointError

SCHEMA_VERSION = 4
CHECKPOINT_FORMAT = "deepfake-mlc/checkpoint"
MODEL_FORMAT = "deepfake-mlc/model"
# release 0.1.0 named the version in the format string and had no schema_version
_VERSION_1_FORMATS = {"deepfake-mlc/checkpoint-v1": CHECKPOINT_FORMAT, "deepfake-mlc/model-v1": MODEL_FORMAT}
_PREPROCESSING_KEYS = ("image_size", "interpolation", "mean", "std")


class Record(BaseModel):
    """Immutable, strict: a misspelt field is a bug caught when the record is made, not a silent default."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())


NO_FACE_CROP = FaceCropConfig(policy="none")


class Preprocessing(Record):
    """How images become model inputs: the face cut out as ``face_crop`` says (or the whole image), resized
    square to ``image_size``, then ``(x / 255 - mean) / std``."""

    image_size: int
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    face_crop: FaceCropConfig = NO_FACE_CROP


class Decisions(Record):
    """How a model decides, for records with ``label_names``, ``threshold``, ``thresholds``, ``threshold_policy``
    and ``calibration``: one threshold and one temperature per label, checked when the record is read."""

    @model_validator(mode="after")
    def _one_per_label(self) -> Decisions:
        labels = len(self.label_names)  # type: ignore[attr-defined]
        thresholds, calibration = self.thresholds, self.calibration  # type: ignore[attr-defined]
        if thresholds is not None and len(thresholds) != labels:
            raise ValueError(f"{len(thresholds)} thresholds for {labels} labels")
        if calibration is not None and len(calibration.temperatures) != labels:
            raise ValueError(f"{len(calibration.temperatures)} calibration temperatures for {labels} labels")
        return self

    def decision_thresholds(self) -> tuple[float, ...]:
        """The threshold of each label: the fitted ones, else the model's single threshold."""
        if self.thresholds is not None:  # type: ignore[attr-defined]
            return self.thresholds  # type: ignore[attr-defined]
        return (self.threshold,) * len(self.label_names)  # type: ignore[attr-defined]

    def threshold_source(self) -> str:
        """Where the decision thresholds come from, in words a prediction's reader understands."""
        if self.thresholds is None:  # type: ignore[attr-defined]
            return f"fixed {self.threshold:g}"  # type: ignore[attr-defined]
        policy = self.threshold_policy  # type: ignore[attr-defined]
        return f"policy {policy}" if policy else "fitted per label"


class Calibration(Record):
    """Per-label temperatures fitted on held-out data: a label's probability is ``sigmoid(logit / T)``.

    A checkpoint stores its raw weights and this record, which every runtime applies; an export folds the
    division into its graph, so its outputs are calibrated already. ``ece_before`` / ``ece_after`` are the
    expected calibration error (equal-mass bins, all labels pooled) on the ``images`` of ``split`` it was fitted on.
    """

    method: Literal["temperature"] = "temperature"
    temperatures: tuple[PositiveFloat, ...]
    split: str
    images: int
    ece_before: float
    ece_after: float


class CheckpointMeta(Decisions):
    """What a checkpoint holds besides its weights: enough to rebuild, evaluate, export and cite the model.

    ``config`` is the resolved run config as JSON (validated into a ``Config`` by whoever builds the
    model); ``metrics`` are the validation metrics of the saved ``weights`` (raw or EMA) at ``epoch``.
    """

    format: Literal["deepfake-mlc/checkpoint"] = CHECKPOINT_FORMAT
    schema_version: int = SCHEMA_VERSION
    config: dict[str, Any]
    label_names: tuple[str, ...]
    preprocessing: Preprocessing
    threshold: float
    thresholds: tuple[float, ...] | None = None
    threshold_policy: str | None = None  # what fitted ``thresholds``: f1, fpr:X, precision:X
    calibration: Calibration | None = None
    params: int | None = None
    run_id: str | None = None  # the MLflow run, so an export can be registered against it
    epoch: int | None = None
    weights: Literal["model", "ema"] | None = None
    metrics: dict[str, Any] | None = None

    @property
    def model_name(self) -> str:
        return str(self.config["model"]["name"])

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str) -> CheckpointMeta:
        return _parse(cls, data, source, CHECKPOINT_FORMAT, "a deepfake-mlc checkpoint")


class ModelInfo(Decisions):
    """Labels, preprocessing and decision thresholds of a model file, and the checkpoint it comes from.

    ``thresholds`` (one per label, fitted on validation data by ``threshold_policy``) replace ``threshold``
    when present; ``calibration`` is applied to the outputs (in the graph of an export); ``source`` and
    ``sha256`` identify the training checkpoint, so two files can be told to hold the same model; ``precision``
    is the arithmetic the file was exported in.
    """

    format: Literal["deepfake-mlc/model"] = MODEL_FORMAT
    schema_version: int = SCHEMA_VERSION
    label_names: tuple[str, ...]
    preprocessing: Preprocessing
    threshold: float
    thresholds: tuple[float, ...] | None = None
    threshold_policy: str | None = None
    calibration: Calibration | None = None
    source: str
    sha256: str | None = None
    model: str | None = None
    run_id: str | None = None
    precision: str = "fp32"
    deepfake_mlc: str | None = None  # the release that wrote the file
    opset: int | None = None  # ONNX opset of the exported graph
    quantization: dict[str, Any] | None = None  # int8: scheme, per_channel, calibration_images
    tensorrt: str | None = None  # engines: the TensorRT version that built it
    batch_profile: dict[str, int] | None = None  # engines: min/opt/max batch of the optimisation profile

    @classmethod
    def of_checkpoint(cls, checkpoint: str, meta: CheckpointMeta, sha256: str | None) -> ModelInfo:
        """The info of a checkpoint file (``checkpoint`` is its path) from its metadata."""
        return cls(
            label_names=meta.label_names,
            preprocessing=meta.preprocessing,
            threshold=meta.threshold,
            thresholds=meta.thresholds,
            threshold_policy=meta.threshold_policy,
            calibration=meta.calibration,
            source=checkpoint,
            sha256=sha256,
            model=meta.model_name,
            run_id=meta.run_id,
        )

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str) -> ModelInfo:
        return _parse(cls, data, source, MODEL_FORMAT, "deepfake-mlc model metadata")


def parse_model_info(text: str | None, source: str, what: str) -> ModelInfo:
    """The :class:`ModelInfo` stored as JSON ``text`` in ``source`` (``what`` names the container, for errors)."""
    hint = f"{what} without deepfake-mlc metadata (export it with deepfake-mlc export)"
    return ModelInfo.from_json(_json_object(text, source, hint), source)


def parse_checkpoint_meta(text: str | None, source: str) -> CheckpointMeta:
    """The :class:`CheckpointMeta` stored as JSON ``text`` in the safetensors file ``source``."""
    hint = "a safetensors file without deepfake-mlc metadata (not a checkpoint of ours)"
    return CheckpointMeta.from_json(_json_object(text, source, hint), source)


def _json_object(text: str | None, source: str, missing: str) -> dict[str, Any]:
    if text is None:
        raise CheckpointError(f"{source}: {missing}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{source}: unreadable deepfake-mlc metadata ({err})") from None


def _parse(cls: type[Record], data: dict[str, Any], source: str, fmt: str, what: str) -> Any:
    if not isinstance(data, dict):
        raise CheckpointError(f"{source}: not {what} (metadata is not a JSON object)")
    data = _upgrade(dict(data), source, fmt, what)
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        where = f"'{key}': " if key else ""  # a check across fields (one threshold per label) names no field
        message = first["msg"].removeprefix("Value error, ")
        raise CheckpointError(f"{source}: damaged {what}: {where}{message}") from None


def _upgrade(data: dict[str, Any], source: str, fmt: str, what: str) -> dict[str, Any]:
    """Bring metadata of any known schema version to :data:`SCHEMA_VERSION`, one step at a time."""
    found = data.get("format")
    if found in _VERSION_1_FORMATS:
        data["format"], data["schema_version"] = _VERSION_1_FORMATS[found], 1
    if data.get("format") != fmt:
        raise CheckpointError(f"{source}: not {what} (format {found!r}, expected {fmt!r})")
    version = data.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{source}: damaged {what}: schema_version {version!r}")
    if version > SCHEMA_VERSION:
        raise CheckpointError(
            f"{source}: written by a newer deepfake-mlc (schema version {version}; this release reads up to "
            f"{SCHEMA_VERSION}): upgrade deepfake-mlc to read it"
        )
    if version == 1 and fmt == MODEL_FORMAT:  # 0.1.0 wrote the preprocessing keys at the top level
        data["preprocessing"] = {key: data.pop(key) for key in _PREPROCESSING_KEYS if key in data}
    if version <= 2 and isinstance(data.get("preprocessing"), dict):  # before faces: the whole image, resized
        data["preprocessing"] = {**data["preprocessing"], "face_crop": NO_FACE_CROP.model_dump()}
    if version <= 3 and data.get("thresholds") is not None:  # before policies, thresholds could only be F1's
        data["threshold_policy"] = "f1"
    data["schema_version"] = SCHEMA_VERSION
    return data
