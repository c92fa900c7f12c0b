"""The train/evaluate loop on Accelerate, its resumable state and what a person sees while it runs."""

from deepfake_mlc.engine.evaluate import predict
from deepfake_mlc.engine.preemption import TrainingStopped
from deepfake_mlc.engine.trainer import EvalHook, NonFiniteLossError, Trainer, TrainResult, resume, train

__all__ = [
    "EvalHook",
    "NonFiniteLossError",
    "TrainResult",
    "Trainer",
    "TrainingStopped",
    "predict",
    "resume",
    "train",
]
