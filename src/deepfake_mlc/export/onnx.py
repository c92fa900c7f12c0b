"""PyTorch -> ONNX: one self-contained file from image to probabilities, with the model's metadata inside.

Graph heads are folded first (their classifiers do not depend on the image), so every family exports
as a plain CNN + linear layer; the sigmoid, after the model's calibration temperatures if it has them, is part
of the graph, so runtimes return the probabilities the model's thresholds were fitted on.
torch's dynamo exporter emits opset 18 natively and silently raises lower requests, so the opset
obtained is checked, not assumed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from deepfake_mlc.artifacts import Calibration, ModelInfo, replace_atomically
from deepfake_mlc.errors import ExportError
from deepfake_mlc.models.calibrated import probabilities, temperature_tensor
from deepfake_mlc.models.cam import ProbabilitiesAndMaps
from deepfake_mlc.runtime.info import METADATA_KEY, read_onnx_info

DEFAULT_OPSET = 18
MAX_BATCH = 4096
INPUT, OUTPUT, MAPS = "image", "probabilities", "class_activation_maps"


class ProbabilityModel(nn.Module):
    """What is exported: normalised images -> (calibrated) sigmoid probabilities, graph heads folded."""

    def __init__(self, model: nn.Module, calibration: Calibration | None = None) -> None:
        super().__init__()
        self.net = model.fold() if hasattr(model, "fold") else model
        self.temperatures = temperature_tensor(calibration)  # a constant of the graph: one Div before the Sigmoid

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return probabilities(self.net(images), self.temperatures)


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter's graph passes log every rewrite at INFO; only their warnings are worth showing."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def opset_of(model: onnx.ModelProto) -> int:
    return next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))


def save_model(model: onnx.ModelProto, path: Path, info: ModelInfo) -> Path:
    """Embed ``info``, check the graph (``onnx.checker``, full) and write one file atomically.

    Weights stay inside the file (no ``.onnx.data`` side file), so the file alone is the model.
    """
    props = {prop.key: prop.value for prop in model.metadata_props}
    onnx.helper.set_model_props(model, {**props, METADATA_KEY: info.model_dump_json()})
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as err:
        raise ExportError(f"{path.name}: the exported graph fails onnx.checker: {' '.join(str(err).split())}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(path, lambda tmp: onnx.save_model(model, str(tmp), save_as_external_data=False))
    return path


def export_model(model: nn.Module, path: Path, info: ModelInfo, opset: int, with_maps: bool = False) -> Path:
    """Export ``model`` (fp32, dynamic batch axis) to ``path`` with ``info`` embedded.

    ``with_maps`` adds a second output, the class activation maps ``[B, L, h, w]`` of
    :class:`~deepfake_mlc.models.cam.ProbabilitiesAndMaps`.
    """
    image_size = info.preprocessing.image_size
    wrapper = ProbabilitiesAndMaps if with_maps else ProbabilityModel
    wrapped = wrapper(model, info.calibration).eval()
    example = torch.randn(2, 3, image_size, image_size)
    with _quiet_exporter():
        program = torch.onnx.export(
            wrapped,
            (example,),
            dynamo=True,
            input_names=[INPUT],
            output_names=[OUTPUT, MAPS] if with_maps else [OUTPUT],
            opset_version=opset,
            dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},),
            verbose=False,
        )
    proto = program.model_proto
    if opset_of(proto) != opset:
        raise ExportError(f"asked for opset {opset}, torch's exporter produced {opset_of(proto)} (it emits >= 18)")
    return save_model(proto, path, info.model_copy(update={"precision": "fp32", "opset": opset}))


def save_variant(model: onnx.ModelProto, source: Path, path: Path, precision: str, **details: Any) -> Path:
    """Save a model derived from the exported fp32 ``source``, with its metadata and the new precision."""
    return save_model(model, path, read_onnx_info(source).model_copy(update={"precision": precision, **details}))


def convert_fp16(fp32_path: Path, path: Path) -> Path:
    """The fp32 model with its weights and arithmetic in float16; inputs and outputs stay float32.

    Precision lives in the graph, which is what strongly typed TensorRT (11 requires it) builds from.
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    fp16 = OnnxModel(convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True))
    fp16.topological_sort()  # the converter appends the input casts after the nodes that read them
    return save_variant(fp16.model, fp32_path, path, "fp16")
