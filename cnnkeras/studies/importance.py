"""Parameter importances (Optuna's fANOVA) for any measure of a runs frame.

A sweep's own importances only cover its objective. A report wants them for
validation accuracy and for the generalization gap side by side, and for plain
MLflow experiments too (runs that never were an Optuna study). So the finished
runs are copied into an in-memory study, one trial per run, with distributions
read off the values, and Optuna's evaluator runs on that: no hand-written fANOVA.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import optuna
import pandas as pd
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.importance import FanovaImportanceEvaluator, get_param_importances
from optuna.trial import create_trial

__all__ = ["frame_importances"]


def _distribution(values: pd.Series, kind: str) -> Any:
    numeric = pd.to_numeric(values, errors="coerce")
    if kind in ("log", "linear") and numeric.notna().all():
        low, high = float(numeric.min()), float(numeric.max())
        return FloatDistribution(low, high, log=kind == "log" and low > 0)
    return CategoricalDistribution(sorted({str(v) for v in values}))


def frame_importances(frame: pd.DataFrame, scales: Mapping[str, Any], targets: Mapping[str, str], *,
                      seed: int = 0) -> dict[str, dict[str, float]]:
    """``{target label: {parameter: importance}}`` for each measure column in ``targets``.

    Args:
        frame: finished runs (a runs frame), with ``param.<key>`` columns.
        scales: swept key path -> :class:`~cnnkeras.analysis.claims.ParamScale` (its ``kind``).
        targets: label -> measure column, e.g. ``{"validation accuracy": "best_val_accuracy"}``.
        seed: fANOVA's forest seed.

    Parameters that never vary are left out; a target with fewer than 3 finite
    runs gets no importances.
    """
    params = [p for p in scales if f"param.{p}" in frame and frame[f"param.{p}"].nunique() > 1]
    out: dict[str, dict[str, float]] = {}
    if not params:
        return out
    distributions = {p: _distribution(frame[f"param.{p}"], scales[p].kind) for p in params}
    for label, column in targets.items():
        if column not in frame:
            continue
        trials = []
        for _, row in frame.iterrows():
            value = pd.to_numeric(row[column], errors="coerce")
            if value is None or not math.isfinite(value):
                continue
            values = {p: (float(row[f"param.{p}"]) if not hasattr(distributions[p], "choices")
                          else str(row[f"param.{p}"])) for p in params}
            trials.append(create_trial(params=values, distributions=distributions, value=float(value)))
        if len(trials) < 3:
            continue
        study = optuna.create_study()
        study.add_trials(trials)
        try:
            found = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=seed))
        except (RuntimeError, ValueError, ZeroDivisionError):
            continue
        out[label] = {k: float(v) for k, v in found.items()}
    return out
