#!/bin/sh
# Run once by the postgres image on an empty volume: MLflow's tracking store beside Optuna's database.
set -e
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname optuna -c "CREATE DATABASE mlflow OWNER \"$POSTGRES_USER\""
