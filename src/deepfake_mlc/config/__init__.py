"""Typed configuration: YAML files under ``configs/`` validated into :class:`Config`."""

from deepfake_mlc.config.loader import (
    StrictModel,
    apply_overrides,
    dump_yaml,
    load_config,
    read_yaml,
    validate,
)
from deepfake_mlc.config.schema import Config, DataConfig

__all__ = [
    "Config",
    "DataConfig",
    "StrictModel",
    "apply_overrides",
    "dump_yaml",
    "load_config",
    "read_yaml",
    "validate",
]
