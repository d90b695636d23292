"""Every check of an experiment config beyond its schema, run by the one loader.

:func:`all_checks` is what :func:`cnnkeras.config.load_config` runs after pydantic:

- :func:`check_search_space`: every ``search.parameters`` key path names a real key
  (the nearest valid key suggested) and every bound or choice is a value that key
  accepts (validated by the schema itself, with the trial's value put in place);
- :func:`check_report`: claims and ``color_by`` name swept parameters, levels match;
- the registry checks (architecture names, the options each takes, declarative layer
  types): config never imports the zoo; the package root registers the zoo's check
  with :func:`register_check`, so every loader runs it (``cnnkeras.load_config`` and
  ``cnnkeras.config.load_config`` are one function).

Each check returns ``(key path, message)`` pairs; the loader adds file and line.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path as FsPath
from typing import Any

from pydantic import ValidationError

from .errors import _model_at, nearest
from .overrides import apply_override
from .schema import OBJECTIVE_METRICS, CategoricalParam, ClaimMeasure, ExperimentConfig, Monitor, ObjectiveMetric

__all__ = ["Check", "all_checks", "check_data_paths", "check_metrics", "check_report", "check_search_space",
           "logged_metrics", "parameter_kind", "register_check", "split_key_path", "value_key"]

Path = tuple[Any, ...]
Check = Callable[[ExperimentConfig], Iterable[tuple[Path, str]]]

_REGISTERED: list[Check] = []


def register_check(check: Check) -> Check:
    """Add a check that needs a registry config cannot import (the zoo's); returns it unchanged."""
    if check not in _REGISTERED:
        _REGISTERED.append(check)
    return check


def all_checks() -> list[Check]:
    """The search-space, metric, data and report checks, then every registered one."""
    return [check_search_space, check_metrics, check_data_paths, check_report, *_REGISTERED]


#: What each head logs every epoch (and ``val_`` of each with validation data). ``data_loss``: the
#: loss without the L1/L2 penalty, when there is one.
HEAD_METRICS = {"multiclass": ("loss", "accuracy"), "binary": ("loss", "accuracy"), "regression": ("loss", "mae"),
                "segmentation": ("loss", "accuracy", "mean_iou")}
#: Each gap and the per-epoch metric it needs.
GAPS = {"gap_accuracy": "accuracy", "gap_loss": "loss", "gap_mae": "mae", "gap_mean_iou": "mean_iou"}


def logged_metrics(config: ExperimentConfig) -> set[str]:
    """The per-epoch metrics a run of ``config`` logs: its head's, ``val_`` ones with validation data,
    ``train_`` ones with the training sample (``train.gap_sample``: by default as large as the validation
    split), the gaps with both, ``data_loss`` with a weight penalty."""
    own = set(HEAD_METRICS[config.model.head])
    if config.train.l1 or config.train.l2:
        own.add("data_loss")
    names = set(own)
    validation = config.data.validation_split > 0
    sample = config.train.gap_sample != 0 and (config.train.gap_sample is not None or validation)
    if validation:
        names |= {f"val_{name}" for name in own}
    if sample:
        names |= {f"train_{name}" for name in own}
    if validation and sample:
        names |= {gap for gap, needs in GAPS.items() if needs in own}
    return names


def _summary_needs(metric: str) -> str:
    """The per-epoch metric a summary value is read from: ``best_val_accuracy`` -> ``val_accuracy``,
    ``test_accuracy`` -> ``accuracy`` (the test split is scored with the training metrics)."""
    for prefix in ("best_", "final_", "test_"):
        if metric.startswith(prefix):
            return metric[len(prefix):]
    return metric


def _why_missing(config: ExperimentConfig, needed: str) -> str:
    head = config.model.head
    if needed.startswith("train_") or needed in GAPS or needed == "epochs_to_fit":
        if config.train.gap_sample == 0:
            return "train.gap_sample is 0: no training sample, so no train_ metrics and no gaps"
    base = needed[4:] if needed.startswith("val_") else GAPS.get(needed, needed)
    base = base[6:] if base.startswith("train_") else "accuracy" if base == "epochs_to_fit" else base
    if base not in HEAD_METRICS[head] and base != "data_loss":
        return f"head {head} logs {', '.join(HEAD_METRICS[head])}, not {base}"
    if base == "data_loss":
        return "data_loss is logged only with a weight penalty (train.l1 or train.l2)"
    return "it needs validation data, and data.validation_split is 0"


def check_metrics(config: ExperimentConfig) -> list[tuple[Path, str]]:
    """Every metric a config names exists for its head and data: monitors, objectives (and the metric
    the pruner watches), claims' measures. Otherwise the run would train, then fail or watch nothing."""
    logged = logged_metrics(config)
    problems: list[tuple[Path, str]] = []
    choices = {"monitor": typing.get_args(Monitor), "objective": typing.get_args(ObjectiveMetric),
               "measure": typing.get_args(ClaimMeasure)}

    def exists(name: str) -> bool:
        if name in ("epochs_after_best", "best_epoch"):
            return True
        if name == "epochs_to_fit":  # from the training sample's accuracy
            return "train_accuracy" in logged
        if name.startswith("test_minus_val_"):
            return "val_" + name[len("test_minus_val_"):] in logged
        return _summary_needs(name) in logged

    def need(where: Path, metric: str, what: str, *, fallback: bool = False) -> None:
        needed = _summary_needs(metric) if what != "monitor" else metric
        if fallback and config.data.validation_split == 0 and needed.startswith("val_"):
            needed = needed[4:]  # the documented fallback: without validation data the best epoch is by training
        if not exists(needed if what == "monitor" else metric) and needed not in logged:
            usable = [name for name in choices[what] if exists(name)]
            problems.append((where, f"{metric} is not logged by this run ({_why_missing(config, needed)}); "
                                    f"{what}s this run has: {', '.join(usable)}"))

    train = config.train
    need(("train", "monitor"), train.monitor, "monitor", fallback=True)
    if train.early_stopping is not None:
        need(("train", "early_stopping", "monitor"), train.early_stopping.monitor, "monitor")
    if train.checkpoint is not None:
        need(("train", "checkpoint", "monitor"), train.checkpoint.monitor, "monitor")
    if train.schedule.name == "reduce_on_plateau":
        need(("train", "schedule", "monitor"), train.schedule.monitor, "monitor")
    if config.search is not None:
        search = config.search
        for i, objective in enumerate(search.objectives):
            need(("search", "objectives", i, "metric"), objective.metric, "objective")
        watched = OBJECTIVE_METRICS[search.objectives[0].metric]
        if search.pruner.name != "none" and len(search.objectives) == 1 and exists(search.objectives[0].metric) \
                and watched not in logged:
            problems.append((("search", "pruner", "name"),
                             f"the {search.pruner.name} pruner would watch {watched} each epoch, which this run does "
                             f"not log ({_why_missing(config, watched)}); set search.pruner.name: none"))
    for i, claim in enumerate(config.report.claims):
        need(("report", "claims", i, "measure"), claim.measure, "measure")
    return problems


def check_data_paths(config: ExperimentConfig) -> list[tuple[Path, str]]:
    """``data.path`` exists and can be read (a file for npz, a folder for image_folder), before any run."""
    data = config.data
    if not data.path:
        return []
    path = FsPath(data.path).expanduser()
    want_folder = data.source == "image_folder"
    if not path.exists():
        return [(("data", "path"), f"{path} does not exist")]
    if want_folder and not path.is_dir():
        return [(("data", "path"), f"{path} is a file; source image_folder reads a folder")]
    if not want_folder and path.is_dir():
        return [(("data", "path"), f"{path} is a folder; source {data.source} reads an .npz file")]
    if not os.access(path, os.R_OK | (os.X_OK if want_folder else 0)):
        return [(("data", "path"), f"{path} cannot be read (permissions)")]
    return []


def split_key_path(path: str) -> Path:
    """``"model.layers.0.filters"`` -> ``("model", "layers", 0, "filters")``."""
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
        parts = split_key_path(path)
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



def check_report(config: ExperimentConfig) -> list[tuple[tuple[Any, ...], str]]:
    """Config problems of ``report:``: claims about parameters the sweep does not vary."""
    report = config.report
    problems: list[tuple[tuple[Any, ...], str]] = []
    swept = list(config.search.parameters) if config.search else []

    def unknown(path: str, where: tuple[Any, ...]) -> None:
        if not swept:
            problems.append((where, f"'{path}' is not swept: this config has no search: section"))
            return
        best = nearest(path, swept)
        hint = f"; did you mean '{best}'?" if best else ""
        problems.append((where, f"'{path}' is not one of search.parameters ({', '.join(swept)}){hint}"))

    if report.color_by is not None and report.color_by not in swept:
        unknown(report.color_by, ("report", "color_by"))
    for i, claim in enumerate(report.claims):
        if claim.parameter not in swept:
            unknown(claim.parameter, ("report", "claims", i, "parameter"))
            continue
        if claim.optimum_of is not None and claim.optimum_of not in swept:
            unknown(claim.optimum_of, ("report", "claims", i, "optimum_of"))
        assert config.search is not None  # claim.parameter is in swept, which only a search: section fills
        param = config.search.parameters[claim.parameter]
        if claim.at is not None:
            problems.extend(_at_problem(claim.at, param, claim.parameter, ("report", "claims", i, "at")))
        if claim.levels is not None:
            choices = getattr(param, "choices", None)
            if choices is None:
                problems.append((("report", "claims", i, "levels"),
                                 f"levels are for categorical parameters; {claim.parameter} is {param.type}"))
            else:
                missing = [v for v in claim.levels if value_key(v) not in {value_key(c) for c in choices}]
                if missing or len(claim.levels) != len(choices):
                    problems.append((("report", "claims", i, "levels"),
                                     f"levels must list every choice of {claim.parameter} once "
                                     f"({list(choices)}); got {list(claim.levels)}"))
        elif isinstance(param, CategoricalParam) and not _numeric_choices(param.choices):
            problems.append((("report", "claims", i, "levels"),
                             f"{claim.parameter} is categorical with non-numeric choices {list(param.choices)}: "
                             "give levels, their order for the claim"))
    return problems


def _at_problem(at: Any, param: Any, path: str, where: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], str]]:
    """A level claim's ``at`` must be a value the sweep gives its parameter."""
    choices = getattr(param, "choices", None)
    if choices is not None:
        if value_key(at) not in {value_key(c) for c in choices}:
            return [(where, f"{at!r} is not one of {path}'s choices {list(choices)}")]
        return []
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not param.low <= at <= param.high:
        return [(where, f"{at!r} is outside {path}'s range [{param.low}, {param.high}]")]
    return []


def _numeric_choices(choices: Iterable[Any]) -> bool:
    """Categorical choices that are all numbers (so a claim can treat them as a scale)."""
    values = list(choices)
    return len(values) > 1 and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in values)


def value_key(value: Any) -> str:
    """Compare parameter values across MLflow's strings and YAML's types: 'True' == True, '32' == 32."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(float(value))
    text = str(value)
    try:
        return repr(float(text))
    except ValueError:
        return text.lower()


def parameter_kind(param: Any) -> str:
    """How a swept parameter is scaled wherever it is fitted or ranked: ``log``, ``linear`` or ``levels``.

    Floats and ints: ``log`` when sampled on a log scale, else ``linear``. Categoricals of
    numbers: ``log`` when all are positive and span a factor of 4 or more (batch sizes,
    learning rates), else ``linear``; any other categorical: ``levels``. One rule for the
    report's claims and plots and for the importances the sweep prints.
    """
    if not isinstance(param, CategoricalParam):
        return "log" if param.log else "linear"
    numeric = [c for c in param.choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
    if len(numeric) == len(param.choices) and len(numeric) > 1:
        return "log" if min(numeric) > 0 and max(numeric) / min(numeric) >= 4 else "linear"
    return "levels"
