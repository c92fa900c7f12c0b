"""The search file: which config keys a study varies, what it optimises, how it samples and prunes.

A search file is YAML validated like a run config, so a typo in a key or a range fails before the
first trial. Every key under ``params`` is a dotted run-config key (``train.lr``, ``loss.gamma_neg``,
``model.graph.t``, ``model.backbone``); the bounds and choices are checked against the run config's
own schema with the base config, so a study never samples a value the training would refuse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import optuna
import yaml
from pydantic import Field, model_validator

from deepfake_mlc.config.loader import StrictModel, apply_overrides, check_key, load_config, validate
from deepfake_mlc.config.schema import Config
from deepfake_mlc.metrics.multilabel import METRIC_NAMES

MODEL_METRICS = ("params", "latency_ms")  # measured on the trained model rather than on validation data
Choice = str | int | float | bool | None


class FloatParam(StrictModel):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> FloatParam:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and (self.low <= 0 or self.step is not None):
            raise ValueError("a log scale needs low > 0 and no step")
        return self

    def suggest(self, trial: optuna.Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)

    def extremes(self) -> list[Any]:
        return [self.low, self.high]


class IntParam(StrictModel):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = 1

    @model_validator(mode="after")
    def _ordered(self) -> IntParam:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and (self.low <= 0 or self.step != 1):
            raise ValueError("a log scale needs low > 0 and step 1")
        return self

    def suggest(self, trial: optuna.Trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log, step=self.step)

    def extremes(self) -> list[Any]:
        return [self.low, self.high]


class CategoricalParam(StrictModel):
    type: Literal["categorical"]
    choices: list[Choice] = Field(min_length=1)

    def suggest(self, trial: optuna.Trial, name: str) -> Choice:
        return trial.suggest_categorical(name, self.choices)

    def extremes(self) -> list[Any]:
        return list(self.choices)


Param = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]


class Objective(StrictModel):
    """A validation metric of the best epoch (``mAP``, ``OF1``...), ``params`` or ``latency_ms``."""

    metric: str = "mAP"
    direction: Literal["maximize", "minimize"] = "maximize"

    @model_validator(mode="after")
    def _known(self) -> Objective:
        if self.metric not in (*METRIC_NAMES, *MODEL_METRICS):
            raise ValueError(f"unknown metric {self.metric!r}; one of {', '.join((*METRIC_NAMES, *MODEL_METRICS))}")
        return self


class SamplerConfig(StrictModel):
    name: Literal["tpe", "random", "nsga2"] = "tpe"
    seed: int | None = Field(None, description="fixes the first worker's draws (other workers offset it)")
    n_startup_trials: int = Field(5, ge=0, description="TPE: random trials before the model is used")


class PrunerConfig(StrictModel):
    """Built the same by every worker from this file: Optuna does not store the pruner in the study."""

    name: Literal["median", "successive_halving", "hyperband", "none"] = "median"
    n_startup_trials: int = Field(3, ge=0, description="median: trials that are never pruned")
    n_warmup_steps: int = Field(1, ge=0, description="median: epochs before a trial can be pruned")
    min_resource: int = Field(1, ge=1, description="successive halving / hyperband: epochs of the first rung")
    reduction_factor: int = Field(3, ge=2)

    def build(self, epochs: int) -> optuna.pruners.BasePruner:
        if self.name == "median":
            return optuna.pruners.MedianPruner(
                n_startup_trials=self.n_startup_trials, n_warmup_steps=self.n_warmup_steps
            )
        if self.name == "successive_halving":
            return optuna.pruners.SuccessiveHalvingPruner(
                min_resource=self.min_resource, reduction_factor=self.reduction_factor
            )
        if self.name == "hyperband":
            return optuna.pruners.HyperbandPruner(
                min_resource=self.min_resource, max_resource=epochs, reduction_factor=self.reduction_factor
            )
        return optuna.pruners.NopPruner()


class SearchConfig(StrictModel):
    """A whole search file."""

    params: dict[str, Param] = Field(min_length=1, description="dotted config key -> its distribution")
    fixed: dict[str, Any] = Field(default_factory=dict, description="overrides every trial gets (e.g. fewer epochs)")
    objectives: list[Objective] = Field(default_factory=lambda: [Objective()], min_length=1)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    pruner: PrunerConfig = Field(default_factory=PrunerConfig)
    n_trials: int = Field(20, ge=1, description="trials in total, over every worker")
    timeout: float | None = Field(None, gt=0, description="seconds after which a worker starts no new trial")

    @model_validator(mode="after")
    def _consistent(self) -> SearchConfig:
        if len(self.objectives) > 1 and self.pruner.name != "none":
            raise ValueError("Optuna cannot prune a multi-objective study: set pruner.name to none")
        metrics = [o.metric for o in self.objectives]
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"an objective is listed twice: {metrics}")
        return self

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    def build_sampler(self, offset: int = 0) -> optuna.samplers.BaseSampler:
        seed = None if self.sampler.seed is None else self.sampler.seed + offset
        if self.sampler.name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if self.sampler.name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed)
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=self.sampler.n_startup_trials, multivariate=True, constant_liar=True
        )

    def suggest(self, trial: optuna.Trial) -> list[str]:
        """The trial's config overrides: the fixed ones, then one sampled value per searched key."""
        sampled = [f"{key}={_yaml_value(spec.suggest(trial, key))}" for key, spec in self.params.items()]
        return [*self.fixed_overrides(), *sampled]

    def fixed_overrides(self) -> list[str]:
        return [f"{key}={_yaml_value(value)}" for key, value in self.fixed.items()]


def _yaml_value(value: Any) -> str:
    """``value`` as YAML text that the config loader's override parsing reads back unchanged."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**9).removesuffix("\n...\n").strip()


def load_search(path: Path, base: Config) -> SearchConfig:
    """Read and validate a search file, and check every key and bound against ``base``."""
    search = load_config(SearchConfig, path)
    base_data = base.model_dump(mode="json")
    for key, value in search.fixed.items():
        check_key(Config, key, f"{path}: fixed")
        validate(Config, apply_overrides(base_data, [f"{key}={_yaml_value(value)}"]), f"{path}: fixed.{key}")
    fixed = apply_overrides(base_data, search.fixed_overrides())
    for key, spec in search.params.items():
        check_key(Config, key, f"{path}: params")
        for value in spec.extremes():
            validate(Config, apply_overrides(fixed, [f"{key}={_yaml_value(value)}"]), f"{path}: params.{key}={value}")
    return search
