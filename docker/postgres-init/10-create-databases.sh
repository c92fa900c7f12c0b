#!/usr/bin/env bash
# Runs once, when the postgres container starts on an empty data volume (/docker-entrypoint-initdb.d).
# Creates two roles and two databases, each database owned by its own role and closed to the other:
#   MLFLOW_DB (owner MLFLOW_DB_USER): MLflow's backend store (experiments, runs, metrics, registry)
#   OPTUNA_DB (owner OPTUNA_DB_USER): Optuna's studies (the shared study the tune workers join)
# Names and passwords come from the environment (docker/.env via compose.yaml); none is written here.
# psql variables (:"ident", :'literal') quote them, so a password cannot break out of the statement.
set -euo pipefail

: "${MLFLOW_DB:?}" "${MLFLOW_DB_USER:?}" "${MLFLOW_DB_PASSWORD:?}"
: "${OPTUNA_DB:?}" "${OPTUNA_DB_USER:?}" "${OPTUNA_DB_PASSWORD:?}"

psql --set ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER}" --dbname "${POSTGRES_DB:-${POSTGRES_USER}}" \
  --set mlflow_db="${MLFLOW_DB}" --set mlflow_user="${MLFLOW_DB_USER}" --set mlflow_password="${MLFLOW_DB_PASSWORD}" \
  --set optuna_db="${OPTUNA_DB}" --set optuna_user="${OPTUNA_DB_USER}" --set optuna_password="${OPTUNA_DB_PASSWORD}" \
  <<'SQL'
CREATE ROLE :"mlflow_user" LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE :"mlflow_db" OWNER :"mlflow_user";
REVOKE ALL ON DATABASE :"mlflow_db" FROM PUBLIC;

CREATE ROLE :"optuna_user" LOGIN PASSWORD :'optuna_password';
CREATE DATABASE :"optuna_db" OWNER :"optuna_user";
REVOKE ALL ON DATABASE :"optuna_db" FROM PUBLIC;
SQL

echo "created databases ${MLFLOW_DB} (owner ${MLFLOW_DB_USER}) and ${OPTUNA_DB} (owner ${OPTUNA_DB_USER})"
