"""``cnnkeras ui``: one landing page for the MLflow UI, optuna-dashboard and the reports, on localhost.

What runs, all bound to ``host`` (loopback by default):

- the landing page and the reports (``reports/*.html``) on ``port``;
- the MLflow UI (``mlflow server`` on the tracking store) on ``port + 1``;
- one optuna-dashboard per study storage on ``port + 2``, ``port + 3``, ...
  (optuna-dashboard's own WSGI app, served from a thread of this process).

Studies are found as ``.cnnkeras/*.journal`` files under ``root`` (where
``cnnkeras sweep`` keeps them, beside each experiment file) plus any storage URL
given with ``storages`` (PostgreSQL, SQLite).

:func:`serve` returns a :class:`Dashboards` handle (``urls``, ``stop()``); the
CLI blocks on it until Ctrl-C.
"""

from __future__ import annotations

import datetime as _dt
import mimetypes
import os
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any, Callable, Iterable, Sequence
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from . import render

__all__ = ["Dashboards", "find_storages", "serve"]

SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", "mlartifacts", ".pytest_cache"}


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (wsgiref's name)
        pass


@dataclass
class StudyStorage:
    """One Optuna storage with the studies in it, and where its dashboard listens."""

    storage: str
    studies: list[str]
    url: str = ""


@dataclass
class Dashboards:
    """The running services of ``cnnkeras ui``."""

    landing: str
    mlflow: str | None
    storages: list[StudyStorage] = field(default_factory=list)
    reports_dir: Path = Path("reports")
    _servers: list[Any] = field(default_factory=list, repr=False)
    _process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def urls(self) -> dict[str, str]:
        out = {"landing": self.landing}
        if self.mlflow:
            out["mlflow"] = self.mlflow
        for item in self.storages:
            out[f"optuna:{item.storage}"] = item.url
        return out

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until the MLflow UI answers (it takes a few seconds to start)."""
        if not self.mlflow:
            return
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with code {self._process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.mlflow}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"the MLflow UI did not answer at {self.mlflow} within {timeout:.0f} s")

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()


def find_storages(root: str | os.PathLike[str], extra: Sequence[str] = ()) -> list[StudyStorage]:
    """Study storages under ``root`` (``.cnnkeras/*.journal``) and in ``extra``, with their studies."""
    import optuna

    from cnnkeras.studies.study import _open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        if Path(folder).name == ".cnnkeras":
            found += sorted(str(Path(folder, f)) for f in files if f.endswith(".journal"))
    out = []
    for storage in [*found, *extra]:
        try:
            names = [s.study_name for s in optuna.get_all_study_summaries(_open_storage(storage))]
        except Exception as exc:  # an unreadable storage is listed with its error, not fatal
            names = [f"(unreadable: {type(exc).__name__})"]
        out.append(StudyStorage(storage, names))
    return out


def _landing_app(state: Dashboards, root: Path, tracking_uri: str) -> Callable:
    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path in ("/", "/index.html"):
            reports = sorted(state.reports_dir.glob("*.html")) if state.reports_dir.is_dir() else []
            page = render(
                "landing.html.j2", mlflow=state.mlflow, tracking_uri=tracking_uri, storages=state.storages,
                root=str(root), reports=[{"name": p.stem, "href": f"reports/{p.name}",
                                          "modified": _dt.datetime.fromtimestamp(p.stat().st_mtime)
                                          .strftime("%Y-%m-%d %H:%M"), "size_mb": p.stat().st_size / 1e6}
                                         for p in reports],
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

    With ``mlflow_url`` (an MLflow server already running, as in docker-compose.yml) the
    landing page links to it and no MLflow UI is started.
    """
    from optuna_dashboard import wsgi as optuna_wsgi

    from cnnkeras.studies.study import _open_storage
    from cnnkeras.tracking import default_tracking_uri

    root = Path(root)
    tracking_uri = default_tracking_uri(uri)
    own_mlflow = mlflow and not mlflow_url
    state = Dashboards(landing=f"http://{host}:{port}/",
                       mlflow=mlflow_url.rstrip("/") if mlflow_url else (f"http://{host}:{port + 1}" if mlflow else None),
                       reports_dir=Path(reports))
    state.storages = find_storages(root, storages)
    try:
        for offset, item in enumerate(state.storages, start=2):
            state._servers.append(_serve_thread(optuna_wsgi(_open_storage(item.storage)), host, port + offset))
            item.url = f"http://{host}:{port + offset}/dashboard/"
        if own_mlflow:
            state._process = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri, "--host", host,
                 "--port", str(port + 1), "--workers", "1"],
                stdout=subprocess.DEVNULL)  # its errors go to our stderr
        state._servers.append(_serve_thread(_landing_app(state, root, tracking_uri), host, port))
    except BaseException:
        state.stop()
        raise
    return state
