"""Hyperparameter search: Optuna studies over any config keys, every trial an MLflow child run.

Names are loaded on first use: a training started by a search imports :mod:`deepfake_mlc.tune.handoff`,
which must not need Optuna when no search is running.
"""

from __future__ import annotations

from deepfake_mlc.lazy import lazy_attributes

LAZY = {
    "SearchConfig": "deepfake_mlc.tune.space",
    "load_search": "deepfake_mlc.tune.space",
    "TuneOptions": "deepfake_mlc.tune.study",
    "run_study": "deepfake_mlc.tune.study",
    "TuneResult": "deepfake_mlc.tune.study_report",
}

__getattr__ = lazy_attributes(__name__, LAZY)

__all__ = sorted(LAZY)
