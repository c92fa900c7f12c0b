"""Stopping when the cluster asks, and saving often enough that a kill costs little.

Kubernetes, Slurm and spot instances send SIGTERM before they kill a job (``torchrun`` and ``accelerate
launch`` pass it on to every rank); a person sends SIGINT with Ctrl-C. :class:`StopSignals` turns either
into a request that the loop reads between optimiser steps: every rank finishes its step, the training
state is saved mid-epoch and :class:`TrainingStopped` ends the run with the signal's exit status. A second
Ctrl-C interrupts at once. The same check saves the state every ``train.checkpoint_every_minutes`` or
``train.checkpoint_every_steps``, so a SIGKILL or a lost node loses at most that much work.

Ranks decide together (one small all-reduce per optimiser step, only when there are several): a rank
that saved alone would wait forever for the others inside Accelerate's collective save.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import Any

import torch

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingStopped(KeyboardInterrupt):
    """The run stopped on a signal after saving its state; ``exit_status`` is the shell's 128 + signal."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.exit_status = 128 + signum


class StopSignals:
    """SIGTERM and SIGINT as a flag, and the periodic-save clock, polled by the loop after each optimiser step.

    Handlers are installed only in the main thread (Python allows no other) and put back on exit.
    """

    def __init__(self, accelerator: Any, every_minutes: float | None, every_steps: int | None) -> None:
        self.accelerator = accelerator
        self.every_seconds = None if every_minutes is None else 60.0 * every_minutes
        self.every_steps = every_steps
        self.received: int | None = None
        self._saved_at = time.monotonic()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._receive)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _receive(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum
        if signum == signal.SIGINT:  # a second Ctrl-C is not a request: it interrupts wherever the loop is
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def poll(self, global_step: int) -> tuple[bool, bool]:
        """``(stop, save)``, the same on every rank: stop on a signal any rank got; save when the clock says."""
        due = (self.every_steps is not None and global_step % self.every_steps == 0) or (
            self.every_seconds is not None and time.monotonic() - self._saved_at >= self.every_seconds
        )
        stop = self.received is not None
        if self.accelerator.num_processes > 1:
            flags = torch.tensor([float(stop), float(due)], device=self.accelerator.device)
            stop, due = (bool(v > 0) for v in self.accelerator.reduce(flags, "sum").tolist())
        return stop, stop or due

    def saved(self) -> None:
        self._saved_at = time.monotonic()

    def signal_name(self) -> str:
        return signal.Signals(self.received).name if self.received is not None else "a signal from another rank"
