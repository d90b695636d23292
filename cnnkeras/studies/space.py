"""The search space: checking it against the config, and sampling it in a trial.

A parameter is addressed by a key path of the experiment config
(``train.optimizer.learning_rate``). :func:`cnnkeras.config.checks.check_search_space`
checks it with the rest of the config, before any trial.
:func:`trial_overrides` samples one trial's values as ``key.path=value`` overrides,
so a trial is just a run with overrides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from ..config.schema import FloatParam, IntParam

__all__ = ["format_override", "sample_values", "trial_overrides", "values_from_params"]


def sample_values(trial: Any, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Ask an Optuna trial for a value of every parameter (named by its key path)."""
    values: dict[str, Any] = {}
    for path, param in parameters.items():
        if isinstance(param, FloatParam):
            values[path] = trial.suggest_float(path, param.low, param.high, log=param.log, step=param.step)
        elif isinstance(param, IntParam):
            values[path] = trial.suggest_int(path, param.low, param.high, step=param.step, log=param.log)
        else:
            values[path] = trial.suggest_categorical(path, list(param.choices))
    return values


def format_override(path: str, value: Any) -> str:
    """``('train.l2', 1e-4)`` -> ``'train.l2=0.0001'`` (JSON, which YAML reads back exactly)."""
    return f"{path}={json.dumps(value)}"


def trial_overrides(trial: Any, parameters: Mapping[str, BaseModel]) -> list[str]:
    """One trial's sampled values as ``key.path=value`` overrides."""
    return [format_override(path, value) for path, value in sample_values(trial, parameters).items()]


def values_from_params(params: Mapping[str, str], parameters: Mapping[str, Any]) -> dict[str, Any] | None:
    """A trial's parameter values read back from its MLflow run's params (strings), typed as the
    search space says; None when one is missing or no longer in the space."""
    values: dict[str, Any] = {}
    for path, param in parameters.items():
        text = params.get(path)
        if text is None:
            return None
        if isinstance(param, FloatParam):
            values[path] = float(text)
        elif isinstance(param, IntParam):
            values[path] = int(float(text))
        else:
            match = [c for c in param.choices if str(c) == text or json.dumps(c) == text]
            if not match:
                return None
            values[path] = match[0]
    return values
