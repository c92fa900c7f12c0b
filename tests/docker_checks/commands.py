"""Command lines checked by the real parser of each engine, through ``docker run`` / ``docker compose`` into
the images they start: ``deepfake-mlc`` (its own argparse parser, then its config schema), ``accelerate
launch`` (Accelerate's parser), ``optuna`` (its console script), ``mlflow server`` (MLflow's click command),
``tritonserver`` (Triton's own binary, as nvidia-pytriton ships it), ``docker`` and ``curl`` (cli_models;
curl's URLs against the ports the stack publishes). The checker keeps what it parsed, for assertions on the
options a doc shows.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from docker_checks import README, REPO, WORKDIR, cli_models, compose
from docker_checks.compose import assert_scale_safe, service_image
from docker_checks.dockerfiles import image
from docker_checks.shell import markdown_commands

# python <folder> / accelerate launch <folder>: the repository's launchers and the sub-command each runs.
LAUNCHERS = {"train": "train", "export": "export", "serve_bench": "serve-bench"}
COMPOSE_FILE = "docker/compose.yaml"  # what every documented `docker compose` is given with -f
LOCAL_HOSTS = ("localhost", "127.0.0.1")  # where the stack publishes its ports (the *_BIND default)
# What a service answers on a container port: Triton's HTTP/REST API (KServe v2 and Triton's GET endpoints)
# and its metrics; MLflow's health check.
ENDPOINTS = {
    ("triton", 8000): re.compile(
        r"^/v2(/health/(live|ready)|/models/(?P<model>[^/]+)(/versions/\d+)?(/ready|/config|/stats)?)?$"
    ),
    ("triton", 8002): re.compile(r"^/metrics$"),
    ("mlflow", 5000): re.compile(r"^/(health)?$"),
}  # fmt: skip


@dataclass
class Command:
    where: str  # file:line
    tool: str  # "deepfake-mlc", "accelerate launch", "optuna", "mlflow server", "tritonserver", "docker", "curl"
    args: Any  # what the tool's parser made of the argv: a Namespace (click: the params dict), None for --help
    typed: bool  # False for what a container runs, which `docker run` / `docker compose run` started


@cache
def cli_parser() -> argparse.ArgumentParser:
    from deepfake_mlc.cli.main import build_parser

    return build_parser()


def served_model_name() -> str:
    """The name Triton serves an exported model by when none is given (``export --format triton``'s default)."""
    from deepfake_mlc.serving.repository import MODEL_NAME

    return MODEL_NAME


@cache
def tritonserver_binary() -> Path | None:
    """Triton's server binary as ``nvidia-pytriton``'s wheel ships it (found, not imported); None without it."""
    spec = importlib.util.find_spec("pytriton")
    binary = Path(spec.origin).parent / "tritonserver" / "bin" / "tritonserver" if spec and spec.origin else None
    return binary if binary is not None and binary.is_file() else None


def repo_path(path: str | Path) -> Path:
    """A path as a command in the image sees it (relative to WORKDIR /app) -> the repository file."""
    path = str(path)
    return REPO / (path[len(WORKDIR) + 1 :] if path.startswith(WORKDIR + "/") else path)


@dataclass
class Checker:
    """Checks command lines; ``images`` (``name:tag`` -> Dockerfile) and ``services`` are what docker can start."""

    images: dict[str, Path] = field(default_factory=dict)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    commands: list[Command] = field(default_factory=list)
    env: list[tuple[str, str]] = field(default_factory=list)  # (where, NAME) set for a command
    containers: int = 0  # how deep inside containers the command being checked runs

    def parsed(self, tool: str, typed: bool = False) -> list[Any]:
        """What the parser of ``tool`` made of each command of it seen so far (``typed``: not in a container)."""
        return [c.args for c in self.commands if c.tool == tool and (c.typed or not typed)]

    def saw(self, where: str, tool: str, args: Any) -> None:
        self.commands.append(Command(where, tool, args, typed=not self.containers))

    def check(self, argv: list[str], where: str) -> bool:
        """Check one command line; False when it calls nothing this project owns or configures."""
        while argv and re.match(r"^\w+=", argv[0]):  # NAME=value command ...
            self.env.append((where, argv[0].partition("=")[0]))
            argv = argv[1:]
        head, rest = (argv[0], argv[1:]) if argv else ("", [])
        if head == "deepfake-mlc":
            self.deepfake_mlc(rest, where)
        elif head in ("python", "python3") and rest and rest[0] in LAUNCHERS:
            self.launcher(rest[0], rest[1:], where)
        elif argv[:2] == ["accelerate", "launch"]:
            self.accelerate(argv[2:], where)
        elif head == "optuna":
            self.optuna(rest, where)
        elif argv[:2] == ["mlflow", "server"]:
            self.mlflow_server(argv[2:], where)
        elif head == "tritonserver":
            self.tritonserver(rest, where)
        elif head == "docker":
            self.docker(rest, where)
        elif head == "curl":
            self.curl(rest, where)
        elif head == "export":
            self.env += [(where, a.partition("=")[0]) for a in rest]
            return False
        else:
            return False
        return True

    def deepfake_mlc(self, argv: list[str], where: str) -> None:
        """``deepfake-mlc ARGV`` parses; its run config and overrides validate; its search file exists."""
        from deepfake_mlc.config import Config, load_config

        args = cli_models.parse(cli_parser(), argv, where)
        self.saw(where, "deepfake-mlc", args)
        if args is None:
            return
        config = getattr(args, "config", None)
        if config is not None and args.command in ("train", "tune"):
            load_config(Config, repo_path(config), getattr(args, "overrides", []))
        search = getattr(args, "search", None)
        if search is not None:
            assert repo_path(search).is_file(), f"{where}: search space {search} does not exist"

    def launcher(self, folder: str, argv: list[str], where: str) -> None:
        """``python FOLDER ARGV``: the repository's launcher folder runs ``deepfake-mlc SUBCOMMAND ARGV``."""
        assert folder in LAUNCHERS, f"{where}: {folder!r} is not one of the launchers {list(LAUNCHERS)}"
        assert (REPO / folder / "__main__.py").is_file(), f"{where}: {folder}/__main__.py does not exist"
        self.deepfake_mlc([LAUNCHERS[folder], *argv], where)

    def accelerate(self, argv: list[str], where: str) -> None:
        """``accelerate launch ARGV``: Accelerate's options, its config file, then a launcher folder."""
        from accelerate.commands.launch import launch_command_parser

        args = cli_models.parse(launch_command_parser(), argv, where)
        self.saw(where, "accelerate launch", args)
        if args is None:
            return
        if args.config_file:
            assert repo_path(args.config_file).is_file(), f"{where}: accelerate config {args.config_file} is missing"
        self.launcher(args.training_script, args.training_script_args, where)

    def optuna(self, argv: list[str], where: str) -> None:
        """``optuna ARGV`` through Optuna's console script, on a throwaway SQLite storage given as the stack
        gives it (``$OPTUNA_STORAGE``). Exit status 2 is argparse's usage error; others (no such study) are not.
        """
        script = shutil.which("optuna", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
        assert script, "Optuna's console script `optuna` is not installed"
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "OPTUNA_STORAGE": f"sqlite:///{tmp}/optuna.db"}
            result = subprocess.run([script, *argv], capture_output=True, text=True, env=env, cwd=tmp)
        assert result.returncode != 2, f"{where}: `optuna {shlex.join(argv)}`: {result.stderr.strip()[-1000:]}"
        self.saw(where, "optuna", argv)

    def mlflow_server(self, argv: list[str], where: str) -> None:
        """``mlflow server ARGV`` through MLflow's click command (parsed, not run)."""
        from mlflow.cli import server

        try:
            params = server.make_context("server", list(argv)).params
        except Exception as err:  # click's usage errors
            raise AssertionError(f"{where}: `mlflow server {shlex.join(argv)}`: {err}") from None
        self.saw(where, "mlflow server", params)

    def tritonserver(self, argv: list[str], where: str) -> None:
        """``tritonserver ARGV`` through Triton's own option parser: the server binary nvidia-pytriton ships
        (0.7.0: Triton 2.51, the release of compose.yaml's image) runs ARGV plus a model repository that does
        not exist, with every endpoint off and ``--exit-on-error=true``, so it stops right after parsing. An
        option it rejects prints its usage; the options it accepts it prints as its table of settings, which
        the checker keeps (``{"strict_readiness": "1", "exit_timeout": "30", ...}``).
        """
        binary = tritonserver_binary()
        if binary is None:
            pytest.skip("tritonserver checks need Triton's binary: pip install --no-deps 'nvidia-pytriton==0.7.0'")
        libraries = binary.parents[3] / "nvidia_pytriton.libs"
        env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(filter(None, [os.environ.get("LD_LIBRARY_PATH"),
                                                                             str(libraries)]))}  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            stop = [f"--model-repository={tmp}/missing", "--exit-on-error=true", "--allow-http=false",
                    "--allow-grpc=false", "--allow-metrics=false"]  # fmt: skip
            try:
                result = subprocess.run([str(binary), *argv, *stop], capture_output=True, text=True, env=env,
                                        cwd=tmp, timeout=60)  # fmt: skip
            except subprocess.TimeoutExpired:
                raise AssertionError(f"{where}: `tritonserver {shlex.join(argv)}` did not stop") from None
        output = result.stdout + result.stderr
        if "Usage: tritonserver" in output:
            usage = re.compile(r"^(Usage: |  --|\t|[A-Z][\w ()/-]*:$|$)")
            reasons = [line for line in output.splitlines() if not usage.match(line)]
            raise AssertionError(f"{where}: `tritonserver {shlex.join(argv)}` is rejected: {' '.join(reasons)}")
        rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in output.splitlines()
                if line.startswith("|")]  # fmt: skip
        settings = {row[0]: row[1] for row in rows[1:] if len(row) == 2}
        assert settings, f"{where}: `tritonserver {shlex.join(argv)}` printed no settings: {output[-1000:]}"
        self.saw(where, "tritonserver", settings)

    def docker(self, argv: list[str], where: str) -> None:
        """``docker build`` of a Dockerfile here, ``docker run`` of an image built here, ``docker compose``."""
        args = cli_models.parse(cli_models.docker(), argv, where)
        self.saw(where, "docker", args)
        if args.command == "build":
            assert args.file, f"{where}: docker build without -f docker/NAME.Dockerfile"
            assert args.context == ".", f"{where}: the build context must be the repository root (.)"
            declared = image(REPO / args.file[-1]).arg_names()
            for name in (a.partition("=")[0] for a in args.build_arg):
                assert name in declared, f"{where}: --build-arg {name} is not an ARG of {args.file[-1]}"
        elif args.command == "run":
            self.env += [(where, item.partition("=")[0]) for item in args.env]
            assert args.image in self.images, f"{where}: image {args.image} is built by no `docker build -t` here"
            entrypoint = shlex.split(args.entrypoint[-1]) if args.entrypoint else None
            self.in_container(image(self.images[args.image]).command(entrypoint, args.args), where)
        elif args.command == "compose":
            self.compose(args, where)

    def compose(self, args: argparse.Namespace, where: str) -> None:
        """``docker compose -f docker/compose.yaml ...``: its profiles and services exist, scale safely, run
        what is known."""
        assert args.file == [COMPOSE_FILE], f"{where}: docker compose must be given -f {COMPOSE_FILE}"
        profiles = {profile for service in self.services.values() for profile in service.get("profiles", [])}
        for profile in args.profile:
            assert profile in profiles or profile == "*", f"{where}: no service in compose.yaml has profile {profile!r}"
        scaled = [scale.partition("=")[0] for scale in getattr(args, "scale", [])]
        named = [args.service] if args.subcommand == "run" else getattr(args, "services", [])
        for name in named + scaled:
            assert name in self.services, f"{where}: no service {name!r} in compose.yaml"
        for name in scaled:
            assert_scale_safe(name, self.services[name])
        if args.subcommand == "run":
            self.env += [(where, item.partition("=")[0]) for item in args.env]
            service = self.services[args.service]
            built = service_image(service)
            assert built is not None, f"{where}: service {args.service} has no image built here"
            entrypoint = shlex.split(args.entrypoint[-1]) if args.entrypoint else service.get("entrypoint")
            self.in_container(built.command(entrypoint, args.args or service.get("command")), where)

    def curl(self, argv: list[str], where: str) -> None:
        """``curl URL``: a local URL goes to a port the stack publishes, and to what the service there answers
        (ENDPOINTS; a Triton model by the name an export serves it by)."""
        args = cli_models.parse(cli_models.curl(), argv, where)
        self.saw(where, "curl", args)
        published = {
            int(port["published"]): (name, int(port["target"]))
            for name, service in self.services.items()
            for port in service.get("ports", [])
        }
        for url in args.urls:
            parts = urlsplit(url if "://" in url else f"http://{url}")
            if parts.hostname not in LOCAL_HOSTS:
                continue
            assert parts.port in published, f"{where}: no service of compose.yaml publishes port {parts.port}: {url}"
            service = published[parts.port]
            endpoint = ENDPOINTS.get(service)
            match = endpoint.match(parts.path) if endpoint else None
            assert endpoint is None or match, f"{where}: {service[0]} answers no {parts.path} on port {service[1]}"
            model = match.groupdict().get("model") if match else None
            assert model in (None, served_model_name()), f"{where}: Triton serves the export as {served_model_name()}"

    def in_container(self, argv: list[str], where: str) -> None:
        """What ``docker run`` / ``docker compose run`` starts must itself be a command checked here."""
        self.containers += 1
        try:
            assert self.check(argv, where), f"{where}: the container runs nothing known: {shlex.join(argv)}"
        finally:
            self.containers -= 1


def documented() -> list[tuple[str, list[str]]]:
    """docker/README.md's commands, their variables filled in from docker/.env.example (as ``. docker/.env``)."""
    env = {**compose.env_example(), "PWD": "/work/deepfake-mlc", "HOME": "/home/user"}
    return list(markdown_commands(README, env))


def stack_checker() -> Checker:
    """A checker that knows the stack: compose's services, and the images the README and compose build."""
    services = compose.services()
    images = {s["image"]: service_image(s).path for s in services.values() if service_image(s) is not None}
    for where, argv in documented():
        if argv[:2] == ["docker", "build"]:
            args = cli_models.parse(cli_models.docker(), argv[1:], where)
            images.update(dict.fromkeys(args.tag, REPO / args.file[-1]))
    return Checker(images, services)
