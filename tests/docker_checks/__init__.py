"""The docker/ tests (tests/test_docker.py and the test modules here) and the parsers they read docker/ with.

Maintained parsers, no home-made ones: Dockerfiles through ``dockerfile-parse``, shell through ``bashlex``,
Markdown through ``markdown-it-py``, ``.env`` through ``python-dotenv``, SQL through ``sqlparse``,
``.dockerignore`` and image references through the Docker SDK, compose.yaml through the real Compose v2
client, and each command line through the real parser of its engine (``tritonserver``: Triton's own binary,
as nvidia-pytriton ships it; cli_models has argparse models of the CLIs that have none to import: docker, pip
and curl). Named ``docker_checks``, not ``docker``, so that
``import docker`` (the Docker SDK) still works in the tests.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
README = DOCKER / "README.md"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
WORKDIR = "/app"  # the images' WORKDIR: the repository root's launchers and configs are there
CODE_ENV = ("MLFLOW_TRACKING_URI", "OPTUNA_STORAGE")  # what the stack hands to the package; its code reads them
SECRETS = ("POSTGRES_PASSWORD", "MLFLOW_DB_PASSWORD", "OPTUNA_DB_PASSWORD")  # the stack's, in docker/.env
