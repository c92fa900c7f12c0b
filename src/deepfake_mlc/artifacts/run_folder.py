"""A training run's folder: where each of its files is, and its per-epoch summary.

```
RUN/config.yaml                  the resolved run config
RUN/checkpoints/{best,last}.*    checkpoints (see deepfake_mlc.artifacts.checkpoint)
RUN/metrics.json                 RunSummary: best metrics, why it stopped, per-epoch history
RUN/state/                       the training state for --resume (the engine's)
```
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from deepfake_mlc.artifacts.files import write_json_atomically
from deepfake_mlc.artifacts.schema import Record
from deepfake_mlc.errors import CheckpointError, InputNotFoundError


class RunSummary(Record):
    """``metrics.json``: what a finished (or stopped) run reached, and every epoch's record."""

    best: dict[str, Any] | None = None
    best_epoch: int | None = None
    stopped_by: str | None = None  # "early stopping", "pruned"; None when every epoch ran
    history: list[dict[str, Any]] = Field(default_factory=list)


@dataclass(frozen=True)
class RunFolder:
    """The files of one run, by role; ``path`` need not exist yet."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint(self, which: str = "best") -> Path:
        """The weights file of the ``best`` or ``last`` checkpoint."""
        return self.checkpoints / f"{which}.safetensors"

    @property
    def summary_file(self) -> Path:
        return self.path / "metrics.json"

    @property
    def state_dir(self) -> Path:
        return self.path / "state"

    def is_finished(self) -> bool:
        """A run that wrote its summary and a best checkpoint (one that stopped early counts)."""
        return self.summary_file.is_file() and self.checkpoint().is_file()

    def write_summary(self, summary: RunSummary) -> Path:
        return write_json_atomically(self.summary_file, summary.model_dump(mode="json"))

    def read_summary(self) -> RunSummary:
        if not self.summary_file.is_file():
            raise InputNotFoundError(f"{self.path}: no finished run here (missing {self.summary_file})")
        try:
            return RunSummary.model_validate(json.loads(self.summary_file.read_text()))
        except ValueError as err:
            raise CheckpointError(f"{self.summary_file}: unreadable run summary ({err})") from None


def find_runs(paths: Iterable[Path]) -> list[RunFolder]:
    """The run folders among ``paths`` and beneath them (a folder with a ``checkpoints/``), in path order.

    ``runs/`` finds every run a training or a search left there, as ``mlflow ui`` or Ultralytics' ``runs/``
    users expect; a path that does not exist is a user error.
    """
    found: dict[Path, RunFolder] = {}
    for path in paths:
        path = Path(path).expanduser()
        if not path.is_dir():
            raise InputNotFoundError(f"no such run folder: {path}")
        runs = sorted({marker.parent for marker in path.rglob("checkpoints") if marker.is_dir()})
        if not runs:
            raise InputNotFoundError(f"no run folder in {path} (a run folder has a checkpoints/ folder)")
        for run in runs:
            found.setdefault(run, RunFolder(run))
    return list(found.values())


def resolve_checkpoint(path: str | Path) -> Path:
    """A run folder (its best checkpoint), a ``.json`` side file or the ``.safetensors`` file itself."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = RunFolder(path).checkpoint()
    elif path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    if not path.is_file():
        raise InputNotFoundError(f"checkpoint not found: {path}")
    return path
