"""Hyperparameter search: Optuna studies over any config keys, every trial an MLflow child run."""

from deepfake_mlc.tune.space import SearchConfig, load_search
from deepfake_mlc.tune.study import TuneOptions, run_study
from deepfake_mlc.tune.study_report import TuneResult

__all__ = ["SearchConfig", "TuneOptions", "TuneResult", "load_search", "run_study"]
