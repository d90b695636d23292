"""Overfitting measures computed from per-epoch curves.

All functions take plain sequences (epoch 1 first) and return plain numbers, so
they are tested on hand-made curves with known answers:

- ``final gap``: train minus validation accuracy, validation minus train loss, at
  the last epoch (positive when the model does better on what it trained on);
- ``best epoch`` against the last epoch (how long training went on past the best);
- ``onset``: the first epoch after which validation loss rises for ``k`` epochs in a row;
- ``test minus validation``: how far the test result is from the validation one.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

__all__ = ["best_epoch", "final_gaps", "measures", "overfitting_onset"]

LOWER_IS_BETTER = ("loss", "val_loss", "mae", "val_mae", "data_loss", "val_data_loss")


def best_epoch(values: Sequence[float], *, lower_is_better: bool = True) -> int | None:
    """1-based epoch of the best finite value (first one on ties); None for no finite value."""
    finite = [(v, i) for i, v in enumerate(values, start=1) if v is not None and math.isfinite(v)]
    if not finite:
        return None
    return (min(finite, key=lambda p: (p[0], p[1])) if lower_is_better
            else min(finite, key=lambda p: (-p[0], p[1])))[1]


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
    """Gaps at the last epoch: accuracy (train - val) and loss (val - train)."""
    out: dict[str, float] = {}
    if history.get("accuracy") and history.get("val_accuracy"):
        out["final_gap_accuracy"] = history["accuracy"][-1] - history["val_accuracy"][-1]
    train_loss = history.get("data_loss") or history.get("loss")
    val_loss = history.get("val_data_loss") or history.get("val_loss")
    if train_loss and val_loss:
        out["final_gap_loss"] = val_loss[-1] - train_loss[-1]
    return out


def measures(history: Mapping[str, Sequence[float]], *, test: Mapping[str, float] | None = None,
             monitor: str = "val_loss", k: int = 3) -> dict[str, float | None]:
    """Every overfitting measure of one run, from its per-epoch history (and test metrics)."""
    values = list(history.get(monitor) or [])
    epochs = max((len(v) for v in history.values()), default=0)
    best = best_epoch(values, lower_is_better=monitor in LOWER_IS_BETTER) if values else None
    out: dict[str, float | None] = {"epochs": epochs, "best_epoch": best,
                                    "epochs_after_best": (epochs - best) if best else None}
    out.update(final_gaps(history))
    val_loss = list(history.get("val_loss") or [])
    out["onset_epoch"] = overfitting_onset(val_loss, k=k) if val_loss else None
    if best and history.get("val_accuracy") and len(history["val_accuracy"]) >= best:
        out["best_val_accuracy"] = history["val_accuracy"][best - 1]
        if test and "test_accuracy" in test:
            out["test_minus_val_accuracy"] = test["test_accuracy"] - history["val_accuracy"][best - 1]
    if best and val_loss and len(val_loss) >= best and test and "test_loss" in test:
        out["test_minus_val_loss"] = test["test_loss"] - val_loss[best - 1]
    return out
