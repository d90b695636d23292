"""The search space: checking it against the config, and sampling it in a trial.

A parameter is addressed by a key path of the experiment config
(``train.optimizer.learning_rate``). :func:`check_search_space` runs with the
other config checks, before any trial: every path must name a real key (with the
nearest valid key suggested), and every bound or choice must be a value that key
accepts (validated by the schema itself, with the trial's value put in place).
:func:`trial_overrides` samples one trial's values as ``key.path=value`` overrides,
so a trial is just a run with overrides.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from pydantic import BaseModel, ValidationError

from ..config.errors import _model_at, nearest
from ..config.loader import apply_override
from ..config.schema import CategoricalParam, ExperimentConfig, FloatParam, IntParam

__all__ = ["check_search_space", "format_override", "sample_values", "trial_overrides"]

Path = tuple[Any, ...]


def _split(path: str) -> Path:
    return tuple(int(p) if p.isdigit() else p for p in path.split("."))


def _unknown_key(raw: Mapping[str, Any], parts: Path) -> str | None:
    """Why ``parts`` is not a key of the config, or None when it is."""
    for depth in range(1, len(parts) + 1):
        parent = _model_at(ExperimentConfig, parts[: depth - 1], raw)
        if parent is None:
            node: Any = raw
            for part in parts[: depth - 1]:
                node = node[part] if isinstance(node, (dict, list)) and _has(node, part) else None
            if node is None:
                return f"no key '{'.'.join(map(str, parts[:depth]))}' in the config"
            continue  # inside a free-form value (model.layers): the schema cannot say more
        key = parts[depth - 1]
        if key not in parent.model_fields:
            where = ".".join(map(str, parts[: depth - 1])) or "the top level"
            best = nearest(str(key), list(parent.model_fields))
            hint = f"; did you mean '{'.'.join(map(str, parts[: depth - 1] + (best,)))}'?" if best else ""
            return f"no key '{key}' in {where}{hint}"
    return None


def _has(node: Any, part: Any) -> bool:
    return (isinstance(node, dict) and part in node) or (
        isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node))


def _candidates(param: Any) -> list[tuple[str, Any]]:
    if isinstance(param, CategoricalParam):
        return [(f"choices[{i}]", value) for i, value in enumerate(param.choices)]
    return [("low", param.low), ("high", param.high)]


def check_search_space(config: ExperimentConfig) -> Iterable[tuple[Path, str]]:
    """Problems with ``config.search``: unknown key paths and values their key refuses."""
    if config.search is None:
        return []
    raw = config.to_dict()
    raw.pop("search", None)
    raw.pop("report", None)
    problems: list[tuple[Path, str]] = []
    for path, param in config.search.parameters.items():
        where: Path = ("search", "parameters", path)
        parts = _split(path)
        if parts[0] == "search":
            problems.append((where, "a sweep cannot search its own search section"))
            continue
        unknown = _unknown_key(raw, parts)
        if unknown:
            problems.append((where, unknown))
            continue
        for label, value in _candidates(param):
            try:
                ExperimentConfig.model_validate(apply_override(raw, parts, value))
            except ValidationError as exc:
                first = exc.errors()[0]
                problems.append((where + ((label.split("[")[0],) if "[" in label else (label,)),
                                 f"{label} = {value!r} is not a valid {path}: {first['msg'].lower()}"))
                break
    return problems


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
