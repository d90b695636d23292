"""Runs as pandas DataFrames: one row per run, and per-epoch curves in long format.

:func:`runs_frame` reads an MLflow experiment, an Optuna study (its trials'
runs only) or an experiment file (see :mod:`cnnkeras.analysis.source`) into one
row per run: identity (run id, name, status, parent, trial state), the
parameters (``param.<key>``), the final and best-epoch metrics, and the
overfitting measures of :mod:`cnnkeras.measures`, at the run's own logged
``best_epoch`` (found with its ``train.monitor`` during training), never a
recomputation with another monitor. Parameter values are canonical
(:mod:`cnnkeras.analysis.values`: ``0`` and ``0.0`` are one value), and a run logged
before the clean gap (no ``train_*`` metrics) has its gaps left out (``clean_gap`` is
False; see :func:`clean_histories`). :func:`curves_frame` gives the per-epoch
metrics as ``run_id, epoch, metric, value`` rows. Both read
MLflow only through :mod:`cnnkeras.tracking`. :func:`export` writes CSV or Parquet.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import pandas as pd

from ..errors import CnnkerasError, TrackingError
from ..measures import has_clean_gap, measures
from ..outputs import output_path
from ..tracking import iter_runs, read_run
from .source import RunSource, resolve
from .values import canonical_column

__all__ = ["clean_histories", "curves_frame", "export", "runs_frame"]

EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "gap_accuracy", "gap_loss", "data_loss",
                 "val_data_loss", "mae", "val_mae", "learning_rate", "mean_iou", "val_mean_iou", "gap_mean_iou",
                 "train_loss", "train_accuracy", "train_data_loss", "train_mae", "train_mean_iou", "gap_mae")


def _runs(source: RunSource) -> list[dict[str, Any]]:
    where = f"tags.mlflow.parentRunId = '{source.parent_run_id}'" if source.parent_run_id else ""
    runs = list(iter_runs(source.experiment, uri=source.uri, filter_string=where))
    if not runs:
        what = f"study {source.label!r}" if source.parent_run_id else f"MLflow experiment {source.experiment!r}"
        raise TrackingError(f"no runs for {what}")
    return [read_run(run.info.run_id, uri=source.uri) for run in runs]


Target = Union[str, "os.PathLike[str]", RunSource]


def runs_frame(target: Target, *, uri: str | None = None, storage: str | None = None, k: int = 3,
               include_parents: bool = False) -> pd.DataFrame:
    """One row per run of ``target`` (experiment file, study or MLflow experiment) with
    parameters, final metrics and overfitting measures; sweep parents are left out."""
    rows = []
    for run in _runs(resolve(target, uri=uri, storage=storage)):
        tags = run["tags"]
        if tags.get("cnnkeras.kind") == "sweep" and not include_parents:
            continue
        histories = clean_histories(run["histories"])
        test = {key: value for key, value in run["metrics"].items() if key.startswith("test_")}
        row: dict[str, Any] = {
            "run_id": run["run_id"], "run_name": run["run_name"], "status": run["status"],
            "parent_run_id": tags.get("mlflow.parentRunId"), "trial_state": tags.get("cnnkeras.trial_state"),
            "arch": tags.get("cnnkeras.arch"), "experiment_id": run["experiment_id"],
            "clean_gap": has_clean_gap(run["histories"]),
        }
        row.update({f"param.{key}": _number(value) for key, value in run["params"].items()})
        row.update({f"final_{key}": values[-1] for key, values in histories.items() if values})
        row.update(test)
        logged_best = run["metrics"].get("best_epoch")
        row.update(measures(histories, test=test, k=k, monitor=run["params"].get("train.monitor", "val_loss"),
                            best=int(logged_best) if logged_best is not None else None))
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in [c for c in frame.columns if c.startswith("param.")]:
        frame[column] = canonical_column(frame[column])  # "0" and "0.0" from MLflow: one value
    return frame


def clean_histories(histories: Mapping[str, list[float]]) -> dict[str, list[float]]:
    """A run's per-epoch metrics that the frames read, gaps only when they are clean.

    A run logged before the training sample existed (no ``train_*`` metrics) logged a
    ``gap_accuracy`` from Keras' training-mode running accuracy: a different quantity under
    the same name. Its gaps are left out (NaN in the frames), never mixed with clean ones;
    its running metrics (``loss``, ``accuracy``) stay, for what they are.
    """
    clean = has_clean_gap(histories)
    return {key: values for key, values in histories.items()
            if key in EPOCH_METRICS and (clean or not key.startswith("gap_"))}


def curves_frame(target: Target, *, uri: str | None = None, storage: str | None = None) -> pd.DataFrame:
    """Per-epoch metrics as long-format rows: run_id, run_name, epoch, metric, value."""
    rows = [
        {"run_id": run["run_id"], "run_name": run["run_name"], "epoch": epoch, "metric": key, "value": value}
        for run in _runs(resolve(target, uri=uri, storage=storage))
        for key, values in clean_histories(run["histories"]).items()
        for epoch, value in enumerate(values, start=1)
    ]
    return pd.DataFrame(rows, columns=["run_id", "run_name", "epoch", "metric", "value"])


def export(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``frame`` as CSV (``.csv``) or Parquet (``.parquet``)."""
    path = Path(path)
    if path.suffix not in (".csv", ".parquet"):
        raise CnnkerasError(f"--out takes a .csv or .parquet file. Received: path={path}")
    path = output_path(path, what="the table")
    try:
        if path.suffix == ".parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
    except OSError as exc:
        raise CnnkerasError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def _number(text: str) -> Any:
    """MLflow keeps params as strings; give numbers back as numbers."""
    for cast in (int, float):
        try:
            return cast(text)
        except (TypeError, ValueError):
            continue
    return text
