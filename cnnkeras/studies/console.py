"""What a sweep prints while it works: one line per finished trial, whatever ended it."""

from __future__ import annotations

import math
from typing import Any

from ..tracking.values import redact

__all__ = ["TrialLine", "short_number"]


def short_number(value: Any) -> str:
    """A parameter value for people: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class TrialLine:
    """One line per told trial (``trial  3 COMPLETE best_val_accuracy=0.9312  lr=0.001``).

    With ``failures_only`` (``-q``) only failed trials print: a failure is never silent.
    """

    def __init__(self, console: Any, search: Any, *, failures_only: bool = False):
        self.console, self.search, self.failures_only = console, search, failures_only

    def __call__(self, trial: Any) -> None:
        state = trial.state.name
        if self.failures_only and state != "FAIL":
            return
        colour = {"COMPLETE": "green", "PRUNED": "yellow", "FAIL": "red"}.get(state, "dim")
        metric = self.search.objectives[0].metric
        value = (trial.user_attrs.get("summary") or {}).get(metric)
        if state == "COMPLETE" and isinstance(value, float) and math.isfinite(value):
            shown = f"{metric}={value:.4f}"
        else:
            shown = trial.user_attrs.get("reason", "")
        overrides = [f"{k}={short_number(v)}" for k, v in trial.params.items()]
        self.console.print(f"trial {trial.number:3d} [{colour}]{state:8s}[/] {redact(shown)}  "
                           f"[dim]{' '.join(overrides)}[/]", highlight=False, soft_wrap=True)
