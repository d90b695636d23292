"""Links into MLflow's UI that open where a sweep's user wants to look.

MLflow 3.17's UI opens an experiment in its GenAI mode (traces, an assistant) unless the
address carries ``workflowType=machine_learning`` (its sidebar switch, kept in the browser
afterwards); the experiment tag ``mlflow.experimentKind`` alone is not read for that (checked
in Chromium). Every link cnnkeras makes carries it.

A sweep's runs table is a *shared view*, MLflow's own mechanism for a saved table: an
experiment tag ``mlflow.sharedViewState.<key>`` holds the table's state as JSON (filter, sort,
columns), and ``viewStateShareKey=<key>`` in the address applies it. :func:`share_sweep_view`
writes two per study: its runs table (its trials only, sorted by the objective, best first,
with the gap, the swept parameters and the trial's state as columns) and its chart view
(MLflow's comparison of the trials: a parallel-coordinates chart of the swept parameters
against the objective and the gap, and the trials' validation curves), which
:func:`view_link` and :func:`compare_link` open.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from .mlflow_tracker import get_client
from .names import to_mlflow

__all__ = ["ML_WORKFLOW", "compare_key", "compare_link", "compare_runs_link", "experiment_link", "run_link",
           "share_sweep_view", "sweep_view", "sweep_view_key", "view_link"]

ML_WORKFLOW = "workflowType=machine_learning"
SHARED_VIEW_TAG = "mlflow.sharedViewState."


def sweep_view_key(study: str) -> str:
    """The shared view's key of a study (letters, digits, dashes: safe in an address)."""
    return "cnnkeras-" + "".join(c if c.isalnum() else "-" for c in study)


def _quoted(kind: str, key: str) -> str:
    return f"{kind}.`{key}`"


def sweep_view(study: str, *, objective: str, maximize: bool, gap: str | None, swept: Sequence[str],
               compare: bool = False) -> dict[str, Any]:
    """The runs table's state for one study (MLflow's shared-view JSON); with ``compare``, its chart
    view instead: a parallel-coordinates chart of the swept parameters against the objective and the
    gap, and the per-epoch validation measure and gap of every trial, the run list folded away."""
    metrics = [to_mlflow(objective)] + ([to_mlflow(gap)] if gap and gap != objective else [])
    columns = ([_quoted("metrics", m) for m in metrics] + [_quoted("params", p) for p in swept]
               + [_quoted("tags", "cnnkeras.trial_state")])
    state: dict[str, Any] = {
        "searchFilter": f"tags.`cnnkeras.study` = '{study.replace(chr(39), '')}' AND tags.`cnnkeras.kind` = 'trial'",
        "orderByKey": _quoted("metrics", metrics[0]), "orderByAsc": not maximize,
        "startTime": "ALL", "lifecycleFilter": "Active", "datasetsFilter": [], "modelVersionFilter": "All Runs",
        "selectedColumns": columns, "columnOrder": [], "columnWidths": {}, "viewMaximized": False,
        "runListHidden": False, "isAccordionReordered": False, "useGroupedValuesInCharts": True,
        "hideEmptyCharts": True, "groupBy": None, "groupsExpanded": {}, "runsHiddenMode": "SHOW_ALL",
        "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0, "selectedXAxisMetricKey": ""},
    }
    if compare:
        section = "cnnkeras-sweep"
        charts: list[dict[str, Any]] = [{
            "uuid": "cnnkeras-parallel", "type": "PARALLEL", "runsCountToCompare": 100, "metricSectionId": section,
            "deleted": False, "isGenerated": False, "selectedParams": list(swept), "selectedMetrics": metrics,
            "showAllRuns": True}]
        per_epoch = _per_epoch_of(objective)
        for n, metric in enumerate([per_epoch, to_mlflow(f"gap_{from_val(per_epoch)}")] if per_epoch else []):
            charts.append({
                "uuid": f"cnnkeras-line-{n}", "type": "LINE", "runsCountToCompare": 100, "metricSectionId": section,
                "deleted": False, "isGenerated": False, "metricKey": metric, "selectedMetricKeys": [metric],
                "lineSmoothness": 0, "xAxisKey": "step", "xAxisScaleType": "linear", "scaleType": "linear",
                "selectedXAxisMetricKey": "", "range": {}, "yAxisKey": "metric", "yAxisExpressions": [],
                "ignoreOutliers": False, "useGlobalXaxisKey": True, "useGlobalLineSmoothing": True})
        state.update(runListHidden=True, isAccordionReordered=True, compareRunCharts=charts,
                     compareRunSections=[{"display": True, "name": f"Sweep {study}", "uuid": section,
                                          "isReordered": False}])
    return state


def _per_epoch_of(objective: str) -> str | None:
    """The per-epoch validation measure behind a summary objective, by its MLflow name
    (``best_val_accuracy`` -> ``accuracy/val``); None for a test score or a gap."""
    base = objective.removeprefix("best_").removeprefix("final_")
    return to_mlflow(base) if base.startswith("val_") else None


def from_val(mlflow_name: str) -> str:
    """``accuracy/val`` -> ``accuracy``."""
    return mlflow_name.split("/")[0]


def share_sweep_view(experiment_id: str, study: str, *, objective: str, maximize: bool, gap: str | None,
                     swept: Sequence[str], uri: str | None = None) -> str:
    """Store the study's runs table and its chart view on its experiment; return the table's key (the
    chart view's is :func:`compare_key` of it). See the module docstring."""
    key = sweep_view_key(study)
    client = get_client(uri)
    for name, compare in ((key, False), (compare_key(key), True)):
        state = sweep_view(study, objective=objective, maximize=maximize, gap=gap, swept=swept, compare=compare)
        client.set_experiment_tag(experiment_id, SHARED_VIEW_TAG + name, json.dumps(state))
    return key


def compare_key(key: str) -> str:
    """The key of a study's chart view, from its table's."""
    return f"{key}-compare"


def experiment_link(base: str, experiment_id: str) -> str:
    """The experiment's runs table (``base``: the UI's address, ``/mlflow/`` behind ``cnnkeras ui``)."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{ML_WORKFLOW}"


def view_link(base: str, experiment_id: str, key: str) -> str:
    """The experiment's runs table in the shared view ``key``."""
    return f"{experiment_link(base, experiment_id)}&viewStateShareKey={quote(key)}"


def run_link(base: str, experiment_id: str, run_id: str, tab: str = "model-metrics") -> str:
    """One run's page (its charts by default)."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}/{tab}?{ML_WORKFLOW}"


def compare_link(base: str, experiment_id: str, key: str) -> str:
    """MLflow's comparison of a study's trials (its chart view: parallel coordinates of the swept
    parameters against the objective and the gap, the validation curves)."""
    return f"{experiment_link(base, experiment_id)}&compareRunsMode=CHART&viewStateShareKey={quote(compare_key(key))}"


def compare_runs_link(base: str, experiment_id: str, run_ids: Sequence[str]) -> str:
    """MLflow's compare-runs page for chosen runs (parallel coordinates, scatter, box and contour plots)."""
    runs = quote(json.dumps(list(run_ids), separators=(",", ":")))
    experiments = quote(json.dumps([str(experiment_id)], separators=(",", ":")))
    return f"{base.rstrip('/')}/#/compare-runs?runs={runs}&experiments={experiments}&{ML_WORKFLOW}"
