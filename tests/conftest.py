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


def _pg_bin(name: str) -> str | None:
    import glob
    import shutil

    return shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL cluster on 127.0.0.1 (Debian's postgresql), for distributed sweeps.

    initdb refuses to run as root, so as root the cluster belongs to the ``postgres`` user.
    Skipped locally when PostgreSQL is not installed; a failure under CI (``.ci/run`` installs it).
    """
    import shutil
    import socket
    import subprocess
    import tempfile

    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        message = "PostgreSQL is not installed (apt-get install postgresql); .ci/run installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    folder = Path(tempfile.mkdtemp(prefix="cnnkeras-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    data = folder / "data"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subprocess.run(prefix + [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    subprocess.run(prefix + [pg_ctl, "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
                             f"-k {folder} -h 127.0.0.1 -p {port}", "start"], check=True, capture_output=True)
    try:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE optuna")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run(prefix + [pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
