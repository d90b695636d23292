"""Fit a compiled model on a :class:`Dataset` and evaluate it on the test split.

:func:`fit_and_evaluate` is ``model.fit`` with cnnkeras' callbacks (epoch
records with gaps, NaN guard, early stopping, checkpoint, plateau schedule,
progress) followed by ``model.evaluate`` on the test split. It returns a
:class:`FitResult`; tracking is done by listeners, not here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import keras
import numpy as np

from .. import interrupts
from ..measures import best_epoch_of
from ..config.schema import ExperimentConfig
from ..data.dataset import Dataset
from .callbacks import EpochListener, EpochRecorder, NanGuard, RichProgress, StopOnInterrupt
from .compile import steps_per_epoch
from .device_data import on_device

__all__ = ["FitResult", "fit_and_evaluate", "prepare_targets"]



@dataclass
class FitResult:
    """What one training produced: per-epoch history and test metrics."""

    history: dict[str, list[float]]
    epochs_run: int
    best_epoch: int
    stopped_early: bool
    diverged: str | None
    test: dict[str, float] = field(default_factory=dict)
    train_time_s: float = 0.0
    checkpoint: Path | None = None


def prepare_targets(y: np.ndarray, *, head: str, num_classes: int, label_smoothing: float) -> np.ndarray:
    """Labels in the form the head's loss wants (one-hot only for label smoothing)."""
    if head == "multiclass" and label_smoothing > 0:
        return keras.utils.to_categorical(y, num_classes).astype("float32")
    if head in ("binary", "regression"):
        return y.astype("float32").reshape(-1, 1)
    return y


def fit_and_evaluate(
    model: keras.Model,
    data: Dataset,
    config: ExperimentConfig,
    *,
    listeners: Sequence[EpochListener] = (),
    callbacks: Sequence[keras.callbacks.Callback] = (),
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
    title: str | None = None,
) -> FitResult:
    """Train ``model`` as ``config.train`` says, then evaluate on the test split."""
    train = config.train
    steps = steps_per_epoch(len(data.x_train), train.batch_size)
    targets = {
        split: prepare_targets(y, head=config.model.head, num_classes=data.num_classes,
                               label_smoothing=train.label_smoothing)
        for split, y in (("train", data.y_train), ("val", data.y_val), ("test", data.y_test))
    }
    all_listeners = list(listeners)
    keras_callbacks: list[keras.callbacks.Callback] = []
    if progress:
        bar = RichProgress(train.epochs, steps, title=title or config.name)
        all_listeners.append(bar)
        keras_callbacks.append(bar)
    recorder = EpochRecorder(all_listeners)
    guard = NanGuard()
    keras_callbacks[:0] = [StopOnInterrupt(), recorder, guard]  # first: a Ctrl-C stops before any logging
    stopper = None
    if train.early_stopping is not None:
        es = train.early_stopping
        stopper = keras.callbacks.EarlyStopping(monitor=es.monitor, patience=es.patience, min_delta=es.min_delta,
                                                restore_best_weights=es.restore_best_weights)
        keras_callbacks.append(stopper)
    if train.schedule.name == "reduce_on_plateau":
        s = train.schedule
        keras_callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=s.monitor, factor=s.factor,
                                                                 patience=s.patience, min_lr=s.min_lr))
    checkpoint = None
    if train.checkpoint is not None and checkpoint_dir is not None:
        checkpoint = Path(checkpoint_dir) / "best.keras"
        keras_callbacks.append(keras.callbacks.ModelCheckpoint(str(checkpoint), monitor=train.checkpoint.monitor,
                                                               save_best_only=True))
    keras_callbacks.extend(callbacks)

    x_train, y_train, x_val, y_val = on_device(data.x_train, targets["train"], data.x_val, targets["val"])
    started = time.perf_counter()
    try:
        with interrupts.watch(model):  # a Ctrl-C stops the model after its current batch
            model.fit(
                x_train, y_train,
                validation_data=(x_val, y_val) if len(data.x_val) else None,
                epochs=train.epochs, batch_size=train.batch_size, shuffle=train.shuffle,
                callbacks=keras_callbacks, verbose=0,
            )
    finally:
        if progress:
            bar.on_train_end()  # idempotent; an interrupted fit never reaches on_train_end
    interrupts.raise_if_requested()
    elapsed = time.perf_counter() - started
    history = recorder.history
    epochs_run = len(history.get("loss", []))
    test: dict[str, float] = {}
    if guard.reason is None and len(data.x_test):
        with interrupts.watch(model):
            scores = model.evaluate(data.x_test, targets["test"], batch_size=max(train.batch_size, 256),
                                    verbose=0, return_dict=True)
        interrupts.raise_if_requested()  # cut short by Ctrl-C: not a test score
        test = {f"test_{k}": float(v) for k, v in scores.items()}
    return FitResult(
        history=history,
        epochs_run=epochs_run,
        best_epoch=best_epoch_of(history, train.monitor),
        stopped_early=bool(stopper is not None and stopper.stopped_epoch > 0),
        diverged=guard.reason,
        test=test,
        train_time_s=elapsed,
        checkpoint=checkpoint if checkpoint is not None and checkpoint.exists() else None,
    )
