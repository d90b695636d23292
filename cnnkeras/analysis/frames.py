"""Runs as pandas DataFrames: one row per run, and per-epoch curves in long format.

:func:`runs_frame` reads an MLflow experiment (every run, sweep trials included)
into one row per run: identity (run id, name, status, parent, trial state), the
parameters (``param.<key>``), the final and best-epoch metrics, and the
overfitting measures of :mod:`cnnkeras.analysis.overfitting`. :func:`curves_frame`
gives the per-epoch metrics as ``run_id, epoch, metric, value`` rows. Both read
MLflow only through :mod:`cnnkeras.tracking`. :func:`export` writes CSV or Parquet.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from .overfitting import measures

__all__ = ["curves_frame", "export", "runs_frame"]

EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "gap_accuracy", "gap_loss", "data_loss",
                 "val_data_loss", "mae", "val_mae", "learning_rate")


def _runs(experiment: str, uri: str | None) -> list[dict[str, Any]]:
    from ..errors import TrackingError
    from ..tracking import iter_runs, read_run

    runs = list(iter_runs(experiment, uri=uri))
    if not runs:
        raise TrackingError(f"no runs in MLflow experiment {experiment!r}")
    return [read_run(run.info.run_id, uri=uri) for run in runs]


def runs_frame(experiment: str, *, uri: str | None = None, k: int = 3, include_parents: bool = False) -> pd.DataFrame:
    """One row per run of ``experiment`` with parameters, metrics and overfitting measures."""
    rows = []
    for run in _runs(experiment, uri):
        tags = run["tags"]
        if tags.get("cnnkeras.kind") == "sweep" and not include_parents:
            continue
        histories = {key: values for key, values in run["histories"].items() if key in EPOCH_METRICS}
        test = {key: value for key, value in run["metrics"].items() if key.startswith("test_")}
        row: dict[str, Any] = {
            "run_id": run["run_id"], "run_name": run["run_name"], "status": run["status"],
            "parent_run_id": tags.get("mlflow.parentRunId"), "trial_state": tags.get("cnnkeras.trial_state"),
            "arch": tags.get("cnnkeras.arch"),
        }
        row.update({f"param.{key}": _number(value) for key, value in run["params"].items()})
        row.update({f"final_{key}": values[-1] for key, values in histories.items() if values})
        row.update(test)
        row.update(measures(histories, test=test, k=k))
        rows.append(row)
    return pd.DataFrame(rows)


def curves_frame(experiment: str, *, uri: str | None = None) -> pd.DataFrame:
    """Per-epoch metrics as long-format rows: run_id, run_name, epoch, metric, value."""
    rows = [
        {"run_id": run["run_id"], "run_name": run["run_name"], "epoch": epoch, "metric": key, "value": value}
        for run in _runs(experiment, uri)
        for key, values in run["histories"].items() if key in EPOCH_METRICS
        for epoch, value in enumerate(values, start=1)
    ]
    return pd.DataFrame(rows, columns=["run_id", "run_name", "epoch", "metric", "value"])


def export(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``frame`` as CSV (``.csv``) or Parquet (``.parquet``)."""
    path = Path(path)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        raise ValueError(f"Export to .csv or .parquet. Received: path={path}")
    return path


def _number(text: str) -> Any:
    """MLflow keeps params as strings; give numbers back as numbers."""
    for cast in (int, float):
        try:
            return cast(text)
        except (TypeError, ValueError):
            continue
    return text
