"""docker/compose.yaml, docker/.env.example and docker/postgres-init: read by the real Compose v2 client.

The schema checks the file as written; everything else checks the stack as ``docker compose config``
resolves it with docker/.env.example (interpolated, anchors merged, short syntax normalised).
"""

from __future__ import annotations

import importlib.resources
import json
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from docker.utils import parse_repository_tag
from docker.utils.build import PatternMatcher
from sqlalchemy.engine import make_url

from docker_checks import CODE_ENV, DOCKER, DOCKERFILES, ENV_EXAMPLE, REPO, SECRETS, compose, postgres_init
from docker_checks.cli_models import parse
from docker_checks.commands import Checker, cli_parser
from docker_checks.dockerfiles import image, words

SENTINEL = "sentinel-81f3"  # a value no default and no other variable has
TRAINING_STACK = {"postgres", "mlflow", "tune-init", "tune-worker"}  # what `docker compose up` starts


def depends_on(service: dict) -> dict[str, str]:
    return {name: dependency["condition"] for name, dependency in service.get("depends_on", {}).items()}


def seconds(duration: str) -> float:
    """A Go duration as ``docker compose config`` prints it (``45s``, ``1m30s``) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


def mlflow_server_port(service: dict) -> int:
    """The port ``mlflow server`` listens on, as MLflow's own CLI reads the service's command."""
    from mlflow.cli import server

    return server.make_context("server", list(service["command"])).params["port"]


def test_compose_matches_the_compose_spec_schema():
    from jsonschema import Draft202012Validator

    try:
        schema_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    except ModuleNotFoundError:
        pytest.fail("the Compose Specification schema comes with check-jsonschema (a dev dependency)")
    validator = Draft202012Validator(json.loads(schema_file.read_text()))
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose.raw())]
    assert not errors, "\n".join(errors)
    # the schema itself rejects what is wrong, e.g. an unknown service key
    broken = compose.raw()
    broken["services"]["mlflow"]["helthcheck"] = {}
    assert list(validator.iter_errors(broken))


@pytest.mark.parametrize("profiles", [(), compose.ALL_PROFILES], ids=["default", "every-profile"])
def test_compose_config_resolves_with_the_example_env(profiles):
    """No error and no warning: every variable without a default has a value in docker/.env.example."""
    result = compose.run(ENV_EXAMPLE, *profiles, "config", "--quiet")
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


@pytest.mark.parametrize("secret", SECRETS)
def test_compose_refuses_to_start_without_a_secret(tmp_path, secret):
    env_file = tmp_path / "env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in compose.env_example().items() if k != secret))
    result = compose.run(env_file, "config", "--quiet")
    assert result.returncode != 0 and secret in result.stderr, result.stderr


def test_compose_services_health_and_order():
    services = compose.services()
    assert {"postgres", "mlflow", "tune-init", "tune-worker"} <= set(services)
    for name in ("postgres", "mlflow"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no health check"
    probe = " ".join(services["mlflow"]["healthcheck"]["test"])
    urls = [urlsplit(url) for url in re.findall(r"https?://[^\s'\"]+", probe)]
    assert [(u.port, u.path) for u in urls] == [(mlflow_server_port(services["mlflow"]), "/health")], probe
    assert depends_on(services["mlflow"]) == {"postgres": "service_healthy"}
    worker = services["tune-worker"]
    assert depends_on(worker) == {
        "postgres": "service_healthy",
        "mlflow": "service_healthy",
        "tune-init": "service_completed_successfully",
    }
    compose.assert_scale_safe("tune-worker", worker)
    mounts = {volume["target"]: volume for volume in worker["volumes"]}
    assert mounts.get("/data", {}).get("read_only"), "the data set must be mounted read-only at /data"
    assert "/runs" in mounts, "outputs go to /runs"


def test_triton_serves_an_exported_repository_with_its_profile_only():
    """``--profile serve up -d triton``: Triton (a pinned image) on the repository export wrote, mounted
    read-only at /models; ready only with the model loaded; drains before Docker kills it; on a GPU."""
    services = compose.services()
    triton = services["triton"]
    assert triton["profiles"] == ["serve"]
    default = compose.run(ENV_EXAMPLE, "config", "--services")
    assert default.returncode == 0 and set(default.stdout.split()) == TRAINING_STACK, "`up` would start Triton"
    repository, tag = parse_repository_tag(triton["image"])
    assert repository == "nvcr.io/nvidia/tritonserver" and tag not in (None, "latest"), triton["image"]
    mounts = {volume["target"]: volume for volume in triton["volumes"]}
    assert mounts.get("/models", {}).get("read_only"), "the repository must be mounted read-only at /models"
    written = [v for v in compose.raw()["services"]["triton"]["volumes"] if isinstance(v, dict)]
    assert [v.get("bind", {}).get("create_host_path") for v in written if v["target"] == "/models"] == [False]
    # Triton's three ports, published on the host; the health check asks the HTTP one for readiness
    assert {port["target"] for port in triton["ports"]} == {8000, 8001, 8002}
    probe = triton["healthcheck"]["test"]
    urls = [urlsplit(url) for url in re.findall(r"https?://[^\s'\"]+", " ".join(probe))]
    assert probe[:2] == ["CMD", "curl"] and [(u.port, u.path) for u in urls] == [(8000, "/v2/health/ready")], probe
    devices = triton["deploy"]["resources"]["reservations"]["devices"]
    assert [(d["driver"], d["capabilities"]) for d in devices] == [("nvidia", ["gpu"])]
    assert triton.get("shm_size") and triton.get("restart")
    # the command, through Triton's own parser (skipped where nvidia-pytriton's binary is not installed)
    checker = Checker(services=services)
    assert triton.get("entrypoint") is None and checker.check(triton["command"], "compose.yaml:triton")
    settings = checker.parsed("tritonserver")[-1]
    assert settings["model_repository_path[0]"] == "/models"
    assert settings["strict_readiness"] == "1", "/v2/health/ready must wait for the model"
    assert int(settings["exit_timeout"]) < seconds(triton["stop_grace_period"]), "Docker kills it while it drains"


def test_compose_wires_the_tracking_uri_and_study_storage():
    env, services = compose.env_example(), compose.services()
    worker_env = services["tune-worker"]["environment"]
    assert set(worker_env) == set(CODE_ENV), worker_env
    tracking = urlsplit(worker_env["MLFLOW_TRACKING_URI"])
    assert (tracking.hostname, tracking.port) == ("mlflow", mlflow_server_port(services["mlflow"]))
    stores = {
        "OPTUNA": worker_env["OPTUNA_STORAGE"],
        "MLFLOW": services["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"],
    }
    for kind, store in stores.items():
        url = make_url(store)
        assert (url.drivername, url.host, url.port) == ("postgresql+psycopg2", "postgres", 5432), store
        expected = (env[f"{kind}_DB_USER"], env[f"{kind}_DB_PASSWORD"], env[f"{kind}_DB"])
        assert (url.username, url.password, url.database) == expected, store
    assert services["tune-init"]["environment"]["OPTUNA_STORAGE"] == worker_env["OPTUNA_STORAGE"]
    # the worker's argv sets the keys the README documents
    assert services["tune-worker"]["entrypoint"] == ["deepfake-mlc"]
    args = parse(cli_parser(), services["tune-worker"]["command"], "compose.yaml:tune-worker")
    assert args.command == "tune" and args.study_name == env["STUDY_NAME"] and "data.root=/data" in args.overrides


def test_the_code_reads_the_environment_the_stack_sets(monkeypatch, tmp_path):
    from mlflow.cli import server

    from deepfake_mlc.config import Config, load_config
    from deepfake_mlc.config.schema import TrackingConfig
    from deepfake_mlc.tracking.mlflow_tracker import resolve_tracking_uri
    from deepfake_mlc.tune import TuneOptions, load_search

    base = load_config(Config, REPO / "configs/quickstart.yaml", [f"output.dir={tmp_path}"])
    search = load_search(REPO / "configs/search/quickstart.yaml", base)
    readers = {  # what the package makes of an unset / set variable
        "MLFLOW_TRACKING_URI": lambda: resolve_tracking_uri(TrackingConfig(), tmp_path),
        "OPTUNA_STORAGE": TuneOptions(base=base, search=search, study_name="s", n_trials=1).storage_url,
    }
    assert set(readers) == set(CODE_ENV)
    for name, value in compose.services()["tune-worker"]["environment"].items():
        monkeypatch.delenv(name, raising=False)
        assert readers[name]() != value
        monkeypatch.setenv(name, value)
        assert readers[name]() == value, f"no code reads ${name}, which docker/compose.yaml and README set"
    envvars = {p.envvar for p in server.params if p.envvar}
    for name in compose.services()["mlflow"]["environment"]:
        assert name in envvars, f"mlflow server reads no {name}"


def secrets_filled_without_a_value(tmp_path: Path) -> list[str]:
    """Uses of a secret the real client fills in when it is unset: ``${SECRET:-default}``, ``$SECRET``, ..."""
    example, found = compose.env_example(), []
    for value in set(compose.strings(compose.uninterpolated())):
        for secret in (s for s in SECRETS if s in value):
            uses = SENTINEL in (compose.interpolate(value, {**example, secret: SENTINEL}, tmp_path) or "")
            without = {k: v for k, v in example.items() if k != secret}
            if uses and compose.interpolate(value, without, tmp_path) is not None:
                found.append(f"{value!r}: {secret}")
    return found


def test_secrets_only_by_interpolation(tmp_path):
    """Every use of a password is ``${SECRET:?...}`` (refused without it); no URL holds another password."""
    assert compose.interpolate("${S:-default}", {}, tmp_path) == "default"  # the probe tells the two apart
    assert compose.interpolate("${S:?needed}", {}, tmp_path) is None
    assert not secrets_filled_without_a_value(tmp_path)
    passwords = {compose.env_example()[secret] for secret in SECRETS}
    for name, service in compose.services().items():
        for key, value in (service.get("environment") or {}).items():
            password = urlsplit(str(value)).password
            assert password is None or password in passwords, f"{name}.{key}: a password not from docker/.env"


def test_env_example_documents_every_variable_with_placeholder_passwords():
    used, example = set(compose.variables()), compose.env_example()
    assert used <= set(example), f"compose.yaml variables not in docker/.env.example: {used - set(example)}"
    for key, value in example.items():
        if "PASSWORD" in key:
            assert value.startswith("change-me"), f"docker/.env.example: {key} must be a placeholder"


def test_build_context_leaves_out_data_models_and_secrets():
    """.dockerignore as Docker matches it (the Docker SDK's matcher): out what must be, in what images copy."""
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    ignored = PatternMatcher([line for line in lines if line and not line.startswith("#")])
    leave_out = [".git/HEAD", ".venv/bin/python", "data/synth/a.jpg", "runs/r/checkpoint.safetensors", "docker/.env",
                 "configs/.env", "export/model.onnx", "weights/best.safetensors", "studies/quickstart.db"]  # fmt: skip
    for path in leave_out:
        assert ignored.matches(path), f".dockerignore lets {path} into the build context"
    copies = [i for path in DOCKERFILES for i in image(path).all("COPY") if "--from" not in i["value"]]
    sources = {source for i in copies for source in words(i)[:-1]}
    assert sources and not {s for s in sources if ignored.matches(s)}, "an image copies what .dockerignore drops"


def test_the_env_file_with_the_secrets_is_git_ignored():
    ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", "docker/.env"], cwd=REPO)
    assert ignored.returncode == 0, "docker/.env must be git-ignored (.gitignore)"
    example = subprocess.run(["git", "check-ignore", "-q", "--no-index", "docker/.env.example"], cwd=REPO)
    assert example.returncode == 1, "docker/.env.example must stay tracked"


def test_postgres_init_script_creates_both_databases_from_the_environment(tmp_path):
    scripts = sorted((DOCKER / "postgres-init").glob("*.sh"))
    assert scripts, "no init script"
    postgres = compose.services()["postgres"]
    mounts = {Path(v["source"]): v for v in postgres["volumes"] if v["target"] == "/docker-entrypoint-initdb.d"}
    assert mounts.get(DOCKER / "postgres-init", {}).get("read_only"), "mount docker/postgres-init read-only"
    env = {name: f"v-{name.lower()}" for name in postgres["environment"]}  # distinct values, none an SQL word
    for script in scripts:
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, script.name
        call = postgres_init.run(script, env, tmp_path)
        assert call is not None, f"{script.name} needs a variable the postgres service does not set"
        assert not [value for value in env.values() if value in call.sql], "values reach SQL as psql variables only"
        statements = postgres_init.statements(call)
        for kind in ("MLFLOW", "OPTUNA"):
            db, user, password = (env[f"{kind}_DB{suffix}"] for suffix in ("", "_USER", "_PASSWORD"))
            assert ("CREATE", "ROLE", user, "LOGIN", "PASSWORD", password) in statements, statements
            assert ("CREATE", "DATABASE", db, "OWNER", user) in statements, statements
        # and it stops when one of them is missing
        for name in [n for n in env if n.startswith(("MLFLOW_DB", "OPTUNA_DB"))]:
            missing = {k: v for k, v in env.items() if k != name}
            assert postgres_init.run(script, missing, tmp_path) is None, f"{script.name} runs without {name}"
