"""Latency and throughput of one inference call: warm-up excluded, repeated trials, percentiles with sample counts.

Trials are kept apart in the result (not only pooled) because a trial median that moves between trials is
the mark of a busy machine, e.g. another process holding one of the cores eager PyTorch wanted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Clock = Callable[[], float]
PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class TimingPlan:
    """How long to time each (runtime, batch size): ``iters`` calls per trial, or ``min_time`` seconds if set."""

    warmup: int = 3
    iters: int = 20
    min_time: float | None = None
    trials: int = 3


def time_trial(call: Callable[[], Any], plan: TimingPlan, clock: Clock = time.perf_counter) -> list[float]:
    """Seconds of each timed call of one trial; ``min_time`` counts only time spent inside the calls.

    Every trial starts with ``warmup`` untimed calls: the first trial's absorb lazy initialisation and
    compilation, later ones refill the caches that the runtimes benchmarked in between have evicted.
    """
    for _ in range(plan.warmup):
        call()
    samples: list[float] = []
    while True:
        start = clock()
        call()
        samples.append(clock() - start)
        if (sum(samples) >= plan.min_time) if plan.min_time is not None else (len(samples) >= plan.iters):
            return samples


@dataclass(frozen=True)
class LatencyStats:
    """The timed calls of one batch size over all trials, in seconds."""

    batch_size: int
    trials: tuple[tuple[float, ...], ...]

    @property
    def samples(self) -> np.ndarray:
        return np.concatenate([np.asarray(t, dtype=np.float64) for t in self.trials])

    @property
    def images_per_s(self) -> float:
        samples = self.samples
        return self.batch_size * len(samples) / float(samples.sum())

    def summary(self) -> dict[str, Any]:
        """Milliseconds per call (p50/p90/p99 over every sample, and each trial's p50) and images/s."""
        samples = self.samples
        p = np.percentile(samples, PERCENTILES) * 1e3
        return {
            "batch_size": self.batch_size,
            **{f"p{q}_ms": float(v) for q, v in zip(PERCENTILES, p, strict=True)},
            "mean_ms": float(samples.mean() * 1e3),
            "samples": len(samples),
            "trials": len(self.trials),
            "trial_p50_ms": [float(np.median(t) * 1e3) for t in self.trials],
            "images_per_s": self.images_per_s,
        }


def speed_summary(stats: Sequence[LatencyStats]) -> dict[str, Any]:
    """Every batch size's latency and throughput, and the batch size that serves the most images per second."""
    best = max(stats, key=lambda s: s.images_per_s)
    return {
        "latency": [s.summary() for s in stats],
        "best_batch_size": best.batch_size,
        "best_images_per_s": best.images_per_s,
    }
