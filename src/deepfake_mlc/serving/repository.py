"""Triton model repositories: ``REPO/<name>/config.pbtxt``, ``labels.txt`` and the model in ``1/``.

The config is written as protobuf text format by hand, so writing and reading a repository needs neither
protobuf nor tritonclient (the serving image and export have no use for them otherwise); the tests parse it
with Triton's own schema. The model's :class:`~deepfake_mlc.artifacts.ModelInfo` travels in the config's
``deepfake_mlc`` parameter (labels, thresholds, calibration, preprocessing and face crop), so a client
reading the model's config from the server knows how to preprocess and decide.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from deepfake_mlc.artifacts import ModelInfo, parse_model_info
from deepfake_mlc.errors import CheckpointError, ConfigError, InputNotFoundError, OutputExistsError
from deepfake_mlc.runtime.info import METADATA_KEY

Backend = Literal["python", "onnxruntime", "tensorrt"]
MODEL_NAME = "deepfake-mlc"
BACKENDS = ("onnxruntime", "tensorrt")  # the ones export writes for: Triton runs the model file itself
MAX_BATCH_SIZE = 32
QUEUE_DELAY_US = 100
CONFIG_FILE, LABELS_FILE = "config.pbtxt", "labels.txt"
MODEL_FILES: dict[str, str] = {"onnxruntime": "model.onnx", "tensorrt": "model.plan", "python": "model.py"}
PLATFORMS = {
    "onnxruntime": 'platform: "onnxruntime_onnx"',
    "tensorrt": 'platform: "tensorrt_plan"',
    "python": 'backend: "python"',
}
# the tensors: the names export gives the graph's input and output, and what the Python backend adds
IMAGE, IMAGE_BYTES, PROBABILITIES, FACES = "image", "image_bytes", "probabilities", "faces"
LABELS_KEY = "labels"


def _preferred(max_batch_size: int) -> tuple[int, ...]:
    """Powers of two from 4 below ``max_batch_size``, then itself: the batches the scheduler waits to form."""
    sizes = [size for size in (1 << k for k in range(2, max_batch_size.bit_length())) if size < max_batch_size]
    return (*sizes, max_batch_size)


@dataclass(frozen=True, kw_only=True)
class TritonModel:
    """One model of a repository: how Triton runs it (backend, instances) and batches its requests.

    ``preferred_batch_sizes`` defaults to the powers of two from 4 below ``max_batch_size``, then itself;
    ``parameters`` are extra string parameters of the config (the Python backend's model path, say).
    """

    name: str = MODEL_NAME
    backend: Backend
    info: ModelInfo
    max_batch_size: int = MAX_BATCH_SIZE
    preferred_batch_sizes: tuple[int, ...] = ()
    queue_delay_us: int = QUEUE_DELAY_US
    instance_kind: Literal["cpu", "gpu"]
    instance_count: int = 1
    parameters: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or self.name.startswith(".") or Path(self.name).name != self.name:
            raise ConfigError(f"Triton model name {self.name!r}: a folder name, without / or a leading dot")
        if self.max_batch_size < 1:
            raise ConfigError(f"Triton max batch size {self.max_batch_size}: must be 1 or more")
        if not self.preferred_batch_sizes:
            object.__setattr__(self, "preferred_batch_sizes", _preferred(self.max_batch_size))
        if not all(1 <= size <= self.max_batch_size for size in self.preferred_batch_sizes):
            raise ConfigError(
                f"preferred batch sizes {list(self.preferred_batch_sizes)}: each from 1 to {self.max_batch_size}"
            )
        reserved = sorted({METADATA_KEY, LABELS_KEY} & set(self.parameters))
        if reserved:
            raise ConfigError(f"Triton parameters {reserved} are written from the model's info, not given")


def _quote(text: str) -> str:
    """``text`` as a text-format string literal: its UTF-8 bytes, unprintable ones as octal escapes (as protobuf)."""
    escaped = []
    for byte in text.encode():
        char = chr(byte)
        if char in _ESCAPES:
            escaped.append(_ESCAPES[char])
        elif 0x20 <= byte < 0x7F:
            escaped.append(char)
        else:
            escaped.append(f"\\{byte:03o}")
    return '"' + "".join(escaped) + '"'


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"a": b"\a", b"b": b"\b", b"f": b"\f", b"v": b"\v"}
_ESCAPE = re.compile(rb"\\(?:([0-7]{1,3})|x([0-9a-fA-F]{1,2})|(.))", re.DOTALL)


def _unquote(body: str) -> str:
    """The text of a text-format string literal's ``body`` (between its quotes): :func:`_quote` undone."""

    def one(match: re.Match[bytes]) -> bytes:
        octal, hexadecimal, char = match.groups()
        if octal or hexadecimal:
            return bytes([int(octal, 8) if octal else int(hexadecimal, 16)])
        return _UNESCAPES.get(char, char)

    return _ESCAPE.sub(one, body.encode()).decode()


def _tensor(name: str, data_type: str, dims: tuple[int, ...], **fields: str | bool) -> str:
    lines = [f"    name: {_quote(name)}", f"    data_type: {data_type}", f"    dims: [ {', '.join(map(str, dims))} ]"]
    lines += [f"    {key}: {'true' if value is True else _quote(str(value))}" for key, value in fields.items()]
    return "  {\n" + "\n".join(lines) + "\n  }"


def _list(key: str, blocks: list[str]) -> str:
    return f"{key} [\n" + ",\n".join(blocks) + "\n]"


def config_text(model: TritonModel) -> str:
    """``config.pbtxt`` of ``model``, in the text format of Triton's ``ModelConfig``.

    The batch axis is Triton's (``max_batch_size``), so dims leave it out. The Python backend (the local
    server) takes preprocessed tensors (``image``) or encoded photos (``image_bytes``), whichever a request
    carries, and says how many faces each photo had (``faces``; the probabilities are the largest face's).
    """
    info, python = model.info, model.backend == "python"
    size = info.preprocessing.image_size
    inputs = [_tensor(IMAGE, "TYPE_FP32", (3, size, size), **({"optional": True} if python else {}))]
    outputs = [_tensor(PROBABILITIES, "TYPE_FP32", (len(info.label_names),), label_filename=LABELS_FILE)]
    if python:
        inputs.append(_tensor(IMAGE_BYTES, "TYPE_STRING", (1,), optional=True))
        outputs.append(_tensor(FACES, "TYPE_INT32", (1,)))
    parameters = {METADATA_KEY: info.model_dump_json(), LABELS_KEY: ",".join(info.label_names), **model.parameters}
    sections = [
        f"name: {_quote(model.name)}",
        PLATFORMS[model.backend],
        f"max_batch_size: {model.max_batch_size}",
        _list("input", inputs),
        _list("output", outputs),
        "dynamic_batching {\n"
        f"  preferred_batch_size: [ {', '.join(map(str, model.preferred_batch_sizes))} ]\n"
        f"  max_queue_delay_microseconds: {model.queue_delay_us}\n"
        "}",
        _list(
            "instance_group",
            [f"  {{\n    kind: KIND_{model.instance_kind.upper()}\n    count: {model.instance_count}\n  }}"],
        ),
        *(
            f"parameters {{\n  key: {_quote(key)}\n  value: {{ string_value: {_quote(value)} }}\n}}"
            for key, value in parameters.items()
        ),
    ]
    return "\n".join(sections) + "\n"


def model_folder(repo: Path, name: str, overwrite: bool = False) -> Path:
    """``repo/name``, refused if it holds anything and ``overwrite`` is off: a model is not replaced by accident."""
    folder = repo / name
    if not overwrite and folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise OutputExistsError(f"{folder} exists: give --overwrite to replace it")
    return folder


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def write_repository(
    repo: Path, model: TritonModel, files: Mapping[str, Path | bytes], overwrite: bool = False
) -> Path:
    """Write ``repo/<name>/``: ``config.pbtxt``, ``labels.txt`` and ``files`` (name -> source file or bytes) in ``1/``.

    The folder is written beside its final place and renamed into it, old one moved aside first: a Triton
    polling the repository, or a kill, never sees half a model (or an old version folder next to a new
    config). An existing model is refused unless ``overwrite``. Returns the model folder.
    """
    folder = model_folder(repo, model.name, overwrite)
    staged, old = repo / f".{model.name}.new", repo / f".{model.name}.old"
    for leftover in (staged, old):  # what a killed write left
        _remove(leftover)
    version = staged / "1"
    version.mkdir(parents=True)
    (staged / CONFIG_FILE).write_text(config_text(model))
    (staged / LABELS_FILE).write_text("".join(f"{label}\n" for label in model.info.label_names))
    for name, content in files.items():
        if isinstance(content, bytes):
            (version / name).write_bytes(content)
        else:
            shutil.copyfile(content, version / name)
    if folder.exists():
        os.replace(folder, old)
    os.replace(staged, folder)
    _remove(old)
    return folder


_METADATA = re.compile(
    rf'parameters\s*\{{\s*key:\s*"{re.escape(METADATA_KEY)}"\s*value:?\s*\{{\s*string_value:\s*"((?:[^"\\\n]|\\.)*)"'
)


def read_repository(repo: Path, name: str | None = None) -> tuple[Path, ModelInfo, str]:
    """The model file (``model.onnx`` / ``model.plan`` of the highest version), info and name of a model of
    a repository written by :func:`write_repository`: ``name``, or the repository's only model."""
    repo = Path(repo).expanduser()
    if not repo.is_dir():
        raise InputNotFoundError(f"Triton model repository not found: {repo}")
    models = sorted(p.name for p in repo.iterdir() if not p.name.startswith(".") and (p / CONFIG_FILE).is_file())
    if not models:
        raise CheckpointError(f"{repo}: not a Triton model repository (no <model>/{CONFIG_FILE} in it)")
    if name is None and len(models) > 1:
        raise CheckpointError(f"{repo}: {len(models)} Triton models ({', '.join(models)}): choose one with --name")
    name = name or models[0]
    if name not in models:
        raise CheckpointError(f"{repo}: no Triton model {name!r} (it has {', '.join(models)})")
    folder = repo / name
    versions = [p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()]
    if not versions:
        raise CheckpointError(f"{folder}: no version folder (1/, 2/, ...)")
    version = max(versions, key=lambda p: int(p.name))
    candidates = [version / MODEL_FILES[backend] for backend in BACKENDS]
    path = next((candidate for candidate in candidates if candidate.is_file()), None)
    if path is None:
        raise CheckpointError(f"{version}: no {' or '.join(c.name for c in candidates)}")
    config = folder / CONFIG_FILE
    try:
        match = _METADATA.search(config.read_text())
        text = None if match is None else _unquote(match[1])
    except ValueError:  # not UTF-8, or an escape that is no byte
        raise CheckpointError(f"{config}: a damaged {METADATA_KEY} parameter (not a text-format string)") from None
    return path, parse_model_info(text, str(config), "a Triton model config"), name
