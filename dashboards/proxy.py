"""WSGI pieces of ``cnnkeras ui``: a read-only guard and a small reverse proxy.

- :func:`read_only` wraps optuna-dashboard, whose API accepts writes (create,
  rename and delete studies, tell trials) from anyone who can reach it: only
  ``GET`` and ``HEAD`` pass, everything else is answered ``405``.
- :func:`read_only_mlflow` guards the MLflow UI that ``cnnkeras ui`` starts on the local
  store (no login there): reads pass, including the POST requests the UI reads with
  (``.../search``, GraphQL queries); writes (create, update, delete, log, set-tag) are
  answered ``403``. An MLflow server given with ``--mlflow-url`` has its own logins, and
  the proxy passes them through.
- :func:`reverse_proxy` forwards ``/mlflow/...`` to an MLflow server started with
  ``--static-prefix /mlflow``, so the landing page's one port is the only one a
  browser needs (docker-compose.yml publishes only it, on 127.0.0.1). Headers,
  the body and the ``Authorization`` of basic auth pass through unchanged; the
  server's ``WWW-Authenticate`` makes the browser ask for the login.
"""

from __future__ import annotations

import http.client
import io
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

__all__ = ["read_only", "read_only_mlflow", "reverse_proxy"]

SAFE_METHODS = ("GET", "HEAD")
# Hop-by-hop headers (RFC 9110 7.6.1) are never forwarded.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade"}


def read_only(app: Callable) -> Callable:
    """``app`` with every request other than GET/HEAD refused (405)."""

    def guarded(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET").upper() not in SAFE_METHODS:
            body = b"read-only: this dashboard does not change studies (use the optuna API or cnnkeras)"
            start_response("405 Method Not Allowed", [("Content-Type", "text/plain"), ("Allow", "GET, HEAD"),
                                                      ("Content-Length", str(len(body)))])
            return [body]
        return app(environ, start_response)

    return guarded


#: Last path segments of MLflow's POST endpoints that only read (the UI searches with POST).
READ_POSTS = {"search", "search-datasets", "get-latest-versions", "batchGetInfos", "calculate-filter-correlation",
              "presigned-download-url", "get-history-bulk-interval"}


def read_only_mlflow(app: Callable) -> Callable:
    """``app`` (a proxy to an MLflow server without logins) with every write refused (403)."""

    def guarded(environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "/").rstrip("/")
        if method in SAFE_METHODS or (method == "POST" and _reads(path, environ)):
            return app(environ, start_response)
        body = (b"read-only: the MLflow UI that cnnkeras ui starts on a local store (no logins) does not change "
                b"experiments or runs; use cnnkeras or the MLflow API, or serve an MLflow server with logins and "
                b"pass --mlflow-url")
        start_response("403 Forbidden", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    return guarded


def _reads(path: str, environ: dict) -> bool:
    """A POST that only reads: a search, or a GraphQL query (not a mutation)."""
    if path.rsplit("/", 1)[-1] in READ_POSTS:
        return True
    if path.endswith("/graphql"):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)  # read again by the proxy
        return b"mutation" not in body.lower()
    return False


def reverse_proxy(target: str, *, timeout: float = 60.0) -> Callable:
    """A WSGI app forwarding each request's path and query to ``target``'s host (http only)."""
    parts = urlsplit(target)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"the MLflow proxy needs an http:// URL. Received: target={target!r}")
    host, port = parts.hostname, parts.port or 80

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        headers = {key[5:].replace("_", "-").title(): value for key, value in environ.items()
                   if key.startswith("HTTP_") and key[5:].replace("_", "-").lower() not in HOP_BY_HOP}
        headers["Host"] = f"{host}:{port}"
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else None
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            connection.request(environ.get("REQUEST_METHOD", "GET"), path, body=body, headers=headers)
            response = connection.getresponse()
            content = response.read()
        except OSError as exc:
            connection.close()
            message = f"the MLflow server at {target} is not answering ({type(exc).__name__})".encode()
            start_response("502 Bad Gateway", [("Content-Type", "text/plain"), ("Content-Length", str(len(message)))])
            return [message]
        connection.close()
        forwarded = [(name, value) for name, value in response.getheaders()
                     if name.lower() not in HOP_BY_HOP and name.lower() != "content-length"]
        forwarded.append(("Content-Length", str(len(content))))
        start_response(f"{response.status} {response.reason}", forwarded)
        return [content]

    return app
