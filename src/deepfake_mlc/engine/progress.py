"""What a person watching a run sees: a progress bar with loss, lr and images/s, and metric tables."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from deepfake_mlc.metrics import METRIC_NAMES
from deepfake_mlc.metrics.tables import metric_table


class TrainingDisplay:
    """A rich progress bar per epoch and a line per evaluation, on the main process only.

    ``bar=False`` (``--no-progress``, logs) keeps the evaluation lines and the final table.
    """

    def __init__(self, enabled: bool = True, bar: bool = True) -> None:
        self.enabled = enabled
        self.console = Console()
        self._bar = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}  {task.fields[speed]:.0f} img/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=not (enabled and bar),
        )
        self._task: Any = None
        self._loss = 0.0
        self._images = 0
        self._start = time.perf_counter()

    def __enter__(self) -> TrainingDisplay:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(*exc)

    def start_epoch(self, epoch: int, epochs: int, batches: int, done: int) -> None:
        if self._task is not None:
            self._bar.remove_task(self._task)
        self._task = self._bar.add_task(
            "", total=batches, completed=done, epoch=f"{epoch + 1}/{epochs}", loss=0.0, lr=0.0, speed=0.0
        )
        self._loss, self._images, self._start = 0.0, 0, time.perf_counter()

    def step(self, loss: Any, lr: float, images: int) -> None:
        """One batch done; ``loss`` (a tensor) is read only when a bar shows it: ``.item()`` waits for a GPU."""
        if self._bar.disable:
            return
        loss = float(loss)
        self._loss = loss if self._images == 0 else 0.9 * self._loss + 0.1 * loss
        self._images += images
        speed = self._images / max(time.perf_counter() - self._start, 1e-9)
        self._bar.update(self._task, advance=1, loss=self._loss, lr=lr, speed=speed)

    def evaluated(self, epoch: int, metrics: Mapping[str, float], weights: str) -> None:
        if self.enabled:
            shown = "  ".join(f"{m} {metrics[m]:.1f}" for m in METRIC_NAMES)
            suffix = " (EMA weights)" if weights == "ema" else ""
            self.console.print(f"epoch {epoch + 1} validation{suffix}: {shown}", soft_wrap=True, highlight=False)

    def note(self, text: str) -> None:
        """One line, never broken by rich (a command in it stays copyable; logs keep it whole)."""
        if self.enabled:
            self.console.print(text, soft_wrap=True, highlight=False)

    def table(
        self,
        rows: Mapping[str, Mapping[str, Any]],
        title: str,
        params: Mapping[str, int] | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        if self.enabled:
            self.console.print(metric_table(rows, title, params))
            for line in extra:
                self.console.print(line)
