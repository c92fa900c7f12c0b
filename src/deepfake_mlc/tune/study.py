"""A study: create or join it, run trials until the study-wide budget is spent, then write what was learnt.

Every worker runs this same function, in one process, in ``--workers N`` processes on one machine or
on many machines sharing a PostgreSQL storage; they meet in the study (``load_if_exists``) and in
one MLflow parent run whose id the study keeps. A worker refuses to join a study started with another
search space or base config, since their trials would not be comparable.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
from rich.console import Console

from deepfake_mlc.config import dump_yaml
from deepfake_mlc.config.schema import Config
from deepfake_mlc.errors import ConfigError
from deepfake_mlc.tracking import RunTracker, flatten
from deepfake_mlc.tracking.mlflow_tracker import resolve_tracking_uri
from deepfake_mlc.tune.handoff import TrialReporter
from deepfake_mlc.tune.space import SearchConfig
from deepfake_mlc.tune.storage import (
    SKIPPED_ATTR,
    STORAGE_ENV,
    WORKER_ATTR,
    default_storage_url,
    fail_orphaned_trials,
    open_storage,
    trials_counted,
    worker_id,
)
from deepfake_mlc.tune.study_report import TuneResult, write_study_report
from deepfake_mlc.tune.trial import (
    objective_values,
    reported_metric,
    run_in_process,
    run_subprocess,
    trial_config,
)

PARENT_ATTR = "mlflow_parent_run_id"
FINGERPRINT_ATTR = "fingerprint"
OVERRIDES_ATTR = "overrides"
RUN_ID_ATTR = "mlflow_run_id"
REASON_ATTR = "fail_reason"
PARENT_WAIT_S = 60.0  # how long a joining worker waits for the study's creator to make the MLflow run


@dataclass
class TuneOptions:
    """Everything a worker needs; the same for every worker of a study."""

    base: Config
    search: SearchConfig
    study_name: str
    n_trials: int
    timeout: float | None = None
    storage: str | None = None  # None: $OPTUNA_STORAGE, else the embedded default for ``workers``
    workers: int = 1
    launch: str | None = None  # e.g. "accelerate launch --num_processes 2": each trial a subprocess
    cpu: bool = False
    show_progress: bool = True
    worker_index: int = field(default=0, repr=False)

    @property
    def study_dir(self) -> Path:
        return self.base.output.dir / "tune" / self.study_name

    def storage_url(self) -> str:
        return (
            self.storage
            or os.environ.get(STORAGE_ENV)
            or default_storage_url(self.study_dir, self.study_name, self.workers)
        )


def run_study(opts: TuneOptions) -> TuneResult:
    """Run this worker (and, with ``workers > 1``, its sibling processes) until the budget is spent."""
    url = opts.storage_url()
    if opts.workers > 1 and url.startswith("sqlite"):
        raise ConfigError(
            "--workers N runs N processes on one study and SQLite takes one at a time: drop --storage to use a "
            "journal file, or give a server URL (postgresql+psycopg2://...)"
        )
    opts = replace(opts, storage=url)
    opts.study_dir.mkdir(parents=True, exist_ok=True)
    siblings = []
    if opts.workers > 1:
        _open_study(opts).close()  # create the study and its MLflow parent run once, before the siblings race
        gpus = _gpu_per_worker(opts)
        context = multiprocessing.get_context("spawn")
        ready = []
        for index in range(1, opts.workers):
            sibling = replace(opts, workers=1, worker_index=index, show_progress=False)
            ready.append(context.Event())
            process = context.Process(
                target=_sibling_main, args=(sibling, gpus[index], ready[-1]), name=f"tune-worker-{index}"
            )
            process.start()
            siblings.append(process)
        if gpus[0] is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = gpus[0]
        _wait_until_ready(siblings, ready)
    try:
        _work(opts)
    finally:
        for process in siblings:
            process.join()
    failed = [p.name for p in siblings if p.exitcode != 0]
    if failed:
        Console(stderr=True).print(f"[yellow]worker processes that exited with an error: {', '.join(failed)}")
    return _finish(opts)


def _gpu_per_worker(opts: TuneOptions) -> list[str | None]:
    """Round-robin GPUs over in-process workers (unless the user set ``CUDA_VISIBLE_DEVICES`` or --launch)."""
    import torch

    count = torch.cuda.device_count()
    if opts.cpu or opts.launch or count < 2 or "CUDA_VISIBLE_DEVICES" in os.environ:
        return [None] * opts.workers
    return [str(index % count) for index in range(opts.workers)]


def _sibling_main(opts: TuneOptions, gpu: str | None, ready: Any) -> None:
    if gpu is not None:  # before anything touches CUDA in this fresh process
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    _work(opts, ready)


def _wait_until_ready(siblings: list[Any], ready: list[Any]) -> None:
    """Start trials together: wait until every sibling has joined the study (or died trying)."""
    while not all(event.is_set() or not process.is_alive() for process, event in zip(siblings, ready, strict=True)):
        time.sleep(0.2)


@dataclass
class _OpenStudy:
    study: optuna.Study
    parent: RunTracker
    storage: Any

    def close(self) -> None:
        self.parent.end("FINISHED")
        self.storage.close()


def _fingerprint(opts: TuneOptions) -> str:
    text = json.dumps([opts.base.model_dump(mode="json"), opts.search.model_dump(mode="json")], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _open_study(opts: TuneOptions) -> _OpenStudy:
    """Create or join the study, check it is the same search, and join (or create) its MLflow parent run."""
    stored = open_storage(opts.storage_url())
    try:
        study, created = _create_or_load(opts, stored.storage)
        mine = _fingerprint(opts)
        if created:
            study.set_user_attr(FINGERPRINT_ATTR, mine)
        elif study.user_attrs.get(FINGERPRINT_ATTR, mine) != mine:
            raise ConfigError(
                f"study {opts.study_name!r} in {stored.url} was started with another base config or search file; "
                "pick a new --study-name (trials of different searches are not comparable)"
            )
        if [d.name.lower() for d in study.directions] != opts.search.directions:
            raise ConfigError(f"study {opts.study_name!r} optimises {study.directions}, not {opts.search.directions}")
        parent = _parent_run(study, opts, created)
    except BaseException:
        stored.close()
        raise
    return _OpenStudy(study, parent, stored)


def _create_or_load(opts: TuneOptions, storage: Any) -> tuple[optuna.Study, bool]:
    """The study, and whether this worker created it (exactly one does: the storage enforces unique names).

    Only the creator samples with the search file's seed as it is; every other worker offsets it (by its
    index, or by its process id when started on its own), so that seeded workers do not draw the same values.
    """
    common = {
        "study_name": opts.study_name,
        "storage": storage,
        "sampler": opts.search.build_sampler(opts.worker_index),
        "pruner": opts.search.pruner.build(_epochs(opts)),
    }
    try:
        return optuna.create_study(directions=opts.search.directions, **common), True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(**common)
    if opts.worker_index == 0:  # a worker started on its own joins: a seed of its own, or it repeats the others
        study.sampler = opts.search.build_sampler(os.getpid())
    return study, False


def _epochs(opts: TuneOptions) -> int:
    epochs = opts.search.fixed.get("train.epochs", opts.base.train.epochs)
    return int(epochs)


def _parent_run(study: optuna.Study, opts: TuneOptions, created: bool) -> RunTracker:
    """The study's MLflow run: made by the worker that created the study, joined by the others.

    A worker joining a study that has no trials yet waits for its creator to record the run, so that
    workers started together share one parent run.
    """
    tracking = opts.base.tracking.model_copy(update={"uri": tracking_uri(opts)})
    parent = RunTracker(tracking, opts.base.output.dir)
    tags = {"optuna.study": opts.study_name, "optuna.storage": stored_kind(opts.storage_url()), "kind": "study"}
    params = flatten({"search": opts.search.model_dump(mode="json")})
    existing = None if created else _recorded_parent(study)
    parent.start(opts.study_name, params, tags, run_id=existing)
    if existing is None and parent.run_id is not None:
        study.set_user_attr(PARENT_ATTR, parent.run_id)
        parent.log_text(dump_yaml(opts.base), "base_config.yaml")
        parent.log_text(dump_yaml(opts.search), "search.yaml")
    return parent


def _recorded_parent(study: optuna.Study) -> str | None:
    deadline = time.monotonic() + PARENT_WAIT_S
    while True:
        run_id = study.user_attrs.get(PARENT_ATTR)
        if run_id is not None or study.trials or time.monotonic() > deadline:
            return run_id
        time.sleep(0.5)


def stored_kind(url: str) -> str:
    return url.split(":", 1)[0].split("+", 1)[0]


def tracking_uri(opts: TuneOptions) -> str | None:
    """One MLflow store for the study and all its trials (each trial has its own output folder)."""
    if not opts.base.tracking.enabled:
        return None
    return resolve_tracking_uri(opts.base.tracking, opts.base.output.dir)


def _work(opts: TuneOptions, ready: Any = None) -> None:
    """One worker: trials until the study holds ``n_trials`` trials (or ``timeout`` passes).

    ``ready`` (a multiprocessing event) is set once the study is joined.
    """
    console = Console()
    opened = _open_study(opts)
    study, parent = opened.study, opened.parent
    if ready is not None:
        ready.set()
    try:
        orphans = fail_orphaned_trials(study, exclusive=opened.storage.kind == "sqlite")
        if orphans:
            console.print(f"trials {orphans} of a stopped worker were marked failed and queued again")
        if trials_counted(study) >= opts.n_trials:
            console.print(f"study {opts.study_name!r} already has {opts.n_trials} trials: nothing to run")
        else:
            study.optimize(
                lambda trial: _objective(trial, opts, parent.run_id, console),
                timeout=opts.timeout,
                catch=(Exception,),
                callbacks=[_stop_at_budget(opts.n_trials)],
            )
    finally:
        opened.close()


def _stop_at_budget(n_trials: int) -> Any:
    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trials_counted(study) >= n_trials:
            study.stop()

    return callback


def _objective(trial: optuna.Trial, opts: TuneOptions, parent_run_id: str | None, console: Console) -> Any:
    """Train one sampled config; its MLflow child run ends with the trial's state."""
    import torch

    trial.set_user_attr(WORKER_ATTR, worker_id())
    if trials_counted(trial.study, before=trial.number) >= opts.n_trials:  # trial numbers are given out in order
        trial.set_user_attr(SKIPPED_ATTR, True)
        trial.study.stop()
        raise optuna.TrialPruned("over the study's budget: not run")
    overrides = opts.search.suggest(trial)
    trial.set_user_attr(OVERRIDES_ATTR, overrides)
    run_dir = opts.study_dir / "trials" / f"trial-{trial.number:04d}"
    sampled = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    console.rule(f"trial {trial.number} of study {opts.study_name}: {sampled}")
    child = _child_run(trial, opts, parent_run_id, run_dir)
    metric = reported_metric(opts.search.objectives)
    try:
        cfg = trial_config(opts.base, overrides, run_dir, tracking_uri(opts))
        if opts.launch:
            result = run_subprocess(
                cfg, opts.launch, trial, opts.storage_url(), opts.search.pruner, metric, child.run_id, opts.cpu
            )
        else:
            reporter = TrialReporter(lambda: trial, metric, child.run_id)
            result = run_in_process(cfg, reporter, opts.cpu, opts.show_progress)
        if result.stopped_by == "pruned":
            _end_child(child, "PRUNED", "KILLED")
            raise optuna.TrialPruned(f"pruned after epoch {len(result.history)}")
        device = "cuda" if torch.cuda.is_available() and not opts.cpu else "cpu"
        values = objective_values(result, opts.search.objectives, device)
    except optuna.TrialPruned:
        raise
    except Exception as err:
        reason = f"{type(err).__name__}: {err}"
        trial.set_user_attr(REASON_ATTR, reason[:1000])
        _end_child(child, "FAIL", "FAILED", reason)
        if isinstance(err, torch.OutOfMemoryError):
            torch.cuda.empty_cache()
        console.print(f"[red]trial {trial.number} failed: {reason}")
        raise
    child.log_metrics({f"objective/{o.metric}": v for o, v in zip(opts.search.objectives, values, strict=True)}, 0)
    _end_child(child, "COMPLETE", "FINISHED")
    return values[0] if len(values) == 1 else values


def _child_run(trial: optuna.Trial, opts: TuneOptions, parent_run_id: str | None, run_dir: Path) -> RunTracker:
    """The trial's MLflow run, nested under the study's; training joins it, the worker closes it."""
    tracking = opts.base.tracking.model_copy(update={"uri": tracking_uri(opts)})
    child = RunTracker(tracking, opts.base.output.dir, active=parent_run_id is not None)
    tags = {
        "mlflow.parentRunId": parent_run_id or "",
        "optuna.study": opts.study_name,
        "optuna.trial": str(trial.number),
        "optuna.state": "RUNNING",
        "run_dir": str(run_dir),
    }
    child.start(run_dir.name, {}, tags)
    if child.run_id is not None:
        trial.set_user_attr(RUN_ID_ATTR, child.run_id)
    return child


def _end_child(child: RunTracker, state: str, status: str, reason: str | None = None) -> None:
    """Close a trial's run with the Optuna state as a tag (MLflow has no "pruned" status: KILLED)."""
    child.set_tags({"optuna.state": state, **({"fail_reason": reason[:5000]} if reason else {})})
    child.end(status)


def _finish(opts: TuneOptions) -> TuneResult:
    """The study's report, best config and plots (any worker may write them; the last one is complete)."""
    stored = open_storage(opts.storage_url(), lock=False)
    try:
        study = optuna.load_study(study_name=opts.study_name, storage=stored.storage)
        return write_study_report(study, opts)
    finally:
        stored.close()
