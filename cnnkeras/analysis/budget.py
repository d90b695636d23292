"""Comparisons at an equal budget: every run's measures at one epoch (or number of examples seen).

A run's ``final_*`` values are taken at its own last epoch. Runs that stopped at
different epochs (pruned, early-stopped) are then compared after different amounts of
training, and a pruned trial has no final value worth comparing. A **budget** fixes
the point of comparison (``report.budget``):

- ``final``: each run's last epoch; pruned runs are left out (the old rule);
- ``{epoch: N}``: every run that reached epoch N, pruned and early-stopped ones
  included: a pruned trial counts up to where it stopped;
- ``{examples: N}``: each run at the first epoch with ``epoch x n_train >= N`` training
  examples seen (runs with different training-set sizes);
- ``auto`` (the default): the last epoch when every finished run trained the same number
  of epochs (and none was pruned), else the last epoch of the shortest finished run.

:func:`frame_at_budget` recomputes each run's measures from its logged per-epoch
curves truncated at the budget, with the one definition of each measure
(:func:`cnnkeras.measures.measures`); a measure named ``final_X`` then means "X at the
budget's epoch". Test measures are of a run's final model: they are kept only for runs
whose last epoch is the budget's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..measures import TIMING_KEYS, measures

__all__ = ["Budget", "comparable", "frame_at_budget", "resolve_budget"]

#: Trial states whose runs can be compared at a budget they reached (a FAILED run's values are not a result).
COUNTED_STATES = ("COMPLETE", "PRUNED")


@dataclass(frozen=True)
class Budget:
    """Where runs are compared: ``kind`` is "final", "epoch" or "examples"; ``value`` its number."""

    kind: str
    value: int | None = None
    reason: str = ""

    @property
    def label(self) -> str:
        """Short: "epoch 15", "60,000 examples", "each run's last epoch"."""
        if self.kind == "epoch":
            return f"epoch {self.value}"
        if self.kind == "examples":
            return f"{self.value:,} training examples seen"
        return "each run's last epoch"

    def epoch_of(self, run: pd.Series) -> int | None:
        """The epoch at which ``run`` is compared; None when it never got there."""
        epochs = _int(run.get("epochs"))
        if epochs is None:
            return None
        if self.kind == "final":
            return epochs
        assert self.value is not None  # "epoch" and "examples" budgets always carry their number
        if self.kind == "epoch":
            return self.value if self.value <= epochs else None
        n_train = _int(run.get("param.data.n_train"))
        if not n_train:
            return None
        needed = math.ceil(self.value / n_train)
        return needed if needed <= epochs else None


def _int(value: Any) -> int | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if math.isfinite(number) else None


def _state(frame: pd.DataFrame) -> pd.Series:
    state = frame["trial_state"] if "trial_state" in frame else pd.Series(None, index=frame.index, dtype=object)
    return state.fillna(frame["status"].map({"FINISHED": "COMPLETE"}))


def resolve_budget(setting: Any, runs: pd.DataFrame) -> Budget:
    """The budget ``report.budget`` asks for (``"auto"`` resolved against ``runs``, a runs frame)."""
    if setting is None or setting == "auto":
        if runs.empty:
            return Budget("final", reason="no runs")
        state = _state(runs)
        done = runs[(runs["status"] == "FINISHED") & (state == "COMPLETE")]
        epochs = pd.to_numeric(done.get("epochs"), errors="coerce").dropna()
        if epochs.empty:
            return Budget("final", reason="no finished run")
        pruned = int(((runs["status"] == "FINISHED") & (state == "PRUNED")).sum())
        shortest = int(epochs.min())
        if epochs.nunique() == 1 and not pruned:
            return Budget("epoch", shortest, f"every run trained {shortest} epochs")
        return Budget("epoch", shortest, f"finished runs trained {shortest} to {int(epochs.max())} epochs"
                      + (f" and {pruned} were pruned" if pruned else "") + f": compared at the shortest, {shortest}")
    if setting == "final":
        return Budget("final", reason="report.budget: final")
    if hasattr(setting, "epoch"):
        return Budget("epoch", int(setting.epoch), "report.budget")
    return Budget("examples", int(setting.examples), "report.budget")


def frame_at_budget(runs: pd.DataFrame, curves: pd.DataFrame, budget: Budget) -> pd.DataFrame:
    """``runs`` with every measure taken at ``budget`` (see the module docstring).

    Adds ``budget_epoch`` (the epoch each run is compared at; NaN when it never got there).
    With the ``final`` budget the frame is returned as it is (plus ``budget_epoch``).
    """
    out = runs.copy()
    if out.empty:
        out["budget_epoch"] = pd.Series(dtype=float)
        return out
    out["budget_epoch"] = [budget.epoch_of(row) for _, row in out.iterrows()]
    out["budget_epoch"] = pd.to_numeric(out["budget_epoch"], errors="coerce")
    if budget.kind == "final" or curves.empty:
        return out
    by_run = {run_id: group for run_id, group in curves.groupby("run_id")}
    for index, row in out.iterrows():
        epoch = row["budget_epoch"]
        group = by_run.get(row["run_id"])
        final_cols = [c for c in out.columns if c.startswith(("final_", "best_")) or c in _RUN_MEASURES]
        if group is None or not math.isfinite(epoch):
            out.loc[index, final_cols] = math.nan
            continue
        epoch = int(epoch)
        history = {metric: series.sort_values("epoch")["value"].tolist()[:epoch]
                   for metric, series in group.groupby("metric") if metric not in TIMING_KEYS}
        at_end = _int(row.get("epochs")) == epoch
        test = {k: row[k] for k in out.columns if k.startswith("test_") and pd.notna(row.get(k))} if at_end else {}
        values: dict[str, Any] = {col: math.nan for col in final_cols}
        values.update({f"final_{key}": series[-1] for key, series in history.items() if series})
        monitor = row.get("param.train.monitor") if isinstance(row.get("param.train.monitor"), str) else "val_loss"
        values.update(measures(history, test=test or None, monitor=monitor))
        for key, value in values.items():
            if key in out.columns or key.startswith("final_"):
                out.loc[index, key] = math.nan if value is None else value
        if not at_end:
            out.loc[index, [c for c in out.columns if c.startswith("test_")]] = math.nan
    return out


#: Run-level measures (besides final_* and best_*) that depend on where the run is cut.
_RUN_MEASURES = ("epochs", "best_epoch", "epochs_after_best", "onset_epoch", "epochs_to_fit",
                 "test_minus_val_accuracy", "test_minus_val_loss")


def comparable(frame: pd.DataFrame, budget: Budget) -> pd.DataFrame:
    """The runs a comparison at ``budget`` counts: finished ones, and pruned ones that reached it.

    With the ``final`` budget: finished runs only (a pruned run's last values are not comparable).
    Failed runs never count.
    """
    if frame.empty:
        return frame
    state = _state(frame)
    keep = frame["status"].eq("FINISHED")
    if budget.kind == "final":
        keep &= state.eq("COMPLETE")
    else:
        keep &= state.isin(COUNTED_STATES) & frame["budget_epoch"].notna()
    return frame[keep]
