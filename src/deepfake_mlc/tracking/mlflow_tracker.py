"""MLflow run tracking that the training loop can call unconditionally.

:class:`RunTracker` hides three questions from its callers: is this the main process, is tracking
on, and where is the store. It talks to MLflow through an explicit :class:`mlflow.MlflowClient`
(never the fluent, process-global ``mlflow.start_run`` state), so several trackers can live in one
process (tests, tuning) without stepping on each other.

The default store is an SQLite file in the output folder, so no server is needed; its artifacts go
to ``<output_dir>/mlartifacts`` instead of MLflow's default ``./mlruns`` relative to the working
directory. ``mlflow ui --backend-store-uri sqlite:///<output_dir>/mlflow.db`` (the ``ui`` extra)
browses it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from deepfake_mlc.config.schema import TrackingConfig

if TYPE_CHECKING:  # MLflow is imported when a run starts: a training with tracking off runs without it
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value
TRUNCATION_MARK = "..."
SERVER_SCHEMES = ("http", "https", "databricks")  # stores whose server decides where artifacts go
TERMINAL_STATUSES = ("FINISHED", "FAILED", "KILLED")


def resolve_tracking_uri(cfg: TrackingConfig, output_dir: Path) -> str:
    """``cfg.uri``, else ``$MLFLOW_TRACKING_URI``, else an SQLite file ``<output_dir>/mlflow.db``."""
    if cfg.uri:
        return cfg.uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{(Path(output_dir) / 'mlflow.db').resolve().as_posix()}"


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mapping -> ``{"train.lr": "0.0001", ...}``, the form MLflow params take.

    Strings stay as they are; every other value is written as JSON (``true``, ``null``, ``[0.5, 1.3]``),
    so a value reads like the YAML it came from and can be pasted back as a ``key=value`` override.
    """
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, str):
            out[name] = value
        else:
            out[name] = json.dumps(value, default=str)
    return out


def _truncate(value: str) -> str:
    """Cut a param value to MLflow's limit, marking the cut (the store rejects longer values)."""
    if len(value) <= MAX_PARAM_LENGTH:
        return value
    return value[: MAX_PARAM_LENGTH - len(TRUNCATION_MARK)] + TRUNCATION_MARK


@contextmanager
def _opening_store(uri: str) -> Iterator[None]:
    """Open (create, migrate) a store quietly and, for an SQLite file, one process at a time.

    Two processes creating the same new SQLite store race in MLflow's migrations (a study's workers
    start together), so they take turns on ``<file>.lock``. MLflow's INFO lines about creating and
    migrating the database are hidden; warnings still show.
    """
    logger = logging.getLogger("mlflow.store.db.utils")
    level = logger.level
    logger.setLevel(logging.WARNING)
    lock = None
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
        lock = open(db.with_name(db.name + ".lock"), "w")  # noqa: SIM115 - closed in finally
        fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        yield
    finally:
        if lock is not None:
            lock.close()
        logger.setLevel(level)


class RunTracker:
    """One MLflow run, or nothing at all on non-main processes and when tracking is disabled.

    When inactive every method is a no-op and :attr:`run_id` is ``None``, so callers never branch.
    Used as a context manager it ends the run FINISHED, FAILED on an exception, KILLED on Ctrl-C.
    """

    def __init__(self, cfg: TrackingConfig, output_dir: Path, active: bool = True) -> None:
        self.cfg = cfg
        self.output_dir = Path(output_dir)
        self._on = active and cfg.enabled
        self._uri = resolve_tracking_uri(cfg, self.output_dir) if self._on else None
        self._client: MlflowClient | None = None
        self._run_id: str | None = None
        self._ended = False

    @property
    def run_id(self) -> str | None:
        return self._run_id

    @property
    def tracking_uri(self) -> str | None:
        """The store this tracker logs to; ``None`` when inactive."""
        return self._uri

    def start(
        self,
        run_name: str,
        params: Mapping[str, Any],
        tags: Mapping[str, str],
        run_id: str | None = None,
    ) -> str | None:
        """Create a run (or resume ``run_id``, else ``$MLFLOW_RUN_ID``), log ``params`` and ``tags``.

        ``params`` is usually ``flatten(config.model_dump(mode="json"))``; values over MLflow's 6000
        characters are cut. A resumed run keeps the params it started with (MLflow params are
        immutable): new keys are added, changed values are reported. ``$MLFLOW_RUN_ID`` lets a
        subprocess (a tuning trial) log into a run its parent created; whoever joins a run ends it.
        Returns the run id, ``None`` when inactive.
        """
        if not self._on:
            return None
        if self._run_id is not None and not self._ended:
            raise RuntimeError(f"run {self._run_id} is still active; end() it first")
        assert self._uri is not None
        run_id = run_id or os.environ.get("MLFLOW_RUN_ID") or None
        values = {str(k): _truncate(str(v)) for k, v in params.items()}
        from mlflow import MlflowClient

        with _opening_store(self._uri):  # the client opens the store: creates and migrates a new SQLite file
            self._client = client = MlflowClient(tracking_uri=self._uri)
            if run_id is None:
                self._run_id = self._create_run(client, run_name, values, tags)
            else:
                self._run_id = self._resume_run(client, run_id, values, tags)
        self._ended = False
        return self._run_id

    def _create_run(
        self, client: MlflowClient, run_name: str, params: Mapping[str, str], tags: Mapping[str, str]
    ) -> str:
        """A new run, with MLflow's usual system tags (user, source, git commit) added to ``tags``."""
        from mlflow.entities import Param
        from mlflow.tracking.context.registry import resolve_tags

        run = client.create_run(self._experiment_id(client), run_name=run_name, tags=resolve_tags(dict(tags)))
        client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
        return run.info.run_id

    def _resume_run(self, client: MlflowClient, run_id: str, params: Mapping[str, str], tags: Mapping[str, str]) -> str:
        """Reopen ``run_id``; MLflow params are immutable, so only new keys are added."""
        from mlflow.entities import Param, RunTag
        from mlflow.exceptions import MlflowException

        try:
            old = client.get_run(run_id).data.params
        except MlflowException as err:
            raise ValueError(f"cannot resume MLflow run {run_id} from {self._uri}: {err.message}") from None
        changed = [f"{k} ({old[k]!r} -> {v!r})" for k, v in params.items() if k in old and old[k] != v]
        if changed:
            log.warning("run %s keeps its original params; changed now: %s", run_id, ", ".join(changed))
        client.update_run(run_id, status="RUNNING")
        client.log_batch(
            run_id,
            params=[Param(k, v) for k, v in params.items() if k not in old],
            tags=[RunTag(k, str(v)) for k, v in tags.items()],
        )
        return run_id

    def _experiment_id(self, client: MlflowClient) -> str:
        """The configured experiment's id, created on first use with artifacts in the output folder."""
        from mlflow.exceptions import MlflowException

        local = urlparse(self._uri).scheme not in SERVER_SCHEMES
        location = (self.output_dir / "mlartifacts").resolve().as_uri() if local else None
        experiment = client.get_experiment_by_name(self.cfg.experiment)
        if experiment is None:
            try:
                return client.create_experiment(self.cfg.experiment, artifact_location=location)
            except MlflowException:  # created meanwhile by a concurrent run
                experiment = client.get_experiment_by_name(self.cfg.experiment)
                if experiment is None:
                    raise
        if experiment.lifecycle_stage != "active":
            raise ValueError(
                f"MLflow experiment {self.cfg.experiment!r} is deleted in {self._uri}: restore it or pick another name"
            )
        if location is not None and experiment.artifact_location != location:
            where = experiment.artifact_location
            log.warning("experiment %r keeps its artifacts in %s, not %s", experiment.name, where, location)
        return experiment.experiment_id

    def _target(self) -> tuple[MlflowClient, str] | None:
        """The client and run to log to; ``None`` when inactive. Logging outside a started run is a bug."""
        if not self._on:
            return None
        if self._client is None or self._run_id is None or self._ended:
            raise RuntimeError("no active MLflow run: call start() first")
        return self._client, self._run_id

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Log metrics at ``step`` in one call; NaN and infinite values are skipped with a warning."""
        if (target := self._target()) is None:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = []
        for key, value in metrics.items():
            number = float(value)
            if math.isfinite(number):
                batch.append(Metric(key, number, now, step))
            else:
                log.warning("metric %s is %s at step %d: not logged", key, number, step)
        if batch:
            client, run_id = target
            client.log_batch(run_id, metrics=batch)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Copy a file, or a folder (kept under its own name), into the run's artifacts."""
        if (target := self._target()) is not None:
            client, run_id = target
            client.log_artifact(run_id, str(path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        """Write ``text`` as the artifact ``artifact_file`` (e.g. ``config.yaml``)."""
        if (target := self._target()) is not None:
            client, run_id = target
            client.log_text(run_id, text, artifact_file)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        if (target := self._target()) is not None:
            from mlflow.entities import RunTag

            client, run_id = target
            client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def end(self, status: str = "FINISHED") -> None:
        """Mark the run FINISHED, FAILED or KILLED; later calls do nothing."""
        if status not in TERMINAL_STATUSES:
            raise ValueError(f"status must be one of {', '.join(TERMINAL_STATUSES)}, not {status!r}")
        if self._client is None or self._run_id is None or self._ended:
            return
        self._client.set_terminated(self._run_id, status)
        self._ended = True

    def __enter__(self) -> RunTracker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.end("FINISHED")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.end("KILLED")
        else:
            self.end("FAILED")
