"""ONNX -> TensorRT engine: strongly typed, one optimisation profile over the batch size, a timing cache.

TensorRT 11 removed the FP16/INT8 builder flags and calibrators: precision comes from the ONNX graph
(a float16 graph, or explicit symmetric int8 Q/DQ nodes) and the network is strongly typed. The same
code builds on TensorRT 10, where strong typing is the creation flag this module sets (11 ignores it).
For fp32 engines TF32 is switched off, so "fp32" means IEEE float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from deepfake_mlc.artifacts import engine_metadata_path, write_json_atomically
from deepfake_mlc.errors import ExportError
from deepfake_mlc.runtime.info import read_onnx_info
from deepfake_mlc.runtime.tensorrt_runner import import_tensorrt


@dataclass(frozen=True)
class BatchProfile:
    """The batch sizes an engine accepts (``min``..``max``) and the one it is tuned for (``opt``)."""

    min: int = 1
    opt: int = 16
    max: int = 128

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise ExportError(f"batch profile needs 1 <= min <= opt <= max, got {self.min}, {self.opt}, {self.max}")


def build_engine(onnx_path: Path, path: Path, timing_cache: Path, profile: BatchProfile = BatchProfile()) -> Path:
    """Build ``path`` (a serialized engine) and ``path.json`` (its metadata) from an exported ONNX model.

    ``timing_cache`` is read if present and written back, so rebuilds (other precisions, other
    profiles) skip the kernel timings already measured on this GPU.
    """
    trt = import_tensorrt()
    info = read_onnx_info(onnx_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"{onnx_path}: TensorRT cannot parse it: {' '.join(errors.split())}")
    config = builder.create_builder_config()
    if info.precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)
    image = network.get_input(0)
    channels, height, width = tuple(image.shape)[1:]
    optimisation = builder.create_optimization_profile()
    optimisation.set_shape(
        image.name, *((batch, channels, height, width) for batch in (profile.min, profile.opt, profile.max))
    )
    config.add_optimization_profile(optimisation)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    with Console(stderr=True).status(f"building a TensorRT {trt.__version__} engine from {onnx_path.name}"):
        plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(f"{onnx_path}: TensorRT could not build an engine (its log above says why)")
    timing_cache.write_bytes(memoryview(config.get_timing_cache().serialize()))
    path.write_bytes(memoryview(plan))
    batch = {"min": profile.min, "opt": profile.opt, "max": profile.max}
    built = info.model_copy(update={"tensorrt": trt.__version__, "batch_profile": batch})
    write_json_atomically(engine_metadata_path(path), built.model_dump(mode="json"))
    return path
