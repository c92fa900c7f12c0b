"""What an image pip-installs (``RUN ... pip install``, read by ``packaging``), and what it leaves out."""

from __future__ import annotations

import argparse
import importlib.metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from docker_checks import cli_models
from docker_checks.dockerfiles import Image

# Left out of the serving image whatever the installed metadata says (an editable install's can be stale).
TRAINING_ONLY = frozenset({"torch", "torchvision", "timm", "accelerate", "mlflow", "optuna", "matplotlib",
                           "sqlalchemy", "alembic", "onnxscript", "safetensors"})  # fmt: skip


def pip_installs(built: Image) -> list[argparse.Namespace]:
    """Every ``pip install`` of the ``RUN`` lines, parsed: ``requirements``, ``no_deps``, ``constraint``, ..."""
    return [
        cli_models.parse(cli_models.pip_install(), argv[2:], where)
        for where, argv in built.run_commands()
        if Path(argv[0]).name == "pip" and argv[1:2] == ["install"]
    ]


def requirements(install: argparse.Namespace) -> list[Requirement]:
    """The requirement specifiers of one ``pip install`` (local wheel files left out)."""
    return [Requirement(r) for r in install.requirements if not r.endswith(".whl")]


def wheels(install: argparse.Namespace) -> list[str]:
    """The wheel files of one ``pip install``, by file name."""
    return [Path(r).name for r in install.requirements if r.endswith(".whl")]


def distributions(built: Image) -> set[str]:
    """Canonical names of the distributions the image installs by requirement (its ARGs substituted)."""
    return {canonicalize_name(r.name) for install in pip_installs(built) for r in requirements(install)}


def modules_left_out(built: Image) -> frozenset[str]:
    """Top-level modules of the package's dependencies that the image does not install (torch, timm, ...)."""
    installed = {"onnxruntime" if d == "onnxruntime-gpu" else d for d in distributions(built)}  # the same module
    required = [Requirement(r) for r in importlib.metadata.requires("deepfake-mlc") or []]
    left_out = {canonicalize_name(r.name) for r in required if not r.marker or r.marker.evaluate({"extra": ""})}
    left_out -= installed
    modules = {module for module, dists in importlib.metadata.packages_distributions().items()
               for dist in dists if canonicalize_name(dist) in left_out}  # fmt: skip
    return frozenset(modules | TRAINING_ONLY)
