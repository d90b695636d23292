"""Every value sent to MLflow, made valid for every store, with credentials masked.

MLflow's stores disagree on what they accept: the SQLite and PostgreSQL stores take
an ``int`` tag, the REST client behind an ``http://`` tracking URI raises
``TypeError: bad argument type for built-in operation`` on it; a long parameter is
truncated by one store and refused by another. :class:`~cnnkeras.tracking.Tracker`
sends tags, params and metrics through the functions here and nowhere else, so the
file, SQLite, PostgreSQL and HTTP stores all see the same strings.

Credentials never reach a store or a console: :func:`redact` masks every password in
any text, in every form a URL or a connection string carries one
(``postgresql+psycopg://user:secret@host/db`` -> ``postgresql+psycopg://user:***@host/db``,
``...?sslmode=require&password=secret`` -> ``...&password=***``, ``host=h password=secret``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_PARAM_LENGTH", "MAX_TAG_LENGTH", "metric_values", "param_values", "redact", "redact_data",
           "tag_values"]

#: MLflow 3's limits on a param value and a tag value (the server refuses longer ones).
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000

# scheme://user:password@host -> the password group; also user:password@ inside longer text.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s'\"]*:)(?P<secret>[^@\s'\"]+)(?=@)")
# ?password=secret&..., password=secret in a libpq keyword string, PGPASSWORD=secret, pwd=/passwd=.
_KEY_PASSWORD = re.compile(r"(?P<head>(?<![A-Za-z0-9_])(?:[A-Za-z_]*password|passwd|pwd)\s*[=:]\s*)"
                           r"(?P<secret>'[^']*'|\"[^\"]*\"|[^&\s;'\"]+)", re.IGNORECASE)
_MASK = "***"


def redact(text: Any) -> str:
    """``text`` as a string with every password in it replaced by ``***``: a URL's ``user:password@``,
    a ``password=`` query or keyword (``?password=``, libpq's ``password=``, ``PGPASSWORD=``)."""
    masked = _URL_PASSWORD.sub(lambda m: m.group("head") + _MASK, str(text))
    return _KEY_PASSWORD.sub(lambda m: m.group("head") + _MASK, masked)


def redact_data(data: Any) -> Any:
    """A copy of nested dicts/lists with every string passed through :func:`redact`."""
    if isinstance(data, Mapping):
        return {key: redact_data(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_data(value) for value in data]
    if isinstance(data, str):
        return redact(data)
    return data


def _text(value: Any, limit: int) -> str:
    text = "" if value is None else redact(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def tag_values(tags: Mapping[str, Any] | None) -> dict[str, str]:
    """Tags as strings (``str(value)``, None as empty), masked and within MLflow's limit."""
    return {str(key): _text(value, MAX_TAG_LENGTH) for key, value in (tags or {}).items()}


def param_values(params: Mapping[str, Any] | None) -> dict[str, str]:
    """Params as strings, masked and truncated to MLflow's limit (ending in ``...`` when cut)."""
    return {str(key): _text(value, MAX_PARAM_LENGTH) for key, value in (params or {}).items()}


def metric_values(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    """The finite metrics as floats (MLflow stores NaN, but the UI plots it badly; None is skipped)."""
    out: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        if value is None or isinstance(value, (str, bytes)):
            continue
        number = float(value)
        if math.isfinite(number):
            out[str(key)] = number
    return out
