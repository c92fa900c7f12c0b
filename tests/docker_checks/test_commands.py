"""Every command the Dockerfiles, compose.yaml and docker/README.md run, parsed by the real parser of its engine.

The README is checked by what its commands mean (their parsed options), not by how its lines are written.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from docker_checks import CODE_ENV, DOCKERFILES, compose
from docker_checks.cli_models import parse
from docker_checks.commands import Checker, cli_parser, documented, stack_checker
from docker_checks.dockerfiles import image

TOOL_ENV = re.compile(r"^(CUDA_VISIBLE_DEVICES|NVIDIA_VISIBLE_DEVICES|NCCL_\w+)$")  # CUDA's and NCCL's own


@pytest.fixture(scope="module")
def readme() -> Checker:
    """docker/README.md's commands, checked once: every one that calls something of this project must pass."""
    checker = stack_checker()
    for where, argv in documented():
        checker.check(argv, where)
    return checker


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_entry_points_exist(path):
    command = image(path).command()
    assert Checker().check(command, path.name), command


def test_compose_commands_exist():
    checker = Checker(services=compose.services())
    for name, service in compose.services().items():
        built = compose.service_image(service)
        if built is not None:
            argv = built.command(service.get("entrypoint"), service.get("command"))
            assert checker.check(argv, f"compose.yaml:{name}"), f"{name}: {argv}"
    assert {c.tool for c in checker.commands} >= {"deepfake-mlc", "optuna", "mlflow server"}


def test_readme_commands_exist_and_validate(readme):
    for where, name in readme.env:
        assert name in CODE_ENV or TOOL_ENV.match(name), f"{where}: {name} is read by nothing here"
    assert {name for _, name in readme.env} >= set(CODE_ENV)


def test_readme_shows_each_recipe(readme):
    """Single-node multi-GPU, multi-node, the shared study, serving."""
    launches = readme.parsed("accelerate launch")
    assert any(a.config_file == "configs/accelerate/multi_gpu.yaml" and a.training_script == "train" for a in launches)
    assert any((a.num_machines or 0) > 1 and a.machine_rank is not None and a.main_process_ip for a in launches)
    assert any(a.command == "compose" and a.subcommand == "up" and a.scale for a in readme.parsed("docker"))
    cli = [a for a in readme.parsed("deepfake-mlc") if a is not None]
    assert any(a.command == "tune" and a.study_name for a in cli)
    assert {"predict", "serve-bench"} <= {a.command for a in cli}


def test_readme_shows_serving_with_triton(readme):
    """Export a Triton repository (both backends), start the `triton` service by its profile, ask it whether it
    is ready, load-test it with serve-bench, stop it."""
    cli = [a for a in readme.parsed("deepfake-mlc", typed=True) if a is not None]
    exports = {a.backend for a in cli if a.command == "export" and a.format == "triton"}
    assert exports >= {"onnxruntime", "tensorrt"}, exports
    assert any(a.command == "serve-bench" and a.server for a in cli), "no serve-bench against the server"
    composed = [a for a in readme.parsed("docker") if a.command == "compose"]
    started = [a for a in composed if a.subcommand == "up" and "triton" in a.services]
    assert started and all(a.profile == ["serve"] for a in started)
    assert any(a.subcommand in ("stop", "down") and "triton" in a.services for a in composed)
    probes = [urlsplit(url if "://" in url else f"http://{url}") for a in readme.parsed("curl") for url in a.urls]
    http = [int(p["published"]) for p in compose.services()["triton"]["ports"] if p["target"] == 8000]
    assert any((u.port, u.path) == (http[0], "/v2/health/ready") for u in probes), "no readiness probe of Triton"


def test_readme_shows_the_tune_worker_command(readme):
    worker = compose.services()["tune-worker"]
    assert worker["entrypoint"] == ["deepfake-mlc"]
    args = parse(cli_parser(), worker["command"], "compose.yaml:tune-worker")
    typed = readme.parsed("deepfake-mlc", typed=True)
    assert args in typed, "docker/README.md does not show the command every tune-worker runs"


@pytest.mark.parametrize(
    "argv",
    [
        "deepfake-mlc trian --config configs/quickstart.yaml",  # no such sub-command
        "deepfake-mlc train --config configs/quickstart.yaml --set train.lrr=1",  # no such config key
        "deepfake-mlc train --config configs/missing.yaml",  # no such config file
        "accelerate launch --num_machine 2 train --config configs/quickstart.yaml",  # no such option
        "accelerate launch trian --config configs/quickstart.yaml",  # no such launcher
        "optuna best-trail",  # no such command
        "mlflow server --backend-store x",  # no such option
        "tritonserver --model-repository=/models --strict-readyness=true",  # no such option
        "tritonserver --model-repository=/models --strict-readiness=maybe",  # not a boolean
        "tritonserver --model-repository=/models --exit-timeout-secs=soon",  # not an integer
    ],
)
def test_command_checker_rejects_what_does_not_exist(argv):
    """The checks above can fail: an unknown sub-command, option, config key or launcher is caught."""
    with pytest.raises(Exception):  # noqa: B017 - AssertionError, ConfigError or click's errors alike
        Checker().check(argv.split(), "test")


@pytest.mark.parametrize(
    "argv",
    [
        "docker run --gpu all deepfake-mlc-train:0.1.0",  # no such option
        "docker run --rm deepfake-mlc-trian:0.1.0",  # no such image built
        "docker run --rm deepfake-mlc-train:0.1.0 trian --config configs/quickstart.yaml",  # no such launcher
        "docker build -f docker/train.Dockerfile --build-arg TORCH_VERSION=2 .",  # no such ARG
        "docker compose up -d",  # without -f docker/compose.yaml
        "docker compose -f docker/compose.yaml up --scale postgres=2",  # publishes a port: not scale-safe
        "docker compose -f docker/compose.yaml run --rm tune-inti",  # no such service
        "docker compose -f docker/compose.yaml run --rm tune-init best-trail",  # optuna has no such command
        "docker compose -f docker/compose.yaml --profile serving up -d triton",  # no such profile
        "curl --fial localhost:8000/v2/health/ready",  # no such option
        "curl -fsS localhost:8080/v2/health/ready",  # no service publishes the port
        "curl -fsS localhost:8000/v2/health/redy",  # Triton has no such endpoint
        "curl -fsS localhost:8000/v2/models/deepfake_mlc",  # not the name an export serves the model by
    ],
)
def test_docker_command_checker_rejects_what_does_not_exist(argv):
    """The same through docker: an unknown option, image, ARG, service or command, or an unscalable service."""
    with pytest.raises(AssertionError):
        stack_checker().check(argv.split(), "test")
