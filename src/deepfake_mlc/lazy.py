"""Package attributes imported on first use (PEP 562): importing a light submodule must not load torch.

The serving image has no torch, and importing ``deepfake_mlc.data.reading`` runs ``deepfake_mlc/data/__init__.py``
first; a package that re-exports torch-backed names does so through :func:`lazy_attributes`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, sources: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``sources[name]`` (a module path) when ``name`` is first asked for."""

    def __getattr__(name: str) -> Any:
        if name in sources:
            return getattr(importlib.import_module(sources[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
