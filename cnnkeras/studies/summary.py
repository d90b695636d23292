"""What a sweep leaves: its result, importances, and what is logged on the parent run.

:func:`summarize` reads the study back into a :class:`SweepResult` (every trial,
the best ones, fANOVA importances for the objective and for the gap, with their trial
counts: :mod:`cnnkeras.studies.importance`, as the report) and logs on the
sweep's parent run: counts of every state (zeros included), the best values and
parameters, importances, ``sweep.json`` (storage password masked) and Optuna's plots.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from ..config.checks import parameter_kind
from ..config.schema import ExperimentConfig
from ..tracking.values import redact
from .importance import Ranking, importance_columns, rank_parameters
from .ledger import STALE_ATTR

__all__ = ["SweepResult", "count_done", "stale_numbers", "summarize"]


@dataclass
class SweepResult:
    """What a sweep left: the study, its parent run and the finished trials."""

    study_name: str
    storage: str
    parent_run_id: str | None
    directions: list[str]
    trials: list[dict[str, Any]] = field(default_factory=list)
    best: list[dict[str, Any]] = field(default_factory=list)
    importances: dict[str, Ranking] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for trial in self.trials:
            out[trial["state"]] = out.get(trial["state"], 0) + 1
        return out

    @property
    def all_failed(self) -> bool:
        """Trials were counted and none of them completed or was pruned: nothing was learned."""
        counted = [t for t in self.trials if not t["stale"] and t["state"] != "RUNNING"]
        return bool(counted) and all(t["state"] == "FAIL" for t in counted)


def stale_numbers(trials: Sequence[Any]) -> set[int]:
    """Numbers of trials whose process died: marked stale, or retried by a later trial."""
    return ({t.number for t in trials if t.user_attrs.get(STALE_ATTR)}
            | {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs})


def count_done(trials: Sequence[Any]) -> int:
    """Finished trials that count towards the total (a dead process's trial does not)."""
    stale = stale_numbers(trials)
    return sum(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL) and t.number not in stale
               for t in trials)


def _trial_rows(study: Any) -> list[dict[str, Any]]:
    rows = []
    trials = study.get_trials(deepcopy=False)
    stale = stale_numbers(trials)
    for t in trials:
        rows.append({"number": t.number, "state": t.state.name, "values": t.values, "params": dict(t.params),
                     "stale": t.number in stale, "user_attrs": dict(t.user_attrs)})
    return rows


def _importances(study: Any, config: ExperimentConfig) -> dict[str, Ranking]:
    """fANOVA rankings for each objective and for the gap, over the COMPLETE trials (dead processes' left out),
    by :func:`~cnnkeras.studies.importance.rank_parameters`: the function and trials the report uses too."""
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    stale = stale_numbers(study.get_trials(deepcopy=False))
    trials = [t for t in trials if t.number not in stale]
    assert config.search is not None  # a sweep's config has a search: section
    kinds = {path: parameter_kind(param) for path, param in config.search.parameters.items()}
    if config.report.replicate_key in kinds:  # repeats are categories, as in the report
        kinds[config.report.replicate_key] = "levels"
    summaries = [t.user_attrs.get("summary", {}) for t in trials]
    segmentation = any("final_gap_mean_iou" in s for s in summaries)
    objectives = [o.metric for o in config.search.objectives]
    out: dict[str, Ranking] = {}
    for column in importance_columns(objectives, segmentation=segmentation):
        if column in objectives:
            index = objectives.index(column)
            values = [t.values[index] if t.values else math.nan for t in trials]
        else:
            values = [s.get(column, math.nan) for s in summaries]
        out[column] = rank_parameters([dict(t.params) for t in trials], values, kinds, seed=config.seed)
    return out


def summarize(study: Any, config: ExperimentConfig, storage: str, parent: Any, *, elapsed: float) -> SweepResult:
    assert config.search is not None  # a sweep's config has a search: section
    directions: list[str] = [o.direction for o in config.search.objectives]
    result = SweepResult(study.study_name, redact(storage), parent.run_id if parent else None, directions,
                         trials=_trial_rows(study))
    try:
        best = study.best_trials if len(directions) > 1 else [study.best_trial]
    except ValueError:  # no complete trial
        best = []
    result.best = [{"number": t.number, "values": t.values, "params": dict(t.params),
                    "run_id": t.user_attrs.get("mlflow_run_id")} for t in best]
    result.importances = _importances(study, config)
    if parent is not None:
        _log_to_parent(parent, study, config, result, elapsed)
    return result


def _log_to_parent(parent: Any, study: Any, config: ExperimentConfig, result: SweepResult, elapsed: float) -> None:
    counts = result.counts()
    metrics = {f"trials_{state.lower()}": float(counts.get(state, 0))  # zeros too: a worker's RUNNING ends
               for state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")}
    metrics["sweep_time_s"] = elapsed
    if result.best:
        assert config.search is not None  # a sweep's config has a search: section
        for i, objective in enumerate(config.search.objectives):
            if len(result.best) == 1:
                metrics[f"best_{objective.metric}" if not objective.metric.startswith("best_") else
                        objective.metric] = result.best[0]["values"][i]
        parent.set_tags({"cnnkeras.best_trial": result.best[0]["number"],
                         "cnnkeras.best_run_id": result.best[0]["run_id"] or "",
                         **{f"best.{k}": v for k, v in result.best[0]["params"].items()}})
    for target, values in result.importances.items():
        for param, value in values.items():
            metrics[f"importance.{target}.{param}"] = value
        metrics[f"importance.{target}.trials"] = float(values.n_trials)
    parent.log_metrics(metrics)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "sweep.json").write_text(json.dumps({
            "study": result.study_name, "storage": result.storage, "counts": counts, "best": result.best,
            "importances": {target: {"importances": dict(r), "trials": r.n_trials, "reason": r.reason}
                            for target, r in result.importances.items()}, "trials": [{k: v for k, v in t.items() if k != "user_attrs"}
                                                          for t in result.trials]}, indent=1, default=str))
        _optuna_plots(study, config, folder / "plots")
        parent.log_artifacts(folder)


def _optuna_plots(study: Any, config: ExperimentConfig, folder: Path) -> None:
    """Optuna's history, parallel coordinate and contour plots, in one HTML page.

    One page with one copy of plotly.js (about 4 MB), not one file per plot. No importance
    plot: Optuna's would be a second ranking, computed its own way; the sweep's one ranking
    is logged as the parent run's ``importance.*`` metrics (and printed, and in the report).
    """
    assert config.search is not None  # a sweep's config has a search: section
    objectives = config.search.objectives
    target = (lambda t: t.values[0]) if len(objectives) > 1 else None
    name = objectives[0].metric
    plots = {
        "history": lambda: optuna.visualization.plot_optimization_history(study, target=target, target_name=name),
        "parallel_coordinate": lambda: optuna.visualization.plot_parallel_coordinate(study, target=target, target_name=name),
        "contour": lambda: optuna.visualization.plot_contour(study, target=target, target_name=name),
    }
    if len(objectives) > 1:
        plots["pareto_front"] = lambda: optuna.visualization.plot_pareto_front(study, target_names=[o.metric for o in objectives])
    parts: list[str] = []
    for plot_name, make in plots.items():
        try:
            fig = make()
        except (ValueError, RuntimeError, ZeroDivisionError, IndexError):
            continue  # too few complete trials for this plot
        fig.update_layout(title=f"{plot_name.replace('_', ' ')} ({study.study_name})")
        parts.append(f'<section id="{plot_name}">' + fig.to_html(full_html=False, include_plotlyjs=not parts)
                     + "</section>")
    if parts:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "optuna.html").write_text(
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>study {study.study_name}</title></head>"
            f"<body>{''.join(parts)}</body></html>", encoding="utf-8")
