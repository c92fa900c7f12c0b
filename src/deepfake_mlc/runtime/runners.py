"""Which runtimes can run a model file here, and opening one: the single entry for predict, export, benchmarks.

Each runtime's libraries are imported when it is opened: an exported model runs without torch.
"""

from __future__ import annotations

from pathlib import Path

from deepfake_mlc.errors import RuntimeUnavailable
from deepfake_mlc.runtime.base import Runner
from deepfake_mlc.runtime.info import checkpoint_info, model_kind

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


def open_runner(path: Path, runtime: str, *, threads: int | None = None) -> Runner:
    """Load ``path`` into ``runtime``; :class:`RuntimeUnavailable` (one line) when it cannot run here."""
    path = Path(path).expanduser()
    kind = model_kind(path)
    if runtime not in RUNTIMES:
        raise RuntimeUnavailable(f"unknown runtime {runtime!r} (one of {', '.join(RUNTIMES)})")
    expected = "checkpoint" if runtime in TORCH_RUNTIMES else "tensorrt" if runtime == "tensorrt" else "onnx"
    if kind != expected:
        raise RuntimeUnavailable(f"{runtime} runs a {expected} file, not {path} (a {kind} file)")
    if kind == "checkpoint":
        from deepfake_mlc.engine.checkpoint import load_checkpoint, resolve_checkpoint
        from deepfake_mlc.runtime.torch_runner import TorchRunner

        checkpoint = resolve_checkpoint(path)
        model, _, meta = load_checkpoint(checkpoint)
        info = checkpoint_info(checkpoint, meta)
        return TorchRunner(model, info, compile=runtime == "pytorch-compile", threads=threads)
    if kind == "onnx":
        from deepfake_mlc.runtime.ort_runner import OrtRunner

        return OrtRunner(path, runtime, threads=threads)
    from deepfake_mlc.runtime.tensorrt_runner import TensorRTRunner

    return TensorRTRunner(path)
