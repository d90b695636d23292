"""Metric names at the MLflow boundary: Keras-style inside cnnkeras, grouped by section in MLflow.

Inside cnnkeras every metric keeps its Keras-style name (``val_accuracy``, ``gap_loss``,
``best_val_accuracy``, ``test_accuracy``): configs name objectives and monitors that way,
and histories, summaries and frames use them. MLflow 3's run page groups metric charts
into sections by the part of the name before the first ``/`` (checked in Chromium on
3.17: ``accuracy/val`` is the chart "val" in the section "accuracy"; sections and charts
are sorted by name), so :func:`to_mlflow` names each metric by what it measures, then
which split::

    accuracy            -> accuracy/train_running   (Keras' running mean over the epoch's batches)
    train_accuracy      -> accuracy/train           (the training sample evaluated after the epoch)
    val_accuracy        -> accuracy/val
    gap_accuracy        -> accuracy/gap
    iou_3, val_iou_3    -> iou/class_3_train_running, iou/class_3_val   (per-class IoU: one section)
    learning_rate       -> optimizer/learning_rate
    epoch_time_s        -> time/epoch_time_s
    best_val_accuracy   -> summary/best_val_accuracy   (best_*, final_*, epochs_run, train_time_s)
    test_accuracy       -> test/accuracy
    trials_complete     -> sweep/trials_complete    (a sweep's parent run; also sweep_time_s)
    importance.T.P      -> importance/T.P

so a run's page shows one section per measure with training, validation and gap side by
side, and the single values of the summary, the test split and the sweep apart.
:func:`from_mlflow` is its inverse, used by every reader (:func:`~cnnkeras.tracking.read_run`
and what is built on it); a name without ``/`` is returned as it is, so runs logged before
this mapping (``val_accuracy`` in MLflow) read the same. Internal names never contain
``/``; a name whose measure would be a section of its own (``summary``, ``test``...) is
logged unmapped, so the pair stays exact (tests/unit/test_metric_names.py checks every name
cnnkeras produces and, with hypothesis, any identifier).
"""

from __future__ import annotations

import re

__all__ = ["SECTIONS", "from_mlflow", "to_mlflow"]

#: Internal prefix -> the split it names (the rest of the name is the measure).
_SPLITS = (("val_", "val"), ("gap_", "gap"), ("train_", "train"))
#: A per-epoch metric without a split prefix is Keras' running training value.
_RUNNING = "train_running"
#: Single metrics with a section of their own.
_SINGLE = {"learning_rate": "optimizer", "epoch_time_s": "time"}
#: Summary values that do not start with best_ or final_.
_SUMMARY_NAMES = ("epochs_run", "train_time_s")
_SWEEP_NAMES = ("sweep_time_s",)
#: Sections with their own rules: a measure of one of these names is logged unmapped.
SECTIONS = ("summary", "test", "sweep", "importance", "optimizer", "time", "iou", "predictions")
_CLASS_IOU = re.compile(r"iou_(\d+)")
_CLASS_LEAF = re.compile(r"class_(\d+)_(train_running|train|val|gap)")


def _per_epoch(key: str) -> str:
    base, split = key, _RUNNING
    for prefix, name in _SPLITS:
        if key.startswith(prefix):
            base, split = key[len(prefix):], name
            break
    if not base or base in SECTIONS:
        return key
    per_class = _CLASS_IOU.fullmatch(base)
    if per_class:
        return f"iou/class_{per_class.group(1)}_{split}"
    return f"{base}/{split}"


def to_mlflow(key: str) -> str:
    """The MLflow name of the internal metric ``key`` (see the module docstring)."""
    if "/" in key:
        return key
    if key in _SINGLE:
        return f"{_SINGLE[key]}/{key}"
    if re.match(r"(best|final)_.", key) or key in _SUMMARY_NAMES:
        return f"summary/{key}"
    if re.match(r"test_.", key):
        return f"test/{key[len('test_'):]}"
    if re.match(r"trials_.", key) or key in _SWEEP_NAMES:
        return f"sweep/{key}"
    if re.match(r"importance\..", key):
        return f"importance/{key[len('importance.'):]}"
    return _per_epoch(key)


def from_mlflow(name: str) -> str:
    """The internal name of the MLflow metric ``name``; a name without ``/`` (an older run) is kept."""
    if "/" not in name:
        return name
    section, leaf = name.split("/", 1)
    if section in ("summary", "sweep", "optimizer", "time"):
        return leaf
    if section == "test":
        return f"test_{leaf}"
    if section == "importance":
        return f"importance.{leaf}"
    if section == "iou":
        found = _CLASS_LEAF.fullmatch(leaf)
        if found:
            number, split = found.groups()
            return _join(f"iou_{number}", split)
    for prefix, split in _SPLITS:
        if leaf == split:
            return f"{prefix}{section}"
    if leaf == _RUNNING:
        return section
    return name


def _join(base: str, split: str) -> str:
    return base if split == _RUNNING else f"{dict((s, p) for p, s in _SPLITS)[split]}{base}"
