"""Where a study lives, chosen so that the default is safe for the workers the user starts.

- One worker, nothing given: an SQLite file. SQLite takes one writer at a time, so the file is locked
  for the worker's lifetime and a second process on it is refused with the way out.
- Several workers on this machine (``--workers N``): Optuna's journal file, which appends under a
  file lock and is safe for concurrent processes.
- Workers on many machines: any SQLAlchemy URL (``postgresql+psycopg2://...``) from ``--storage`` or
  ``$OPTUNA_STORAGE``; trials of a killed worker are failed by Optuna's heartbeat and retried.

Journal and SQLite files have no heartbeat that acts at once, but all their workers share one machine:
a running trial whose process is gone (for SQLite, whose lock is free: every running trial) is failed
and retried when a worker starts, so a killed study resumes where it stopped.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage
from optuna.trial import TrialState

from deepfake_mlc.errors import ConfigError

STORAGE_ENV = "OPTUNA_STORAGE"
JOURNAL_PREFIX = "journal:"
WORKER_ATTR = "worker"  # "host:pid" of the process running a trial
SKIPPED_ATTR = "over_budget"  # a trial created after the budget was spent, ended without training
HEARTBEAT_S = 60
GRACE_S = 180
OPEN_ATTEMPTS = 3  # workers started together on a new database race to create its tables


@dataclass
class StudyStorage:
    """An opened storage plus what a person needs to know about it."""

    storage: optuna.storages.BaseStorage
    url: str  # what another worker passes as --storage to join
    kind: str  # "sqlite", "journal" or "rdb"
    lock: IO[str] | None = None  # held open for an SQLite file's single worker

    def close(self) -> None:
        if self.lock is not None:
            self.lock.close()
            self.lock = None


def default_storage_url(study_dir: Path, study_name: str, workers: int) -> str:
    """The embedded storage for ``workers`` processes on this machine."""
    if workers > 1:
        return f"{JOURNAL_PREFIX}{(study_dir / f'{study_name}.journal').resolve()}"
    return f"sqlite:///{(study_dir / f'{study_name}.db').resolve()}"


def open_storage(url: str, lock: bool = True) -> StudyStorage:
    """Open ``url``: ``journal:PATH``, ``sqlite:///PATH`` or any other SQLAlchemy URL.

    ``lock=False`` is for a trial's own subprocess, which shares its worker's SQLite file and lock.
    """
    if url.startswith(JOURNAL_PREFIX):
        path = Path(url.removeprefix(JOURNAL_PREFIX))
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
        return StudyStorage(JournalStorage(backend), url, "journal")
    held = None
    sqlite = url.startswith("sqlite:///")
    if sqlite:
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        held = _lock_single_worker(path) if lock else None
    for attempt in range(OPEN_ATTEMPTS):
        try:
            storage = _rdb_storage(url, sqlite)
            break
        except ImportError as err:
            hint = "for PostgreSQL: pip install 'deepfake-mlc[postgres]'"
            raise ConfigError(f"study storage {_hide_password(url)}: {err} ({hint})") from None
        except Exception as err:  # a server that is down, a wrong password, or workers creating the tables at once
            if attempt + 1 == OPEN_ATTEMPTS:
                first_line = str(err).splitlines()[0]
                raise ConfigError(f"cannot open the study storage {_hide_password(url)}: {first_line}") from None
            time.sleep(1.0 + attempt)
    return StudyStorage(storage, url, "sqlite" if sqlite else "rdb", held)


def _rdb_storage(url: str, sqlite: bool) -> RDBStorage:
    with warnings.catch_warnings():  # heartbeats have been "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(
            url,
            heartbeat_interval=HEARTBEAT_S,
            grace_period=GRACE_S,
            heartbeat_stale_trial_callback=_retry(),
            engine_kwargs=None if sqlite else {"pool_pre_ping": True},
        )


def _retry() -> RetryHeartbeatStaleTrialCallback:
    """Queue a dead worker's trial again with the same parameters (twice at most)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback(max_retry=2)


def _lock_single_worker(db: Path) -> IO[str]:
    """Hold ``<db>.lock`` exclusively, or explain why a second worker may not use this SQLite file."""
    handle = open(db.with_name(db.name + ".lock"), "w")  # noqa: SIM115 - kept open while the worker lives
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ConfigError(
            f"another worker is running on the SQLite study {db}; SQLite takes one process at a time. "
            "For several workers on this machine use --workers N (a journal file), or --storage "
            "postgresql+psycopg2://... for workers on several machines"
        ) from None
    handle.write(f"{socket.gethostname()}:{os.getpid()}\n")
    handle.flush()
    return handle


def _hide_password(url: str) -> str:
    head, at, tail = url.rpartition("@")
    if not at or "://" not in head:
        return url
    scheme, _, credentials = head.partition("://")
    user, colon, _ = credentials.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{tail}"


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def fail_orphaned_trials(study: optuna.Study, exclusive: bool) -> list[int]:
    """Fail (and re-queue) the running trials of dead workers on this machine; returns their numbers.

    ``exclusive``: this worker holds the study's only lock, so every running trial is an orphan.
    """
    host = socket.gethostname()
    retry = _retry()
    orphans = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner_host, _, pid = str(trial.user_attrs.get(WORKER_ATTR, "")).rpartition(":")
        dead = owner_host == host and pid.isdigit() and not _alive(int(pid))
        if not (exclusive or dead):
            continue
        try:
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker failed it first
            continue
        retry(study, study._storage.get_trial(trial._trial_id))
        orphans.append(trial.number)
    return orphans


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def trials_counted(study: optuna.Study, before: int | None = None) -> int:
    """Trials that use up the study's budget (those numbered below ``before``, if given).

    A trial failed because its worker died is re-queued as a new trial with the same parameters: only
    the retry counts, so a killed study resumed with the same ``--n-trials`` ends with that many. A
    trial started over the budget (two workers finishing at the same moment) is skipped and not counted.
    """
    trials = study.get_trials(deepcopy=False)
    retried = {t.system_attrs.get("failed_trial") for t in trials} - {None}
    return sum(
        t.number not in retried and not t.user_attrs.get(SKIPPED_ATTR) and (before is None or t.number < before)
        for t in trials
    )
