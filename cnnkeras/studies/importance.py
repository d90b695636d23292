"""Parameter importances: one function, Optuna's fANOVA with a fixed seed, for the console and the report.

:func:`rank_parameters` ranks the swept parameters for one target over a list of
finished trials (their parameters and the target's values). ``cnnkeras sweep`` calls it
on the study's COMPLETE trials (:mod:`cnnkeras.studies.summary`), ``cnnkeras report`` on
the same trials read back from MLflow (:func:`frame_importances`): the same trials, the
same distributions (read off the values with :func:`~cnnkeras.config.checks.parameter_kind`'s
scales), the same forest seed, so the two print the same numbers. optuna-dashboard
computes its own importances (its own evaluator and settings) and can differ.

Below :func:`min_trials` finished trials there is no ranking: a :class:`Ranking` with
``reason`` "too few trials to rank parameters". The rule, ``max(8, 2 x parameters + 2)``,
comes from a simulation (``benchmarks/importance_min_trials.py``, docs/benchmarks.md): with
one parameter of p that matters (its effect's spread about the noise's), fANOVA puts it
first in 60-85% of repeats at the rule (chance: 1/p, 20-50%), and ever closer to chance
below it (p=4: 53% at 6 trials, 18% at 4). Even at the rule about one ranking in three
puts another parameter first: the trial count stands beside every ranking, and 3 trials
per parameter (78-95%) are better.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
import pandas as pd
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.importance import FanovaImportanceEvaluator, get_param_importances
from optuna.trial import create_trial

__all__ = ["Ranking", "TOO_FEW", "frame_importances", "importance_columns", "min_trials", "rank_parameters"]

TOO_FEW = "too few trials to rank parameters"


class Ranking(dict):
    """``{parameter: importance}`` (summing to 1), with the number of trials it rests on.

    Empty, with ``reason``, when there were too few trials (or fANOVA could not fit).
    """

    def __init__(self, importances: Mapping[str, float] | None = None, *, n_trials: int = 0,
                 reason: str | None = None):
        super().__init__(importances or {})
        self.n_trials = n_trials
        self.reason = reason

    def text(self, digits: int = 2) -> str:
        """``"lr 0.61, batch_size 0.27, l2 0.12 (fANOVA, 24 trials)"``, or the reason there is none."""
        if self.reason:
            return self.reason
        ranked = ", ".join(f"{k} {v:.{digits}f}" for k, v in sorted(self.items(), key=lambda kv: -kv[1]))
        return f"{ranked} (fANOVA, {self.n_trials} trials)"


def min_trials(n_parameters: int) -> int:
    """Finished trials needed before parameters are ranked: ``max(8, 2 x parameters + 2)``."""
    return max(8, 2 * n_parameters + 2)


def importance_columns(objectives: Sequence[str], *, segmentation: bool = False) -> list[str]:
    """The measures ranked, in order: each objective, then the gap (mean IoU's for segmentation).

    The console (``cnnkeras sweep``) and the report rank the same ones.
    """
    gap = "final_gap_mean_iou" if segmentation else "final_gap_accuracy"
    return list(dict.fromkeys([*objectives, gap]))


def _distribution(values: Sequence[Any], kind: str) -> Any:
    numeric = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce")
    if kind in ("log", "linear") and numeric.notna().all():
        low, high = float(numeric.min()), float(numeric.max())
        return FloatDistribution(low, high, log=kind == "log" and low > 0)
    return CategoricalDistribution(sorted({str(v) for v in values}))


def rank_parameters(trials: Sequence[Mapping[str, Any]], values: Sequence[float], kinds: Mapping[str, str], *,
                    seed: int = 0) -> Ranking:
    """fANOVA importances of the parameters in ``kinds`` for one target.

    Args:
        trials: each finished trial's parameters (key path -> value).
        values: the target's value for each trial; trials with a non-finite value are left out.
        kinds: key path -> "log", "linear" or "levels" (:func:`cnnkeras.config.checks.parameter_kind`;
            the repeats' key, ``report.replicate_key``, is "levels": seeds are categories, not a scale).
        seed: the forest's seed (the experiment's seed).

    Parameters that never vary are left out of the ranking.
    """
    kept = [(t, float(v)) for t, v in zip(trials, values)
            if v is not None and isinstance(v, (int, float)) and math.isfinite(v)]
    # One order whatever order the trials came in (Optuna's numbers, MLflow's search): the forest's
    # bootstrap follows the order, and the console and the report must get the same numbers.
    kept.sort(key=lambda tv: (tuple(repr(tv[0].get(p)) for p in sorted(kinds)), tv[1]))
    params = [p for p in kinds if len({str(t.get(p)) for t, _ in kept}) > 1 and all(p in t for t, _ in kept)]
    n = len(kept)
    if not params:
        return Ranking(n_trials=n, reason=f"no swept parameter varies across the {n} finished trials")
    needed = min_trials(len(params))
    if n < needed:
        return Ranking(n_trials=n, reason=f"{TOO_FEW} ({n} finished; at least {needed} for {len(params)} "
                                           f"parameter{'s' if len(params) > 1 else ''})")
    distributions = {p: _distribution([t[p] for t, _ in kept], kinds[p]) for p in params}
    made = [create_trial(params={p: (float(t[p]) if isinstance(distributions[p], FloatDistribution) else str(t[p]))
                                 for p in params}, distributions=distributions, value=value)
            for t, value in kept]
    study = optuna.create_study()
    study.add_trials(made)
    try:
        found = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=seed))
    except (RuntimeError, ValueError, ZeroDivisionError) as exc:
        return Ranking(n_trials=n, reason=f"fANOVA could not rank the parameters ({exc})")
    return Ranking({k: float(v) for k, v in found.items()}, n_trials=n)


def frame_importances(frame: pd.DataFrame, scales: Mapping[str, Any], targets: Mapping[str, str], *,
                      seed: int = 0) -> dict[str, Ranking]:
    """``{target label: Ranking}`` for each measure column in ``targets``, over the runs of ``frame``.

    Args:
        frame: finished runs (a runs frame), with ``param.<key>`` columns.
        scales: swept key path -> an object with a ``kind`` (:class:`~cnnkeras.analysis.claims.ParamScale`).
        targets: label -> measure column, e.g. ``{"best_val_accuracy": "best_val_accuracy"}``.
        seed: fANOVA's forest seed.
    """
    params = [p for p in scales if f"param.{p}" in frame]
    kinds = {p: scales[p].kind for p in params}
    trials = [{p: row[f"param.{p}"] for p in params if pd.notna(row[f"param.{p}"])} for _, row in frame.iterrows()]
    out: dict[str, Ranking] = {}
    for label, column in targets.items():
        if column not in frame:
            continue
        values = pd.to_numeric(frame[column], errors="coerce").tolist()
        out[label] = rank_parameters(trials, values, kinds, seed=seed)
    return out
