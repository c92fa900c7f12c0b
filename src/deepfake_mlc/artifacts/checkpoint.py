"""Checkpoint files: safetensors weights with their :class:`CheckpointMeta` embedded, plus a ``.json`` copy.

The embedded copy is what is read back (one file carries everything); the ``.json`` beside it is for
people and tools. Both are written atomically. Reading the metadata alone needs no torch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deepfake_mlc.artifacts.files import replace_atomically
from deepfake_mlc.artifacts.run_folder import resolve_checkpoint
from deepfake_mlc.artifacts.schema import CheckpointMeta, parse_checkpoint_meta
from deepfake_mlc.errors import CheckpointError

META_KEY = "deepfake_mlc"


def write_checkpoint(stem: Path, state: Mapping[str, Any], meta: CheckpointMeta) -> Path:
    """Write ``stem.safetensors`` (``state``: name -> tensor) and ``stem.json``; returns the weights file."""
    from safetensors.torch import save_file

    stem.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(meta.model_dump(mode="json"), indent=2)
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}
    weights = stem.with_name(stem.name + ".safetensors")  # not with_suffix: "model.v2" is a whole name
    replace_atomically(weights, lambda tmp: save_file(tensors, tmp, metadata={META_KEY: text}))
    replace_atomically(stem.with_name(stem.name + ".json"), lambda tmp: tmp.write_text(text + "\n"))
    return weights


def read_checkpoint_meta(path: str | Path) -> CheckpointMeta:
    """The metadata of a checkpoint (run folder, ``.safetensors`` or ``.json``) without loading its weights."""
    return _open(resolve_checkpoint(path), weights=False)[1]


def read_checkpoint(path: str | Path) -> tuple[dict[str, Any], CheckpointMeta]:
    """Weights (torch tensors) and metadata of a checkpoint written by :func:`write_checkpoint`."""
    return _open(resolve_checkpoint(path), weights=True)


def _open(path: Path, weights: bool) -> tuple[dict[str, Any], CheckpointMeta]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt" if weights else "numpy") as fh:
            text = (fh.metadata() or {}).get(META_KEY)
            state = {key: fh.get_tensor(key) for key in fh.keys()} if weights else {}  # noqa: SIM118 - no __iter__
    except Exception as err:  # a truncated, corrupt or foreign file
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None
    return state, parse_checkpoint_meta(text, str(path))
