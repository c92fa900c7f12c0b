# syntax=docker/dockerfile:1
# MLflow tracking server for the compose stack: full `mlflow` (the package's `ui` extra pulls the same) and
# the PostgreSQL driver for the backend store. Nothing of deepfake-mlc is needed on the server side.
#
#   docker build -f docker/mlflow.Dockerfile -t deepfake-mlc-mlflow:3.17.2 .
#
# The server's flags are given by docker/compose.yaml; the backend-store URI (it holds a password) comes from
# the environment (MLFLOW_BACKEND_STORE_URI), never from the command line or the image.

ARG PYTHON_VERSION=3.12

# ---- stage 1: a virtual environment with mlflow and psycopg2; pip stays in this stage.
FROM python:${PYTHON_VERSION}-slim-bookworm AS venv
ARG MLFLOW_VERSION=3.17.2
ARG PSYCOPG2_VERSION=2.9.13
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir "mlflow==${MLFLOW_VERSION}" "psycopg2-binary==${PSYCOPG2_VERSION}"

# ---- stage 2: the server.
FROM python:${PYTHON_VERSION}-slim-bookworm AS mlflow
ARG PYTHON_VERSION
ARG MLFLOW_VERSION=3.17.2
ARG APP_UID=1000
LABEL org.opencontainers.image.title="deepfake-mlc-mlflow" \
      org.opencontainers.image.description="MLflow tracking server with a PostgreSQL backend store for deepfake-mlc" \
      org.opencontainers.image.version="${MLFLOW_VERSION}" \
      org.opencontainers.image.source="https://github.com/deepfake-mlc/deepfake-mlc" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:${PYTHON_VERSION}-slim-bookworm"
COPY --from=venv /opt/venv /opt/venv
# /mlartifacts: the artifact store the server proxies (--artifacts-destination); owned by the server's user.
RUN groupadd --gid "${APP_UID}" mlflow \
 && useradd --uid "${APP_UID}" --gid mlflow --create-home --shell /bin/bash mlflow \
 && mkdir -p /mlartifacts \
 && chown mlflow:mlflow /mlartifacts
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER ${APP_UID}:${APP_UID}
WORKDIR /home/mlflow
VOLUME ["/mlartifacts"]
EXPOSE 5000
# /health answers 200 once the server has migrated its database and serves; the slim image has no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=4)"]
ENTRYPOINT ["mlflow", "server"]
CMD ["--host", "0.0.0.0", "--port", "5000", "--artifacts-destination", "/mlartifacts"]
