"""The train/evaluate loop on Accelerate, checkpoints and what a person sees while it runs."""

from deepfake_mlc.engine.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, write_checkpoint
from deepfake_mlc.engine.evaluate import predict, summarize
from deepfake_mlc.engine.trainer import EvalHook, LaunchError, NonFiniteLossError, TrainResult, train

__all__ = [
    "CheckpointError",
    "EvalHook",
    "LaunchError",
    "NonFiniteLossError",
    "TrainResult",
    "load_checkpoint",
    "predict",
    "read_checkpoint",
    "summarize",
    "train",
    "write_checkpoint",
]
