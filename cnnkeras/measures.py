"""Every overfitting measure, computed in one place from per-epoch curves.

Training (each epoch's gaps, the best epoch), tracking (the summary logged on a run),
a sweep's objective and pruning (the same summary, the same gaps) and the runs frame
behind reports (which reads those logged values back) all use these functions, so
they cannot disagree. All take plain sequences (epoch 1 first) and return plain
numbers, and are tested on hand-made curves with known answers:

- **gaps** (each epoch): ``gap_accuracy = accuracy - val_accuracy``, ``gap_loss =
  val_loss - loss`` (the penalty-free ``data_loss`` when L1/L2 is on), ``gap_mae``,
  and for segmentation ``gap_mean_iou = mean_iou - val_mean_iou`` (pixel accuracy is
  ``accuracy``); positive when the model does better on what it trained on;
- **best epoch**: where the run's monitor (``train.monitor``) was best, lowest for
  losses, highest otherwise; a ``val_`` monitor without validation data falls back to
  ``loss``;
- **summary**: ``best_<metric>`` (at the best epoch) and ``final_<metric>`` of every
  per-epoch metric, plus ``best_epoch``, ``epochs_run`` and the test metrics;
- **onset**: the first epoch after which validation loss rises ``k`` epochs in a row;
- **test minus validation** at the best epoch.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

__all__ = ["LOWER_IS_BETTER", "TIMING_KEYS", "best_epoch", "best_epoch_of", "final_gaps", "gap_metrics",
           "measures", "overfitting_onset", "summarize"]

#: Metrics where lower is better (losses and errors); every other metric is higher-is-better.
LOWER_IS_BETTER = ("loss", "val_loss", "mae", "val_mae", "data_loss", "val_data_loss", "gap_accuracy",
                   "gap_loss", "gap_mae", "gap_mean_iou")
#: Per-epoch keys that measure time, not learning: never summarized or compared.
TIMING_KEYS = ("epoch_time_s", "train_time_s")


def gap_metrics(logs: Mapping[str, float]) -> dict[str, float]:
    """Generalization gaps from one epoch's logs (see the module docstring)."""
    out: dict[str, float] = {}
    if "accuracy" in logs and "val_accuracy" in logs:
        out["gap_accuracy"] = logs["accuracy"] - logs["val_accuracy"]
    if "data_loss" in logs and "val_data_loss" in logs:
        out["gap_loss"] = logs["val_data_loss"] - logs["data_loss"]
    elif "loss" in logs and "val_loss" in logs:
        out["gap_loss"] = logs["val_loss"] - logs["loss"]
    if "mae" in logs and "val_mae" in logs:
        out["gap_mae"] = logs["val_mae"] - logs["mae"]
    if "mean_iou" in logs and "val_mean_iou" in logs:
        out["gap_mean_iou"] = logs["mean_iou"] - logs["val_mean_iou"]
    return out


def best_epoch(values: Sequence[float], *, lower_is_better: bool = True) -> int | None:
    """1-based epoch of the best finite value (first one on ties); None for no finite value."""
    finite = [(v, i) for i, v in enumerate(values, start=1) if v is not None and math.isfinite(v)]
    if not finite:
        return None
    return (min(finite, key=lambda p: (p[0], p[1])) if lower_is_better
            else min(finite, key=lambda p: (-p[0], p[1])))[1]


def best_epoch_of(history: Mapping[str, Sequence[float]], monitor: str) -> int:
    """The best epoch of a run by its monitor; 1 when nothing was finite.

    Without validation data (``validation_split: 0``) a ``val_`` monitor falls back to ``loss``.
    """
    if not history.get(monitor):
        monitor = "loss"
    found = best_epoch(history.get(monitor) or [], lower_is_better=monitor in LOWER_IS_BETTER)
    return found or 1


def overfitting_onset(val_loss: Sequence[float], *, k: int = 3) -> int | None:
    """First epoch e (1-based) with val_loss[e] < val_loss[e+1] < ... < val_loss[e+k]; None if never.

    The epoch after which validation loss keeps rising for ``k`` epochs: where
    memorizing the training set starts to cost on unseen data.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1. Received: k={k}")
    for start in range(len(val_loss) - k):
        window = val_loss[start : start + k + 1]
        if all(b > a for a, b in zip(window, window[1:])):
            return start + 1
    return None


def final_gaps(history: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Gaps at the last epoch: ``final_gap_accuracy``, ``final_gap_loss`` (and ``final_gap_mean_iou``)."""
    last = {key: values[-1] for key, values in history.items() if values}
    return {f"final_{key}": value for key, value in gap_metrics(last).items() if key != "gap_mae"}


def summarize(history: Mapping[str, Sequence[float]], best: int, test: Mapping[str, float]) -> dict[str, float]:
    """The summary logged on a run: best-epoch and final values of each per-epoch metric, and test."""
    out: dict[str, float] = {"best_epoch": float(best), "epochs_run": float(len(history.get("loss", [])))}
    for key, values in history.items():
        if not values or key in TIMING_KEYS:
            continue
        out[f"final_{key}"] = values[-1]
        if best <= len(values):
            out[f"best_{key}"] = values[best - 1]
    out.update(test)
    return out


def measures(history: Mapping[str, Sequence[float]], *, test: Mapping[str, float] | None = None,
             monitor: str = "val_loss", k: int = 3, best: int | None = None) -> dict[str, float | None]:
    """Every overfitting measure of one run.

    ``best`` is the run's logged best epoch when there is one (so a report shows what the
    run and its sweep used); otherwise it is found here with the run's ``monitor``, by
    the same rule as in training.
    """
    epochs = max((len(v) for v in history.values()), default=0)
    if best is None and epochs:
        best = best_epoch_of(history, monitor)
    out: dict[str, float | None] = {"epochs": epochs, "best_epoch": best,
                                    "epochs_after_best": (epochs - best) if best else None}
    out.update(final_gaps(history))
    val_loss = list(history.get("val_loss") or [])
    out["onset_epoch"] = overfitting_onset(val_loss, k=k) if val_loss else None
    if best and history.get("val_accuracy") and len(history["val_accuracy"]) >= best:
        out["best_val_accuracy"] = history["val_accuracy"][best - 1]
        if test and "test_accuracy" in test:
            out["test_minus_val_accuracy"] = test["test_accuracy"] - history["val_accuracy"][best - 1]
    if best and history.get("val_mean_iou") and len(history["val_mean_iou"]) >= best:
        out["best_val_mean_iou"] = history["val_mean_iou"][best - 1]
    if best and val_loss and len(val_loss) >= best and test and "test_loss" in test:
        out["test_minus_val_loss"] = test["test_loss"] - val_loss[best - 1]
    return out
