"""Real servers on loopback for the tests: a PostgreSQL cluster and an ``mlflow server`` with basic auth.

Both are the programs a team runs (Debian's postgresql, MLflow's own server), started
here as plain processes, with the controls the fault tests need: restart or stop the
database, stop the tracking server and start it again on the same port.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from cnnkeras.dashboards.server import MLFLOW_SERVER_ENV

ADMIN = ("admin", "admin-password-0123")  # MLflow refuses admin passwords under 12 characters
USER = ("team", "team-password-0123")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pg_bin(name: str) -> str | None:
    return shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)


def need_postgres() -> tuple[str, str]:
    """initdb and pg_ctl, or skip (locally) / fail (under CI, where .ci/run installs them)."""
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        message = "PostgreSQL is not installed (apt-get install postgresql); .ci/run installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return initdb, pg_ctl


#: The throwaway clusters' password (scram-sha-256: a wrong one is refused, as on a real server).
PG_PASSWORD = "hunter2-secret-pw"


class PostgresCluster:
    """A throwaway cluster on 127.0.0.1 with password authentication (scram-sha-256), as a team's.

    initdb refuses to run as root, so as root the cluster belongs to the ``postgres`` user.
    """

    def __init__(self) -> None:
        initdb, self.pg_ctl = need_postgres()
        self.folder = Path(tempfile.mkdtemp(prefix="cnnkeras-pg-"))
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self.data = self.folder / "data"
        self.port = free_port()
        pwfile = self.folder / "pwfile"
        pwfile.write_text(PG_PASSWORD + "\n")
        if self.prefix:
            shutil.chown(pwfile, "postgres", "postgres")
        subprocess.run(self.prefix + [initdb, "-D", str(self.data), "-U", "postgres", "--auth=scram-sha-256",
                                      f"--pwfile={pwfile}", "-E", "UTF8"], check=True, capture_output=True)
        pwfile.unlink()
        self.start()

    def _ctl(self, *args: str) -> None:
        subprocess.run(self.prefix + [self.pg_ctl, "-D", str(self.data), "-l", str(self.folder / "log"), "-w",
                                      "-o", f"-k {self.folder} -h 127.0.0.1 -p {self.port}", *args],
                       check=True, capture_output=True)

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")

    def restart(self) -> None:
        self._ctl("-m", "fast", "restart")

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres "
                             f"password={PG_PASSWORD}", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def url(self, database: str, password: str | None = PG_PASSWORD) -> str:
        """The database's URL with the cluster's password (``password=None``: without one)."""
        login = f"postgres:{password}" if password else "postgres"
        return f"postgresql+psycopg://{login}@127.0.0.1:{self.port}/{database}"

    def destroy(self) -> None:
        subprocess.run(self.prefix + [self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)


class MlflowServer:
    """``mlflow server --app-name basic-auth`` on a PostgreSQL backend with served artifacts.

    The admin is created from ``MLFLOW_AUTH_ADMIN_PASSWORD``; :attr:`USER` is a plain user
    made through the server's own API, as a team's member would be.
    """

    def __init__(self, cluster: PostgresCluster, database: str = "mlflow",
                 allowed_hosts: str | None = None, host_name: str = "127.0.0.1") -> None:
        cluster.create_database(database)
        self.folder = Path(tempfile.mkdtemp(prefix="cnnkeras-mlflow-"))
        self.backend = cluster.url(database, password=None)  # as docker-compose.yml: the password in PGPASSWORD
        self.port = free_port()
        self.allowed_hosts = allowed_hosts
        self.url = f"http://{host_name}:{self.port}"
        (self.folder / "auth.ini").write_text(
            "[mlflow]\ndefault_permission = READ\n"
            f"database_uri = sqlite:///{self.folder / 'auth.db'}\nadmin_username = {ADMIN[0]}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
        self.process: subprocess.Popen | None = None
        self.start()
        self._request("POST", "/api/2.0/mlflow/users/create", {"username": USER[0], "password": USER[1]}, ADMIN)

    def start(self) -> None:
        env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(self.folder / "auth.ini"),
               "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1], "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret-key",
               "PGPASSWORD": PG_PASSWORD, **MLFLOW_SERVER_ENV}
        env.pop("MLFLOW_TRACKING_URI", None)
        hosts = ["--allowed-hosts", self.allowed_hosts.format(port=self.port)] if self.allowed_hosts else []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.backend,
             "--artifacts-destination", str(self.folder / "artifacts"), "--serve-artifacts",
             "--app-name", "basic-auth", "--host", "127.0.0.1", "--port", str(self.port), *hosts],
            cwd=self.folder, env=env, stdout=open(self.folder / "log", "ab"), stderr=subprocess.STDOUT,
            start_new_session=True)  # its own process group: stop() ends its workers too
        deadline = time.time() + 180
        while time.time() < deadline:
            assert self.process.poll() is None, (self.folder / "log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"mlflow server did not start: {(self.folder / 'log').read_text()[-3000:]}")

    def stop(self) -> None:
        """Stop the server and every process it started (uvicorn, its job consumer), freeing the port."""
        import signal

        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process is not None:
            try:  # children that outlived the main process
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.time() + 60
        while time.time() < deadline:  # the port is free once its workers are gone too
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"port {self.port} still in use 60 s after the mlflow server was stopped")

    def _request(self, method: str, path: str, body: dict, auth: tuple[str, str]) -> None:
        import base64
        import json

        request = urllib.request.Request(f"{self.url}{path}", data=json.dumps(body).encode(), method=method,
                                         headers={"Content-Type": "application/json", "Authorization": "Basic "
                                                  + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200

    def client(self, auth: tuple[str, str] = ADMIN):
        """An MlflowClient logged in as ``auth`` (the admin reads every experiment)."""
        from mlflow.tracking import MlflowClient

        os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = auth
        return MlflowClient(self.url)

    def env(self, auth: tuple[str, str] | None = USER) -> dict[str, str]:
        """The environment of a process that tracks into this server as ``auth`` (None: no login)."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_URI")}
        if auth is not None:
            env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"] = auth
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def wait_until(predicate, timeout: float, message: str, poll: float = 0.3):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(message)


def http_status(url: str, method: str = "GET") -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
