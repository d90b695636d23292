"""Shared fixtures: a private MLflow store per test and small experiment files."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

REPO = Path(__file__).resolve().parents[1]
MNIST = REPO.parent / "shared" / "data" / "mnist.npz"

# A tiny CNN for 8x8 digits: trains in about a second per epoch on 2 cores.
TINY_MODEL = """
model:
  arch: sequential
  layers:
    - {type: conv2d, filters: 8, kernel_size: 3, padding: same, activation: relu}
    - {type: max_pool, pool_size: 2}
    - {type: flatten}
    - {type: dense, units: 32, activation: relu}
"""

# The sweeps' tiny CNN (its dense layer acts per pixel before the head's flatten): the model of
# every sweep test and of benchmarks/distributed.py, so their timings stay comparable.
SWEEP_MODEL = """
model:
  arch: sequential
  layers:
    - {type: conv2d, filters: 8, kernel_size: 3, padding: same, activation: relu}
    - {type: max_pool, pool_size: 2}
    - {type: dense, units: 32, activation: relu}
"""


@pytest.fixture(autouse=True)
def data_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A decoded-image cache of the test's own (also set as $CNNKERAS_CACHE_DIR), never the user's."""
    folder = tmp_path_factory.mktemp("data-cache")
    monkeypatch.setenv("CNNKERAS_CACHE_DIR", str(folder))
    return folder


@pytest.fixture()
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite MLflow store for this test (also set as $MLFLOW_TRACKING_URI)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture()
def write_config(tmp_path: Path):
    """Write a YAML experiment file into the test's folder and return its path."""

    def write(*parts: str, name: str = "exp.yaml") -> Path:
        """Each part is dedented on its own, so indented snippets can be joined."""
        path = tmp_path / name
        text = "".join(textwrap.dedent(part).strip("\n") + "\n" for part in parts)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture()
def tiny_config(write_config, tracking_uri):
    """A digits experiment with a tiny CNN: 3 epochs, about 5 s."""
    return write_config(
        """
        name: tiny
        seed: 7
        data: {source: digits, validation_split: 0.2}
        train: {epochs: 3, batch_size: 64, optimizer: {name: adam, learning_rate: 0.003}}
        """,
        TINY_MODEL,
    )


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster on 127.0.0.1 shared by the session (Debian's postgresql).

    Skipped locally when PostgreSQL is not installed; a failure under CI (``.ci/run`` installs it).
    """
    from .servers import PostgresCluster

    cluster = PostgresCluster()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def postgres_url(postgres):
    """An ``optuna`` database in the session's cluster, for distributed sweeps."""
    postgres.create_database("optuna")
    return postgres.url("optuna")


@pytest.fixture()
def served():
    """A fresh PostgreSQL cluster and an ``mlflow server`` (basic auth, served artifacts) on it.

    Per test, because the fault tests restart and stop them.
    """
    from .servers import MlflowServer, PostgresCluster

    cluster = PostgresCluster()
    server = None
    try:
        server = MlflowServer(cluster)
        yield cluster, server
    finally:
        if server is not None:
            server.destroy()
        cluster.destroy()
