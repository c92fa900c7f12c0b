"""timm networks with their weights: the hub download for users online, local files for everyone else.

``pretrained_path`` takes a ``.safetensors`` file or a timm/PyTorch checkpoint. Checkpoints are read
with ``torch.load(weights_only=True)``, which loads tensors only and never runs pickled code. The
classifier of an ImageNet checkpoint is dropped when its shape does not fit the label count; every
other missing, unexpected or mis-shaped key is an error that names the keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
import torch
from safetensors.torch import load_file
from torch import nn

from deepfake_mlc.config.schema import ModelConfig
from deepfake_mlc.errors import InputNotFoundError, WeightsError

STATE_DICT_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")


def create_timm(cfg: ModelConfig, name: str, num_classes: int, pool: str | None) -> nn.Module:
    """``timm.create_model`` with the config's weights, dropout and pooling.

    ``num_classes=0`` gives a feature extractor returning pooled ``[B, D]`` features.
    """
    kwargs: dict[str, Any] = {"num_classes": num_classes, "drop_rate": cfg.drop_rate}
    if pool is not None:
        kwargs["global_pool"] = pool
    download = cfg.pretrained and cfg.pretrained_path is None  # a local file replaces the hub's weights
    try:
        model = timm.create_model(name, pretrained=download, **kwargs)
    except OSError as err:  # huggingface_hub's and urllib's download errors, offline above all
        if not download:
            raise
        raise WeightsError(
            f"cannot get the ImageNet weights of {name} from timm's hub ({type(err).__name__}; offline?): "
            "give a local file with model.pretrained_path=FILE (.safetensors or a timm checkpoint), "
            "or train from scratch with model.pretrained=false"
        ) from None
    if cfg.pretrained_path is not None:
        load_weights(model, cfg.pretrained_path)
    return model


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or a (timm) checkpoint, ``module.`` prefixes removed."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        state = load_file(path)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # any unpickling failure means "not a checkpoint of tensors"
            raise WeightsError(f"{path}: not a PyTorch/timm checkpoint of tensors ({err})") from None
        for key in STATE_DICT_KEYS:
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: no state dict of tensors found")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load ``path`` into ``model``; a classifier that does not fit (or is absent) is left as built."""
    state = read_state_dict(path)
    own = model.state_dict()
    classifier = getattr(model, "pretrained_cfg", {}).get("classifier") or ""
    heads = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    is_head = lambda key: any(h and key.startswith(h + ".") for h in heads)  # noqa: E731
    dropped = {k for k, v in state.items() if is_head(k) and (k not in own or own[k].shape != v.shape)}
    kept = {k: v for k, v in state.items() if k not in dropped}
    wrong = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in kept.items()
        if k in own and own[k].shape != v.shape
    ]
    missing = [k for k in own if k not in kept and not is_head(k)]
    unexpected = [k for k in kept if k not in own]
    problems = []
    if wrong:
        problems.append(f"shape mismatch: {', '.join(wrong[:5])}")
    if missing:
        problems.append(f"missing keys: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}")
    if problems:
        raise WeightsError(f"{path} does not fit {type(model).__name__}: {'; '.join(problems)}")
    model.load_state_dict(kept, strict=False)  # every key was checked above; a head may stay as built
