"""YAML configs -> typed, validated objects, with inheritance, dotted overrides and one-line errors.

A config file may name the files it builds on under ``inherit:`` (paths relative to itself); they are
merged first, depth-first, and the file's own keys win. Command-line overrides (``optim.lr=3e-4``) are
applied last. Every validation problem is reported as one :class:`ConfigError` line naming the key.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from deepfake_mlc.errors import ConfigError

INHERIT_KEY = "inherit"

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def read_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a YAML mapping and everything it inherits, merged (the file's own keys win)."""
    path = Path(path).expanduser().resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise ConfigError(f"{path}: inheritance cycle ({chain})")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: invalid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, not {type(data).__name__}")
    parents = data.pop(INHERIT_KEY, None) or []
    if isinstance(parents, str):
        parents = [parents]
    merged: dict[str, Any] = {}
    for parent in parents:
        merged = deep_merge(merged, read_yaml(path.parent / parent, (*_seen, path)))
    return deep_merge(merged, data)


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; values of ``update`` win, nested mappings are merged key by key."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides; values are parsed as YAML (``3e-4``, ``[1, 2]``, ``null``)."""
    out = copy.deepcopy(dict(data))
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r} is not of the form key.sub=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return out


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The field names valid at ``loc`` (walking nested models), for an unknown-key message."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = _model_in(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return None


def _model_in(annotation: Any) -> Any:
    """The BaseModel class inside an annotation such as ``Foo | None``, else the annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


def check_key(model: type[BaseModel], key: str, where: str = "") -> None:
    """Raise one ConfigError line unless the dotted ``key`` names a field of ``model`` (nested sections walked)."""
    current: Any = model
    parts = key.split(".")
    for depth, part in enumerate(parts):
        fields = current.model_fields if isinstance(current, type) and issubclass(current, BaseModel) else {}
        if part not in fields:
            allowed = _allowed_keys(model, tuple(parts[:depth]))
            hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
            raise ConfigError(f"{where}{': ' if where else ''}unknown config key '{key}'{hint}")
        current = _model_in(fields[part].annotation)


def format_validation_error(err: ValidationError, model: type[BaseModel], source: str = "") -> str:
    """One line naming the first bad key, what is wrong and (where known) what is allowed."""
    first = err.errors()[0]
    loc = tuple(p for p in first["loc"] if isinstance(p, (str, int)))
    key = ".".join(str(p) for p in loc) or "<top level>"
    prefix = f"{source}: " if source else ""
    more = len(err.errors()) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    if first["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return f"{prefix}unknown config key '{key}'{hint}{tail}"
    if first["type"] == "missing":
        return f"{prefix}config key '{key}' is required{tail}"
    msg = first["msg"].removeprefix("Value error, ")
    got = first.get("input")
    shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
    return f"{prefix}bad value for '{key}': {msg}{shown}{tail}"


def validate(model: type[M], data: Mapping[str, Any], source: str = "") -> M:
    """Validate a plain mapping into ``model``, turning pydantic's report into one ConfigError line."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, model, source)) from None


def load_config(model: type[M], path: str | Path | None = None, overrides: Iterable[str] = ()) -> M:
    """Read ``path`` (with inheritance), apply ``overrides`` and validate into ``model``."""
    data = read_yaml(path) if path is not None else {}
    return validate(model, apply_overrides(data, overrides), str(path) if path else "")


def dump_yaml(config: BaseModel) -> str:
    """The resolved config as YAML, loadable again by :func:`load_config` (logged with every run)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
