"""Every overfitting measure, computed in one place from per-epoch curves.

Training (each epoch's gaps, the best epoch), tracking (the summary logged on a run),
a sweep's objective and pruning (the same summary, the same gaps) and the runs frame
behind reports (which reads those logged values back) all use these functions, so
they cannot disagree. All take plain sequences (epoch 1 first) and return plain
numbers, and are tested on hand-made curves with known answers:

- **the training sample** (:func:`gap_sample_size`, :func:`gap_sample_indices`): a fixed,
  seeded sample of the training split, evaluated in inference mode at every epoch end
  (``train_loss``, ``train_accuracy``, ``train_data_loss``, ``train_mae``,
  ``train_mean_iou``): the same model, the same mode and the same moment as the
  validation metrics. Keras' ``loss``, ``accuracy``... are running averages over the
  epoch's batches in training mode (dropout on, augmentation on, batch statistics,
  weights still moving): logged for what they are, never used in a gap;
- **gaps** (each epoch), from the training sample against validation only:
  ``gap_accuracy = train_accuracy - val_accuracy``, ``gap_loss = val_data_loss -
  train_data_loss`` (the penalty-free loss; ``val_loss - train_loss`` without L1/L2),
  ``gap_mae = val_mae - train_mae`` and for segmentation ``gap_mean_iou =
  train_mean_iou - val_mean_iou`` (pixel accuracy is ``accuracy``); positive when the
  model does better on what it trained on;
- **batch-norm lag** (:func:`batch_norm_lag`): validation and the inference-mode training
  accuracy near chance while the training-mode accuracy is high: the moving statistics
  of batch normalization, not overfitting;
- **epochs to fit** (:func:`epochs_to_fit`): the first epoch whose inference-mode
  training accuracy reaches a threshold (Zhang et al. 2017's time to fit);
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
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

__all__ = ["FIT_THRESHOLD", "GAP_SAMPLE_BYTES", "GAP_SAMPLE_CAP", "LOWER_IS_BETTER", "TIMING_KEYS", "TRAIN_PREFIX", "batch_norm_lag",
           "best_epoch", "best_epoch_of", "epochs_to_fit", "final_gaps", "gap_metrics", "gap_sample_indices",
           "gap_sample_size", "has_clean_gap", "measures", "overfitting_onset", "summarize"]

#: Metrics where lower is better (losses and errors); every other metric is higher-is-better.
LOWER_IS_BETTER = ("loss", "val_loss", "mae", "val_mae", "data_loss", "val_data_loss", "train_loss", "train_mae",
                   "train_data_loss", "gap_accuracy", "gap_loss", "gap_mae", "gap_mean_iou", "epochs_to_fit")
#: Prefix of the inference-mode metrics on the fixed training sample (parallel to Keras' ``val_``).
TRAIN_PREFIX = "train_"
#: Most training images the default sample takes (the validation split's size, up to this).
GAP_SAMPLE_CAP = 10_000
#: Most bytes of pixels the default sample takes (1,000 images of 224x224x3 float32 is 0.6 GB).
GAP_SAMPLE_BYTES = 512 * 2**20
#: Inference-mode training accuracy at which a run counts as having fit its training set.
FIT_THRESHOLD = 0.95
#: Batch-norm lag: "near chance" and "high", as fractions of the way from chance to perfect accuracy.
NEAR_CHANCE, HIGH = 0.3, 0.6
#: Per-epoch keys that measure time, not learning: never summarized or compared.
TIMING_KEYS = ("epoch_time_s", "train_time_s")


def gap_sample_size(setting: int | None, n_train: int, n_val: int, image_bytes: int = 0) -> int:
    """How many training images the clean gap evaluates each epoch.

    ``setting`` is ``train.gap_sample``: None (the default) takes as many as the validation
    split holds, at most :data:`GAP_SAMPLE_CAP` images and :data:`GAP_SAMPLE_BYTES` of
    pixels (``image_bytes`` each, as the model sees them), so both sides of a gap have the
    same precision and large images do not fill the memory; 0 switches the sample off (no
    ``train_*`` metrics, no gaps); a number takes that many. Never more than the training
    split.
    """
    if setting is None:
        setting = min(n_val, GAP_SAMPLE_CAP, GAP_SAMPLE_BYTES // image_bytes if image_bytes > 0 else n_val)
    return max(0, min(int(setting), n_train))


def gap_sample_indices(n_train: int, size: int, seed: int) -> np.ndarray:
    """The training sample: ``size`` distinct indices into the training split, sorted, seeded.

    Drawn once per run from ``seed`` (the experiment seed), so every epoch, every member
    of a cohort and every rerun measures the same images. The whole split when ``size``
    reaches it.
    """
    if size >= n_train:
        return np.arange(n_train)
    rng = np.random.default_rng([seed, 0x6A9])  # its own stream: independent of the splits' draws
    return np.sort(rng.choice(n_train, size=size, replace=False))


def gap_metrics(logs: Mapping[str, float]) -> dict[str, float]:
    """Generalization gaps from one epoch's logs: ``train_*`` against ``val_*`` (see the module docstring).

    Keras' training-mode running metrics (``accuracy``, ``loss``...) are never used: a
    run without the training sample (``train.gap_sample: 0``, or logged before it existed)
    has no gaps.
    """
    out: dict[str, float] = {}
    if "train_accuracy" in logs and "val_accuracy" in logs:
        out["gap_accuracy"] = logs["train_accuracy"] - logs["val_accuracy"]
    if "train_data_loss" in logs and "val_data_loss" in logs:
        out["gap_loss"] = logs["val_data_loss"] - logs["train_data_loss"]
    elif "train_loss" in logs and "val_loss" in logs:
        out["gap_loss"] = logs["val_loss"] - logs["train_loss"]
    if "train_mae" in logs and "val_mae" in logs:
        out["gap_mae"] = logs["val_mae"] - logs["train_mae"]
    if "train_mean_iou" in logs and "val_mean_iou" in logs:
        out["gap_mean_iou"] = logs["train_mean_iou"] - logs["val_mean_iou"]
    return out


def has_clean_gap(keys: Iterable[str]) -> bool:
    """Whether a run's logged metrics include the training sample's (runs logged before it have none)."""
    return any(key.startswith(TRAIN_PREFIX) and key != "train_time_s" for key in keys)


def _skill(accuracy: float, chance: float) -> float:
    """Where ``accuracy`` lies between chance (0) and perfect (1)."""
    return (accuracy - chance) / (1.0 - chance)


def batch_norm_lag(record: Mapping[str, float], num_classes: int) -> bool:
    """Whether an epoch looks like batch-norm statistics lagging behind the weights, not overfitting.

    True when validation accuracy and the inference-mode training accuracy are both near
    chance (less than 30% of the way from chance to perfect: below 0.37 with 10 classes)
    while Keras' training-mode accuracy is high (more than 60% of the way: above 0.64):
    the same weights score well with batch statistics and near chance with the moving
    ones. Overfitting would score well on the training sample in inference mode too.
    """
    keys = ("accuracy", "train_accuracy", "val_accuracy")
    if num_classes < 2 or any(key not in record or not math.isfinite(record[key]) for key in keys):
        return False
    chance = 1.0 / num_classes
    return (_skill(record["val_accuracy"], chance) < NEAR_CHANCE and _skill(record["train_accuracy"], chance) < NEAR_CHANCE
            and _skill(record["accuracy"], chance) > HIGH)


def epochs_to_fit(train_accuracy: Sequence[float], threshold: float = FIT_THRESHOLD) -> int | None:
    """First epoch (1-based) whose inference-mode training accuracy reaches ``threshold``; None if never."""
    for epoch, value in enumerate(train_accuracy, start=1):
        if value is not None and math.isfinite(value) and value >= threshold:
            return epoch
    return None


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
    if history.get("train_accuracy"):
        out["epochs_to_fit"] = epochs_to_fit(history["train_accuracy"])
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
