"""``cnnkeras ui``: one landing page for the MLflow UI, optuna-dashboard and the reports, on localhost.

What runs (the landing page bound to ``host``, loopback by default):

- the landing page and the reports (``reports/*.html``) on ``port``;
- the MLflow UI at ``/mlflow/`` of that same port: an ``mlflow server`` on the
  tracking store, started with ``--static-prefix /mlflow`` on 127.0.0.1:``port + 1``
  and reached through a reverse proxy (:mod:`.proxy`), or an MLflow server already
  running (``mlflow_url``; proxied too when its path is ``/mlflow``);
- optuna-dashboard, read-only (its API would otherwise accept writes such as
  deleting a study): the first study storage's on the landing port itself, any
  further storage's on ``port + 2``, ``port + 3``, ... (optuna-dashboard's own WSGI
  app, served from a thread of this process).

So one published port is enough (docker-compose.yml publishes only it, on
127.0.0.1). Links on the landing page are built from the address the browser
used, so a page served on 0.0.0.0 never links to ``http://0.0.0.0:...``. Storage
URLs and the tracking URI are shown with their passwords masked.

Studies are found as ``.cnnkeras/*.journal`` files under ``root`` (where
``cnnkeras sweep`` keeps them, beside each experiment file) plus any storage URL
given with ``storages`` (PostgreSQL, SQLite).

:func:`serve` returns a :class:`Dashboards` handle (``urls``, ``stop()``); the
CLI blocks on it until Ctrl-C.
"""

from __future__ import annotations

import datetime as _dt
import json
import mimetypes
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna
from optuna_dashboard import wsgi as optuna_wsgi

from cnnkeras.studies.storage import open_storage
from cnnkeras.tracking import default_tracking_uri
from cnnkeras.tracking.values import redact

from . import render, safe_json
from .proxy import read_only, read_only_mlflow, reverse_proxy
from .sweeps import sweep_rows

__all__ = ["MLFLOW_SERVER_ENV", "Dashboards", "find_storages", "serve"]

#: What every ``mlflow server`` cnnkeras starts runs with: no job execution. MLflow 3.17 starts a
#: Huey job runner beside its server by default (six ``huey_consumer`` processes of about 240 MB each,
#: for GenAI jobs: judges, trace rollups); cnnkeras logs no traces and runs no jobs there.
MLFLOW_SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}

SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", "mlartifacts", ".pytest_cache"}


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (wsgiref's name)
        pass


@dataclass
class StudyStorage:
    """One Optuna storage with the studies in it, and where its dashboard listens (0: the landing port)."""

    storage: str
    studies: list[str]
    port: int | None = 0  # None: unreadable, no dashboard
    opened: Any = field(default=None, repr=False)  # the Optuna storage, opened once for listing and dashboard

    @property
    def shown(self) -> str:
        return redact(self.storage)


@dataclass
class Dashboards:
    """The running services of ``cnnkeras ui``."""

    landing: str
    mlflow: str | None
    storages: list[StudyStorage] = field(default_factory=list)
    reports_dir: Path = Path("reports")
    mlflow_health: str | None = None
    _servers: list[Any] = field(default_factory=list, repr=False)
    _process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def urls(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {"landing": self.landing}  # None: a store whose dashboard has no port
        if self.mlflow:
            out["mlflow"] = self.mlflow
        for item in self.storages:
            out[f"optuna:{item.shown}"] = self.dashboard_url(item)
        return out

    def dashboard_url(self, item: StudyStorage, host: str | None = None) -> str | None:
        if item.port is None:
            return None
        base = self.landing.rstrip("/")
        if host is not None:
            base = f"http://{host}:{urlsplit(self.landing).port}"
        if not item.port:
            return f"{base}/dashboard/"
        return f"{base.rsplit(':', 1)[0]}:{item.port}/dashboard/"

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until the MLflow UI answers (it takes a few seconds to start)."""
        if not self.mlflow_health:
            return
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with code {self._process.returncode}")
            try:
                with urllib.request.urlopen(self.mlflow_health, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"the MLflow UI did not answer at {self.mlflow} within {timeout:.0f} s")

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers = []
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()


def find_storages(root: str | os.PathLike[str], extra: Sequence[str] = ()) -> list[StudyStorage]:
    """Study storages under ``root`` (``.cnnkeras/*.journal``) and in ``extra``, with their studies."""
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        if Path(folder).name == ".cnnkeras":
            found += sorted(str(Path(folder, f)) for f in files if f.endswith(".journal"))
    out = []
    for storage in [*found, *extra]:
        try:
            opened = open_storage(storage, wait_s=5)
            names = [s.study_name for s in optuna.get_all_study_summaries(opened)]
            out.append(StudyStorage(storage, names, opened=opened))
        except Exception as exc:  # an unreadable storage is listed with its error, without a dashboard
            out.append(StudyStorage(storage, [f"(unreadable: {type(exc).__name__})"], port=None))
    return out


def _landing_app(state: Dashboards, root: Path, tracking_uri: str, *, mlflow_proxy: Callable | None,
                 dashboard: Callable | None) -> Callable:
    wildcard = urlsplit(state.landing).hostname in ("0.0.0.0", "::", "")

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path in ("/", "/index.html", "/api/sweeps"):
            # Bound to every interface: link back to the address the browser used, never 0.0.0.0.
            host = environ.get("HTTP_HOST", "").rsplit(":", 1)[0] if wildcard else None
            reports = sorted(state.reports_dir.glob("*.html")) if state.reports_dir.is_dir() else []
            sweeps = sweep_rows(state.storages, mlflow=state.mlflow, reports=[f"reports/{p.name}" for p in reports],
                                dashboard_url=lambda item: state.dashboard_url(item, host or None))
            if path == "/api/sweeps":  # the landing page refreshes its sweeps from here while they run
                body = json.dumps({"sweeps": sweeps}).encode()
                return _respond(start_response, "200 OK", body, "application/json")
            page = render(
                "landing.html.j2", mlflow=state.mlflow, tracking_uri=redact(tracking_uri), root=str(root),
                storages=[{"studies": item.studies, "storage": item.shown,
                           "url": state.dashboard_url(item, host or None)} for item in state.storages],
                reports=[{"name": p.stem, "href": f"reports/{p.name}",
                          "modified": _dt.datetime.fromtimestamp(p.stat().st_mtime).strftime("%Y-%m-%d %H:%M"),
                          "size_mb": p.stat().st_size / 1e6} for p in reports],
                sweeps=sweeps, sweeps_json=safe_json({"sweeps": sweeps}),
            )
            return _respond(start_response, "200 OK", page.encode(), "text/html; charset=utf-8")
        if path == "/healthz":
            return _respond(start_response, "200 OK", b"ok", "text/plain")
        if path.startswith("/reports/"):
            name = path[len("/reports/"):]
            file = (state.reports_dir / name).resolve()
            if "/" in name or not file.is_file() or file.parent != state.reports_dir.resolve():
                return _respond(start_response, "404 Not Found", b"no such report", "text/plain")
            kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            return _respond(start_response, "200 OK", file.read_bytes(), kind)
        if mlflow_proxy is not None and (path == "/mlflow" or path.startswith("/mlflow/")):
            return mlflow_proxy(environ, start_response)
        if dashboard is not None:
            return dashboard(environ, start_response)
        return _respond(start_response, "404 Not Found", b"not found", "text/plain")

    return app


def _respond(start_response: Callable, status: str, body: bytes, kind: str) -> list[bytes]:
    start_response(status, [("Content-Type", kind), ("Content-Length", str(len(body))),
                            ("X-Content-Type-Options", "nosniff")])
    return [body]


def _serve_thread(app: Callable, host: str, port: int) -> Any:
    server = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True, name=f"ui:{port}").start()
    return server


def serve(*, root: str | os.PathLike[str] = ".", uri: str | None = None, host: str = "127.0.0.1",
          port: int = 5000, reports: str | os.PathLike[str] = "reports", storages: Sequence[str] = (),
          mlflow: bool = True, mlflow_url: str | None = None) -> Dashboards:
    """Start the landing page, the MLflow UI and optuna-dashboard; returns the running handle.

    With ``mlflow_url`` (an MLflow server already running, as in docker-compose.yml) no
    MLflow UI is started: a URL whose path is ``/mlflow`` (a server started with
    ``--static-prefix /mlflow``) is proxied at the landing page's ``/mlflow/``, any
    other is linked as it is.
    """
    root = Path(root)
    tracking_uri = default_tracking_uri(uri)
    state = Dashboards(landing=f"http://{host}:{port}/", mlflow=None, reports_dir=Path(reports))
    mlflow_proxy = None
    if mlflow_url:
        target = mlflow_url.rstrip("/")
        if urlsplit(target).path == "/mlflow":
            mlflow_proxy = reverse_proxy(target)
            state.mlflow, state.mlflow_health = "/mlflow/", f"{target}/health"
        else:
            state.mlflow = target
    elif mlflow:
        target = f"http://127.0.0.1:{port + 1}/mlflow"
        mlflow_proxy = read_only_mlflow(reverse_proxy(target))  # a local store has no logins: nothing is changed
        state.mlflow, state.mlflow_health = "/mlflow/", f"{target}/health"
    shared = os.environ.get("CNNKERAS_STORAGE")  # the study storage of sweep workers (docker-compose.yml)
    state.storages = find_storages(root, [*storages, *([shared] if shared and shared not in storages else [])])
    try:
        dashboard = None
        readable = [item for item in state.storages if item.port is not None]
        for offset, item in enumerate(readable, start=1):
            app = read_only(optuna_wsgi(item.opened))
            if dashboard is None:
                dashboard, item.port = app, 0  # the first storage's dashboard shares the landing port
            else:
                item.port = port + offset
                state._servers.append(_serve_thread(app, host, item.port))
        if mlflow and not mlflow_url:
            state._process = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri, "--host", "127.0.0.1",
                 "--port", str(port + 1), "--workers", "1", "--static-prefix", "/mlflow"],
                stdout=subprocess.DEVNULL,  # its errors go to our stderr
                env={**os.environ, **MLFLOW_SERVER_ENV})
        state._servers.append(_serve_thread(_landing_app(state, root, tracking_uri, mlflow_proxy=mlflow_proxy,
                                                         dashboard=dashboard), host, port))
    except BaseException:
        state.stop()
        raise
    return state
