"""The sweeps on the landing page of ``cnnkeras ui``: each study's state, and links straight into MLflow.

For every study of every storage the ui found, :func:`sweep_rows` reads the study (Optuna's
own API, read-only) and returns what the page shows, refreshed while sweeps run (the page
asks ``/api/sweeps`` every few seconds):

- its state: ``running`` (a trial is running), ``finished`` (its total reached), ``stopped``;
  the finished, pruned, failed and running trials; the best value of its objective and
  which trial reached it; when a trial last started or ended;
- links: its runs table in MLflow (the trials only, sorted by the objective, with the gap and
  the swept parameters as columns) and MLflow's comparison of its trials (parallel
  coordinates of the swept parameters against the objective and the gap), which the sweep
  stored on its experiment (:mod:`cnnkeras.tracking.views`); its optuna-dashboard; its
  report when one was written.

The MLflow links open the UI in its model-training mode (``workflowType=machine_learning``).
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Sequence
from typing import Any

import optuna

from cnnkeras.tracking import views

__all__ = ["sweep_rows"]

#: The user attribute where a sweep keeps its MLflow experiment's id (cnnkeras.studies.sweep).
EXPERIMENT_ATTR = "mlflow_experiment_id"
STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")


def _when(trial: Any) -> _dt.datetime | None:
    return trial.datetime_complete or trial.datetime_start


def _utc(moment: _dt.datetime) -> _dt.datetime:
    """Optuna 5 keeps naive timestamps in UTC."""
    return moment.replace(tzinfo=_dt.UTC) if moment.tzinfo is None else moment.astimezone(_dt.UTC)


def _objective(study: Any) -> tuple[str, bool, int | None]:
    """(metric, maximize, total) from the config the sweep saved on its study."""
    search = (study.user_attrs.get("config") or {}).get("search") or {}
    objectives = search.get("objectives") or [{}]
    metric = objectives[0].get("metric") or "value"
    maximize = (objectives[0].get("direction") or study.directions[0].name.lower()) in ("maximize", "MAXIMIZE")
    return metric, maximize, search.get("n_trials")


def study_row(study: Any, *, mlflow: str | None, dashboard: str | None, reports: Sequence[str] = ()) -> dict[str, Any]:
    """One study's line on the landing page (see the module docstring)."""
    trials = study.get_trials(deepcopy=False)
    counts = {state: 0 for state in STATES}
    for trial in trials:
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    metric, maximize, total = _objective(study)
    best = None
    complete = [t for t in trials if t.state.name == "COMPLETE" and t.values and math.isfinite(t.values[0])]
    if complete:
        chosen = (max if maximize else min)(complete, key=lambda t: t.values[0])
        best = {"value": float(chosen.values[0]), "trial": chosen.number}
    times = [moment for moment in (_when(t) for t in trials) if moment is not None]
    last = max(times) if times else None
    done = counts["COMPLETE"] + counts["PRUNED"] + counts["FAIL"]
    state = "running" if counts["RUNNING"] else ("finished" if total and done >= total else "stopped")
    experiment = study.user_attrs.get(EXPERIMENT_ATTR)
    links: dict[str, str] = {}
    if mlflow and experiment:
        key = views.sweep_view_key(study.study_name)
        links["runs"] = views.view_link(mlflow, experiment, key)
        links["compare"] = views.compare_link(mlflow, experiment, key)
    if dashboard:
        links["optuna"] = dashboard
    report = next((r for r in reports if r.rsplit("/", 1)[-1] == f"{study.study_name}.html"), None)
    if report:
        links["report"] = report
    return {"study": study.study_name, "state": state, "counts": counts, "total": total, "done": done,
            "objective": metric, "direction": "max" if maximize else "min", "best": best,
            "last_update": _utc(last).strftime("%Y-%m-%d %H:%M:%S UTC") if last else None,
            "links": links}


def sweep_rows(storages: Iterable[Any], *, mlflow: str | None, dashboard_url: Any,
               reports: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every readable study's line, running sweeps first, then the most recently updated.

    ``storages``: the ui's :class:`~cnnkeras.dashboards.server.StudyStorage` items;
    ``dashboard_url(item)``: where that storage's optuna-dashboard is.
    """
    rows = []
    for item in storages:
        if item.opened is None:
            continue
        try:  # read again each time: a sweep started after the ui is listed at the next refresh
            names = [summary.study_name for summary in optuna.get_all_study_summaries(item.opened)]
        except Exception:  # noqa: BLE001 - the storage is away for now: what was found at start
            names = list(item.studies)
        for name in names:
            try:
                study = optuna.load_study(study_name=name, storage=item.opened)
            except Exception:  # noqa: BLE001 - a study being created or deleted meanwhile: left out this time
                continue
            row = study_row(study, mlflow=mlflow, dashboard=dashboard_url(item), reports=reports)
            row["storage"] = item.shown
            rows.append(row)
    running = [r for r in rows if r["state"] == "running"]
    others = sorted((r for r in rows if r["state"] != "running"), key=lambda r: r["last_update"] or "", reverse=True)
    return running + others
