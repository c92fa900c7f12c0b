"""Checkpoints a user can ship: safetensors weights with everything needed to use them, written atomically.

A checkpoint is ``NAME.safetensors`` (the weights, with the metadata JSON embedded, which is what is
read back) plus ``NAME.json`` (the same metadata, for people and tools). Each file is written to a
temporary name and renamed into place, so a kill never leaves a half-written checkpoint. The metadata
holds the resolved config, label names, preprocessing (size, interpolation, mean, std), threshold,
metrics and which weights (raw or EMA) were saved.

The full training state for ``--resume`` (optimiser, scheduler, scaler, EMA, RNG) is Accelerate's
``save_state`` folder, swapped in atomically by :func:`save_training_state`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from deepfake_mlc.config.loader import validate
from deepfake_mlc.config.schema import Config
from deepfake_mlc.errors import CheckpointError

FORMAT = "deepfake-mlc/checkpoint-v1"
META_KEY = "deepfake_mlc"
STATE_DIR, PROGRESS_FILE = "state", "progress.json"


def replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write`` a hidden sibling, then rename it over ``path``: a crash leaves the old file, never half a new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_checkpoint(stem: Path, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write ``stem.safetensors`` and ``stem.json``; returns the weights file."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, **meta}
    text = json.dumps(meta, indent=2, default=str)
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    weights = stem.with_suffix(".safetensors")
    replace_atomically(weights, lambda tmp: save_file(state, tmp, metadata={META_KEY: text}))
    replace_atomically(stem.with_suffix(".json"), lambda tmp: tmp.write_text(text + "\n"))
    return weights


def resolve_checkpoint(path: str | Path) -> Path:
    """A run folder (its best checkpoint), a ``.json`` side file or the ``.safetensors`` file itself."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "checkpoints" / "best.safetensors"
    elif path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return path


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Weights and metadata of a checkpoint written by :func:`write_checkpoint`."""
    path = resolve_checkpoint(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta_text = (fh.metadata() or {}).get(META_KEY)
            state = {key: fh.get_tensor(key) for key in fh.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except Exception as err:  # a truncated, corrupt or foreign file
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None
    if meta_text is None:
        raise CheckpointError(f"{path}: a safetensors file without deepfake-mlc metadata (not a checkpoint of ours)")
    meta = json.loads(meta_text)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {meta.get('format')!r}, expected {FORMAT}")
    return state, meta


def load_checkpoint(path: str | Path) -> tuple[nn.Module, Config, dict[str, Any]]:
    """Rebuild the model a checkpoint was trained as and load its weights: ``(model, config, metadata)``."""
    from deepfake_mlc.models import build_model  # the models package imports the engine's users

    state, meta = read_checkpoint(path)
    config = validate(Config, meta["config"], source=str(path))
    model = build_model(config.model, len(meta["label_names"]))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not fit {config.model.name} (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model.eval(), config, meta


def save_training_state(accelerator: Any, run_dir: Path, progress: dict[str, Any]) -> None:
    """Accelerate's full training state plus our loop position, swapped in as one folder.

    All processes call it (Accelerate gathers what it needs); only the main process renames.
    """
    final, tmp, old = run_dir / STATE_DIR, run_dir / f"{STATE_DIR}.tmp", run_dir / f"{STATE_DIR}.old"
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    if accelerator.is_main_process:
        (tmp / PROGRESS_FILE).write_text(json.dumps(progress, indent=2))
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def training_state_dir(run_dir: Path) -> Path | None:
    """The latest complete training state of a run (the previous one if a kill hit the swap)."""
    for name in (STATE_DIR, f"{STATE_DIR}.old"):
        if (run_dir / name / PROGRESS_FILE).is_file():
            return run_dir / name
    return None
