"""What a training run started by a search needs to report to it, importable without Optuna.

A subprocess trial (``--launch "accelerate launch ..."``) finds its trial in :data:`TRIAL_ENV`; the training
command asks :func:`reporter_from_env` on every start, so this module imports Optuna only when a trial
is really handed over: a plain training runs where Optuna is not installed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

TRIAL_ENV = "DEEPFAKE_MLC_TRIAL"  # JSON that lets a subprocess trial report to its study


class TrialReporter:
    """The training loop's :class:`~deepfake_mlc.engine.EvalHook` for a trial: report, then maybe prune.

    ``metric`` is the first objective when it is a validation metric (else nothing is reported). The
    trial is opened on first use, so in a DDP subprocess only the main rank connects to the study.
    """

    def __init__(self, open_trial: Callable[[], optuna.Trial], metric: str | None, run_id: str | None) -> None:
        self._open_trial = open_trial
        self.metric = metric
        self.run_id = run_id

    @cached_property
    def trial(self) -> optuna.Trial:
        return self._open_trial()

    def should_stop(self, epoch: int, metrics: dict[str, Any]) -> bool:
        if self.metric is None:
            return False
        self.trial.report(float(metrics[self.metric]), step=epoch)
        return self.trial.should_prune()


def reporter_from_env() -> TrialReporter | None:
    """In a subprocess trial: the reporter for the trial its worker handed over (``None`` otherwise)."""
    raw = os.environ.get(TRIAL_ENV)
    if not raw:
        return None
    handoff = json.loads(raw)

    def open_trial() -> optuna.Trial:
        import optuna

        from deepfake_mlc.tune.space import PrunerConfig
        from deepfake_mlc.tune.storage import open_storage

        storage = open_storage(handoff["storage"], lock=False).storage
        pruner = PrunerConfig(**handoff["pruner"]).build(handoff["epochs"])
        study = optuna.load_study(study_name=handoff["study"], storage=storage, pruner=pruner)
        return optuna.Trial(study, handoff["trial_id"])

    return TrialReporter(open_trial, handoff["metric"], os.environ.get("MLFLOW_RUN_ID"))
