"""Fit a compiled model on a :class:`Dataset` and evaluate it on the test split.

:func:`fit_and_evaluate` is ``model.fit`` with cnnkeras' callbacks (epoch
records with gaps, NaN guard, early stopping, checkpoint, plateau schedule,
progress) followed by ``model.evaluate`` on the test split. It returns a
:class:`FitResult`; tracking is done by listeners, not here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from .. import interrupts
from ..config.schema import ExperimentConfig
from ..data.augment import AugmentedBatches
from ..data.dataset import Dataset
from ..data.stream import EpochOrder, StreamBatches, default_workers, reraise_pipeline_errors
from ..measures import best_epoch_of, gap_sample_indices, gap_sample_size
from ..zoo.common import batch_norm_layers
from .callbacks import (
    BatchNormWarning,
    EpochListener,
    EpochMeasures,
    EpochRecorder,
    NanGuard,
    RichProgress,
    StopOnInterrupt,
)
from .compile import steps_per_epoch
from .device_data import on_device

__all__ = ["FitResult", "TrainingCallbacks", "evaluate_inputs", "fit_and_evaluate", "fit_inputs", "gap_sample",
           "input_callbacks", "pipelines", "prepare_targets", "targets_of", "training_callbacks"]



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


def prepare_targets(y: Any, *, head: str, num_classes: int, label_smoothing: float) -> Any:
    """Labels in the form the head's loss wants (one-hot only for label smoothing); masks (segmentation,
    possibly streamed) as they are."""
    if head == "multiclass" and label_smoothing > 0:
        return keras.utils.to_categorical(y, num_classes).astype("float32")
    if head in ("binary", "regression"):
        return y.astype("float32").reshape(-1, 1)
    return y


@dataclass
class TrainingCallbacks:
    """The Keras callbacks of one training, and the ones whose state the result reads."""

    callbacks: list[keras.callbacks.Callback]
    recorder: EpochRecorder
    guard: NanGuard
    stopper: keras.callbacks.EarlyStopping | None
    checkpoint: Path | None

    def result(self, *, test: dict[str, float], elapsed: float, monitor: str) -> FitResult:
        history = self.recorder.history
        return FitResult(
            history=history,
            epochs_run=len(history.get("loss", [])),
            best_epoch=best_epoch_of(history, monitor),
            stopped_early=bool(self.stopper is not None and self.stopper.stopped_epoch > 0),
            diverged=self.guard.reason,
            test=test,
            train_time_s=elapsed,
            checkpoint=self.checkpoint if self.checkpoint is not None and self.checkpoint.exists() else None,
        )


def training_callbacks(
    config: ExperimentConfig,
    *,
    listeners: Sequence[EpochListener] = (),
    callbacks: Sequence[keras.callbacks.Callback] = (),
    checkpoint_dir: str | Path | None = None,
    sample: tuple[Any, Any] | None = None,
    num_classes: int = 0,
    batch_norm: bool = False,
) -> TrainingCallbacks:
    """What ``config.train`` asks of a training, as Keras callbacks: the epoch's measures
    (the training ``sample`` in inference mode, and the gaps), epoch records (fanned out to
    ``listeners``; for a model with ``batch_norm``, with the batch-norm warning for
    ``num_classes`` classes), the NaN guard, early stopping, the plateau schedule, the
    best-model checkpoint, then ``callbacks``. The same list serves a model trained alone
    and a member of a cohort (:mod:`cnnkeras.training.cohort`: its sample is evaluated for
    the whole cohort, so a member's ``sample`` is None and its logs already hold ``train_*``)."""
    train = config.train
    listeners = list(listeners)
    if batch_norm and num_classes >= 2 and config.model.head != "segmentation":
        listeners.append(BatchNormWarning(num_classes, listeners, title=config.tracking.run_name or config.name))
    recorder = EpochRecorder(listeners)
    guard = NanGuard()
    x, y = sample if sample is not None else (None, None)
    measures = EpochMeasures(x, y, batch_size=max(train.batch_size, 256))
    keras_callbacks: list[keras.callbacks.Callback] = [measures, recorder, guard]
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
    return TrainingCallbacks(keras_callbacks, recorder, guard, stopper, checkpoint)


def targets_of(data: Dataset, config: ExperimentConfig) -> dict[str, Any]:
    """The train/val/test labels in the form the head's loss wants."""
    return {
        split: prepare_targets(y, head=config.model.head, num_classes=data.num_classes,
                               label_smoothing=config.train.label_smoothing)
        for split, y in (("train", data.y_train), ("val", data.y_val), ("test", data.y_test))
    }


def gap_sample(data: Dataset, targets: dict[str, Any], config: ExperimentConfig) -> tuple[Any, Any] | None:
    """The clean gap's fixed training sample ``(x, y)`` as arrays, or None when ``train.gap_sample`` is 0.

    Drawn by sorted indices (:func:`~cnnkeras.measures.gap_sample_indices`), so any training split that
    supports ``len``, ``.shape`` and integer-array indexing will do (a streamed one decodes just these
    images, once).
    """
    image_bytes = 4 * int(np.prod(data.x_train.shape[1:]))  # float32, as the model sees them
    size = gap_sample_size(config.train.gap_sample, len(data.x_train), len(data.x_val), image_bytes)
    if size == 0:
        return None
    index = gap_sample_indices(len(data.x_train), size, config.seed)
    return on_device(np.asarray(data.x_train[index]), np.asarray(targets["train"][index]))


def fit_inputs(data: Dataset, targets: dict[str, Any], config: ExperimentConfig) -> dict[str, Any]:
    """The training data arguments of ``model.fit``: arrays (on the device where that pays); for streamed
    data, :class:`~cnnkeras.data.stream.StreamBatches` (seeded per-epoch order, read ahead by
    ``data.workers`` threads); for segmentation with augmentation, batches whose images and masks move
    together."""
    train = config.train
    if config.model.head == "segmentation" and config.data.augmentation.enabled:
        batches = AugmentedBatches(data.x_train, targets["train"], config.data.augmentation,
                                   batch_size=train.batch_size, seed=config.seed, shuffle=train.shuffle)
        return {"x": batches, "validation_data": _validation(data, targets, config)}
    if data.streamed:
        batches = StreamBatches(data.x_train, targets["train"], batch_size=train.batch_size, seed=config.seed,
                                shuffle=train.shuffle, workers=_workers(config))
        # shuffle=False: the batches come in their own seeded order (Keras would reorder them)
        return {"x": batches, "validation_data": _validation(data, targets, config), "shuffle": False}
    x_train, y_train, x_val, y_val = on_device(data.x_train, targets["train"], data.x_val, targets["val"])
    return {"x": x_train, "y": y_train, "validation_data": (x_val, y_val) if len(data.x_val) else None,
            "batch_size": train.batch_size, "shuffle": train.shuffle}


def _workers(config: ExperimentConfig) -> int:
    return config.data.workers or default_workers()


def _validation(data: Dataset, targets: dict[str, Any], config: ExperimentConfig) -> Any:
    if not len(data.x_val):
        return None
    if data.streamed:
        return StreamBatches(data.x_val, targets["val"], batch_size=config.train.batch_size, shuffle=False,
                             workers=_workers(config))
    return on_device(data.x_val, targets["val"])


def evaluate_inputs(data: Dataset, targets: dict[str, Any], config: ExperimentConfig) -> dict[str, Any]:
    """The test data arguments of ``model.evaluate``: arrays, or batches of a streamed test split."""
    batch_size = max(config.train.batch_size, 256)
    if data.streamed:
        return {"x": StreamBatches(data.x_test, targets["test"], batch_size=batch_size, shuffle=False,
                                   workers=_workers(config))}
    return {"x": data.x_test, "y": targets["test"], "batch_size": batch_size}


def pipelines(inputs: dict[str, Any]) -> list[Any]:
    """The streamed batch sources among ``model.fit``/``evaluate`` arguments (whose errors are re-raised)."""
    return [v for v in (inputs.get("x"), inputs.get("validation_data")) if isinstance(v, StreamBatches)]


def input_callbacks(inputs: dict[str, Any]) -> list[keras.callbacks.Callback]:
    """Callbacks the fit's inputs need: streamed batches get their epoch from Keras' epoch number."""
    streamed = pipelines(inputs)
    return [EpochOrder(streamed)] if streamed else []


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
    targets = targets_of(data, config)
    all_listeners = list(listeners)
    extra: list[keras.callbacks.Callback] = []
    if progress:
        bar = RichProgress(train.epochs, steps, title=title or config.name)
        all_listeners.append(bar)
        extra.append(bar)
    made = training_callbacks(config, listeners=all_listeners, callbacks=[*extra, *callbacks],
                              checkpoint_dir=checkpoint_dir, sample=gap_sample(data, targets, config),
                              num_classes=data.num_classes, batch_norm=bool(batch_norm_layers(model)))
    keras_callbacks = [StopOnInterrupt(), *made.callbacks]  # first: a Ctrl-C stops before any logging

    inputs = fit_inputs(data, targets, config)
    started = time.perf_counter()
    try:
        with interrupts.watch(model), reraise_pipeline_errors(*pipelines(inputs)):
            # a Ctrl-C stops the model after its current batch; a corrupt image is one line
            model.fit(**inputs, epochs=train.epochs, callbacks=[*keras_callbacks, *input_callbacks(inputs)],
                      verbose=0)
    finally:
        if progress:
            bar.on_train_end()  # idempotent; an interrupted fit never reaches on_train_end
    interrupts.raise_if_requested()
    elapsed = time.perf_counter() - started
    test: dict[str, float] = {}
    if made.guard.reason is None and len(data.x_test):
        test_inputs = evaluate_inputs(data, targets, config)
        with interrupts.watch(model), reraise_pipeline_errors(*pipelines(test_inputs)):
            scores = model.evaluate(**test_inputs, verbose=0, return_dict=True)
        interrupts.raise_if_requested()  # cut short by Ctrl-C: not a test score
        test = {f"test_{k}": float(v) for k, v in scores.items()}
    return made.result(test=test, elapsed=elapsed, monitor=train.monitor)
