"""Report templates and the dashboard server of cnnkeras (installed as ``cnnkeras.dashboards``).

- ``templates/report.html.j2``: the sweep report page (``cnnkeras report``);
- ``templates/landing.html.j2``: the landing page of ``cnnkeras ui``;
- :mod:`cnnkeras.dashboards.server`: ``cnnkeras ui`` itself (the landing page, the
  reports, and links to the MLflow UI and optuna-dashboard it starts).

Templates render with Jinja2's autoescaping on: every value from runs (names,
parameters, tags) is HTML-escaped, and figures travel as JSON whose ``<``, ``>``
and ``&`` are written as ``\\u003c``-style escapes, so no value can close a
``<script>`` element or add markup.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from cnnkeras.lazy import lazy_import

pio = lazy_import("plotly.io")
plotly_offline = lazy_import("plotly.offline")

__all__ = ["TEMPLATES", "figure_json", "number_text", "plotly_js", "render", "safe_json"]

TEMPLATES = Path(__file__).parent / "templates"


def safe_json(data: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">`` (no ``</script>``, no ``<!--``)."""
    text = data if isinstance(data, str) else json.dumps(data, default=str, allow_nan=False)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def figure_json(fig: Any) -> str:
    """A plotly figure as safe JSON (plotly's own encoder, then :func:`safe_json`)."""
    return safe_json(pio.to_json(fig, validate=False, pretty=False))


def plotly_js() -> str:
    """The plotly.js bundle that ships with plotly (inlined, so reports open offline)."""
    return plotly_offline.get_plotlyjs()


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` with autoescaping."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = number_text
    return env.get_template(template).render(**context)


def number_text(value: Any, digits: int = 4) -> str:
    """Numbers for tables: floats rounded, NaN and None blank."""
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        return f"{value:.{digits}g}" if abs(value) >= 1e4 or (value and abs(value) < 1e-3) else f"{value:.{digits}f}"
    return str(value)
