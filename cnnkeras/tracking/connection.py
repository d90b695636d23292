"""Check a tracking URI once, in seconds, before any run or sweep relies on it.

MLflow's HTTP client retries a server that does not answer for minutes (with
backoff) before it raises, and answers a refused login with a traceback. That is
right in the middle of a sweep (a server restarted for 20 s must not fail a
trial), and wrong at the start, where a typo in the URI or a missing password
should cost seconds and print one line. :func:`check_tracking` asks once per URI
and process, without retries:

- ``http(s)://``: ``GET /health`` answers (else "not reachable"), then one
  authenticated read (``experiments/search``) is allowed (else 401/403 explained,
  naming ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``);
- ``sqlite:///``: the database's folder exists and is writable.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import TrackingError
from ..lazy import lazy_import
from .values import redact

requests = lazy_import("requests")

__all__ = ["check_tracking", "explain_http_error"]

#: How long the check waits for an answer: a refused connection is one line at once; a server that is up
#: but slow (its first request after a start, on a loaded machine) gets this long.
TIMEOUT_S = 30.0


def explain_http_error(uri: str, status: int) -> str:
    """One line for an HTTP status from an MLflow server (401, 403), naming the fix."""
    shown = redact(uri)
    if status == 401:
        if os.environ.get("MLFLOW_TRACKING_USERNAME"):
            return (f"the MLflow server at {shown} refused the login of "
                    f"{os.environ['MLFLOW_TRACKING_USERNAME']!r} (HTTP 401): check MLFLOW_TRACKING_PASSWORD")
        return (f"the MLflow server at {shown} needs a login (HTTP 401): set MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD")
    if status == 403:
        user = os.environ.get("MLFLOW_TRACKING_USERNAME", "this user")
        return (f"the MLflow server at {shown} refused {user!r} (HTTP 403): it may read this experiment but not "
                f"write to it; its owner or an admin grants that with: cnnkeras grant {user} EXPERIMENT "
                "(docs/served-stack.md)")
    return f"the MLflow server at {shown} answered HTTP {status}"


@functools.lru_cache(maxsize=32)
def check_tracking(uri: str) -> None:
    """Raise :class:`~cnnkeras.errors.TrackingError` (one line) when ``uri`` cannot be used."""
    if uri.startswith(("http://", "https://")):
        _check_server(uri)
    elif uri.startswith("sqlite:///"):
        folder = Path(uri[len("sqlite:///"):]).expanduser().resolve().parent
        if not folder.is_dir():
            raise TrackingError(f"tracking.uri {uri}: folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise TrackingError(f"tracking.uri {uri}: folder {folder} is not writable")


def _check_server(uri: str) -> None:
    base = uri.rstrip("/")
    shown = redact(base)
    try:
        health = requests.get(f"{base}/health", timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        reason = type(exc).__name__
        if isinstance(exc, requests.ConnectionError):
            reason = "connection refused or host unknown"
        elif isinstance(exc, requests.Timeout):
            reason = f"no answer within {TIMEOUT_S:.0f} s"
        raise TrackingError(f"the MLflow server at {shown} is not reachable ({reason}); start it, or fix "
                            "tracking.uri / MLFLOW_TRACKING_URI") from None
    if health.status_code >= 500:
        raise TrackingError(f"the MLflow server at {shown} answers HTTP {health.status_code} at /health: it is up "
                            "but failing (its database?); see its log") from None
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    auth = (user, password or "") if user else None
    try:
        response = requests.get(f"{base}/api/2.0/mlflow/experiments/search", params={"max_results": 1},
                                auth=auth, timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        raise TrackingError(f"the MLflow server at {shown} answers /health but not a first request "
                            f"({type(exc).__name__}); is its database down?") from None
    if response.status_code == 403 and "Invalid Host header" in response.text:
        raise TrackingError(f"the MLflow server at {shown} refuses the host name {urlsplit(base).netloc!r} (not "
                            "in its --allowed-hosts): add it there (MLFLOW_ALLOWED_HOSTS with "
                            "docker-compose.remote.yml), or use a name it allows")
    if response.status_code in (401, 403):
        raise TrackingError(explain_http_error(base, response.status_code))
    if response.status_code == 404 or health.status_code == 404:
        raise TrackingError(f"{shown} is not an MLflow tracking server (HTTP 404 at "
                            f"{'/health' if health.status_code == 404 else '/api/2.0/mlflow/experiments/search'}): "
                            "check the address and its path (a server started with --static-prefix needs it in "
                            "the URI)")
    if response.status_code >= 400:
        raise TrackingError(explain_http_error(base, response.status_code))
