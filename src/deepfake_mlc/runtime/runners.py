"""Which runtimes can run a model file here, and opening one: the single entry for predict, export, benchmarks.

Each runtime's libraries are imported when it is opened: an exported model runs without torch.
"""

from __future__ import annotations

from pathlib import Path

from deepfake_mlc.artifacts import engine_graph_path, model_kind
from deepfake_mlc.errors import RuntimeUnavailable
from deepfake_mlc.runtime.base import Runner
from deepfake_mlc.runtime.info import checkpoint_info

TORCH_RUNTIMES = ("pytorch", "pytorch-compile")
RUNTIMES = (*TORCH_RUNTIMES, "ort-cpu", "ort-cuda", "ort-tensorrt", "tensorrt")


def available_runtimes(path: Path) -> list[str]:
    """The runtimes that can run this file on this machine, the preferred (fastest) first."""
    kind = model_kind(Path(path).expanduser())
    if kind == "checkpoint":
        return list(TORCH_RUNTIMES)
    if kind == "onnx":
        from deepfake_mlc.runtime.ort_runner import ort_runtimes

        return ort_runtimes()
    from deepfake_mlc.runtime.tensorrt_runner import tensorrt_available

    return ["tensorrt"] if tensorrt_available() else []


def open_runner(path: Path, runtime: str, *, threads: int | None = None, device: str | None = None) -> Runner:
    """Load ``path`` into ``runtime``; :class:`RuntimeUnavailable` (one line) when it cannot run here.

    ``device`` places a PyTorch model (default: the GPU when there is one); the other runtimes' is their own.
    """
    path = Path(path).expanduser()
    kind = model_kind(path)
    if runtime not in RUNTIMES:
        raise RuntimeUnavailable(f"unknown runtime {runtime!r} (one of {', '.join(RUNTIMES)})")
    expected = "checkpoint" if runtime in TORCH_RUNTIMES else "tensorrt" if runtime == "tensorrt" else "onnx"
    if kind != expected:
        raise RuntimeUnavailable(f"{runtime} runs a {expected} file, not {path} (a {kind} file)")
    if kind == "checkpoint":
        from deepfake_mlc.models.loading import load_checkpoint
        from deepfake_mlc.runtime.torch_runner import TorchRunner

        model = load_checkpoint(path)[0]
        compile = runtime == "pytorch-compile"
        return TorchRunner(model, checkpoint_info(path), compile=compile, device=device, threads=threads)
    if kind == "onnx":
        from deepfake_mlc.runtime.ort_runner import OrtRunner

        return OrtRunner(path, runtime, threads=threads)
    from deepfake_mlc.runtime.tensorrt_runner import TensorRTRunner

    return TensorRTRunner(path)


def open_reference(path: Path, *, threads: int | None = None) -> Runner:
    """What a model file's other runtimes are checked against: the file in IEEE float32 arithmetic, on the CPU.

    PyTorch for a checkpoint; ONNX Runtime's CPU provider for an ONNX model and, for a TensorRT engine, for
    the ONNX model it was built from, which export keeps beside it (its precision is the engine's).
    """
    path = Path(path).expanduser()
    kind = model_kind(path)
    if kind == "checkpoint":
        return open_runner(path, "pytorch", threads=threads, device="cpu")
    if kind == "tensorrt":
        graph = engine_graph_path(path)
        if not graph.is_file():
            raise RuntimeUnavailable(f"{path} is checked against the ONNX model it was built from: {graph} is missing")
        path = graph
    return open_runner(path, "ort-cpu", threads=threads)
