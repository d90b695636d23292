"""A sweep shared by several processes through a real PostgreSQL storage on loopback."""

from __future__ import annotations

import subprocess
import sys
import time

import optuna
import pytest
from mlflow.tracking import MlflowClient

from ..servers import PG_PASSWORD
from .test_sweep import sweep_file

pytestmark = pytest.mark.slow  # several sweep processes on PostgreSQL


def _study(url: str, name: str):
    return optuna.load_study(study_name=name, storage=url)


def _pg_sweep(tmp_path, url: str, name: str, trials: int) -> list[str]:
    """A small learning-rate sweep stored in PostgreSQL; returns its `cnnkeras sweep` command."""
    path = sweep_file(tmp_path, f"""
        search:
          n_trials: {trials}
          pruner: {{name: none}}
          storage: "{url}"
          parameters:
            train.optimizer.learning_rate: {{type: float, low: 1.0e-3, high: 1.0e-2, log: true}}
        """, epochs=2, name=name)
    return [sys.executable, "-m", "cnnkeras.cli", "sweep", path, "-q"]


def test_two_sweep_processes_share_one_postgres_study_and_one_parent_run(tmp_path, postgres_url):
    command = _pg_sweep(tmp_path, postgres_url, "pg", 6)
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # The first process creates the study and its parent run; then a second worker joins it.
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            study = _study(postgres_url, "pg")
            if study.user_attrs.get("mlflow_parent_run_id") and study.get_trials(deepcopy=False):
                break
        except KeyError:
            pass
        assert first.poll() is None, first.stdout.read()
        time.sleep(0.5)
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outputs = [p.communicate(timeout=600)[0] for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs[0][-3000:]

    study = _study(postgres_url, "pg")
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert 6 <= len(complete) <= 7  # the shared total; a trial already running elsewhere may finish after it
    assert len({t.number for t in trials}) == len(trials)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("pg")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("cnnkeras.kind") == "sweep"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.run_id == study.user_attrs["mlflow_parent_run_id"]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert sorted(t.user_attrs["mlflow_run_id"] for t in complete) == sorted(
        r.info.run_id for r in children if r.info.status == "FINISHED")


def test_two_processes_started_at_once_on_a_new_database_share_one_study_and_parent(tmp_path, postgres_url):
    import psycopg

    port = postgres_url.rsplit(":", 1)[1].split("/")[0]
    with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres password={PG_PASSWORD}",
                         autocommit=True) as conn:
        conn.execute("CREATE DATABASE fresh")
    url = postgres_url.rsplit("/", 1)[0] + "/fresh"  # no tables yet: both processes start on an empty database
    command = _pg_sweep(tmp_path, url, "race", 4)
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [o[-3000:] for o in outputs]
    study = _study(url, "race")
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    assert 4 <= len(complete) <= 5
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("race").experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("cnnkeras.kind") == "sweep"]
    assert len(parents) == 1 and parents[0].info.run_id == study.user_attrs["mlflow_parent_run_id"]
    assert {r.data.tags["mlflow.parentRunId"] for r in runs if "mlflow.parentRunId" in r.data.tags} == {
        parents[0].info.run_id}
