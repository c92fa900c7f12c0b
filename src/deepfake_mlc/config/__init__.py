"""Typed configuration: YAML files under ``configs/`` validated into :class:`Config`."""

from deepfake_mlc.config.loader import (
    StrictModel,
    apply_overrides,
    dump_yaml,
    load_config,
    read_yaml,
    validate,
)
from deepfake_mlc.config.schema import Config, DataConfig, FaceCropConfig

__all__ = [
    "Config",
    "DataConfig",
    "FaceCropConfig",
    "StrictModel",
    "apply_overrides",
    "dump_yaml",
    "load_config",
    "read_yaml",
    "validate",
]
