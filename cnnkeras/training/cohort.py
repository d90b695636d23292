"""Train K compiled models as one program: a sweep's cohort of trials.

K trials that share their data, batch size and epochs are K models fed the same
batches. :class:`CohortModel` holds the K member models side by side (the input
``(batch, H, W, C)`` goes to every member; the output is a list of K ``(batch,
classes)`` predictions), so ``model.fit`` traces and compiles one train step for
all of them and dispatches it once per batch: one compilation instead of K, and
the members' small convolutions are scheduled together.

Every member stays the model its trial would have trained alone:

- its own weights, initialised under its own seed, and its own compiled loss,
  metrics and weight penalty: the cohort's loss is the sum of the members'
  losses, and since no weight is shared, the gradient a member's weights get is
  its own loss's gradient;
- its own optimizer (learning rate, schedule, betas, clipping), applied by
  :class:`CohortOptimizer` to that member's weights only;
- its own Keras callbacks (epoch records, NaN guard, early stopping, pruning),
  driven by :class:`MemberCallbacks` with that member's logs.

A member that stops (pruned, early-stopped, non-finite loss) is frozen: its
updates are masked from then on, and its weights as they were when it stopped
are restored after the fit. A member whose gradients are not finite is frozen
in the same step, so it cannot poison the others (they share nothing anyway).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from .. import interrupts
from ..adapters import keras_internals
from ..config.schema import ExperimentConfig
from ..data.dataset import Dataset
from ..data.stream import reraise_pipeline_errors
from ..measures import TRAIN_PREFIX
from ..zoo.common import batch_norm_layers
from .callbacks import EpochListener, EpochMeasures, RichProgress, StopOnInterrupt
from .compile import steps_per_epoch
from .fit import (
    FitResult,
    evaluate_inputs,
    fit_inputs,
    gap_sample,
    input_callbacks,
    pipelines,
    targets_of,
    training_callbacks,
)

__all__ = ["CohortModel", "CohortOptimizer", "MemberCallbacks", "fit_cohort", "member_logs"]


class CohortOptimizer(keras.optimizers.Optimizer):
    """K optimizers, each applied to its own member's weights, as one optimizer.

    ``active`` (a ``(K,)`` variable, 1 or 0) masks a member's whole update (weights
    and optimizer state); a member whose gradients are not all finite is masked
    for that step too.

    Args:
        members: The K member optimizers, in member order.
        sizes: How many trainable variables each member has, in the order of the
            cohort model's ``trainable_variables``.
    """

    def __init__(self, members: Sequence[keras.optimizers.Optimizer], sizes: Sequence[int], **kwargs: Any):
        if len(members) != len(sizes) or not members:
            raise ValueError(f"One optimizer per member is needed. Received: members={len(members)}, "
                             f"sizes={len(sizes)}")
        super().__init__(learning_rate=0.0, name="cohort_optimizer", **kwargs)
        self.members = list(members)
        self.sizes = list(sizes)

    def build(self, variables: Sequence[Any]) -> None:
        if sum(self.sizes) != len(variables):
            raise ValueError(f"The members' variables must add up to the model's. Received: sizes={self.sizes}, "
                             f"variables={len(variables)}")
        super().build(variables)
        self.active = self.add_variable((len(self.members),), initializer="ones", name="active")
        for optimizer, chunk in zip(self.members, self._split(variables)):
            if not optimizer.built:
                optimizer.build(chunk)

    def _split(self, values: Sequence[Any]) -> list[list[Any]]:
        chunks, start = [], 0
        for size in self.sizes:
            chunks.append(list(values[start:start + size]))
            start += size
        return chunks

    @property
    def variables(self) -> list[Any]:
        return self._variables[:] + [v for optimizer in self.members for v in optimizer.variables]

    def apply(self, grads: Sequence[Any], trainable_variables: Sequence[Any] | None = None) -> None:
        if trainable_variables is None:
            trainable_variables = self._trainable_variables
        elif not self.built:
            self.build(list(trainable_variables))
        ops = keras.ops
        for index, (optimizer, chunk, chunk_grads) in enumerate(
                zip(self.members, self._split(list(trainable_variables)), self._split(list(grads)))):
            state = chunk + list(optimizer.variables)
            before = [ops.convert_to_tensor(v.value) for v in state]
            finite = ops.all(ops.stack([ops.all(ops.isfinite(g)) for g in chunk_grads]))
            keep = ops.logical_and(self.active[index] > 0, finite)
            optimizer.apply(chunk_grads, chunk)
            for variable, old in zip(state, before):
                variable.assign(ops.where(keep, variable.value, old))
        self._iterations.assign_add(1)

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:  # pragma: no cover
        raise NotImplementedError("CohortOptimizer applies its members' optimizers; it has no update of its own")


class CohortModel(keras.Model):
    """K compiled member models trained side by side on the same batches.

    Args:
        members: The K member models, each compiled (its own optimizer, loss and
            metrics) and built for the same input shape.

    Input shape:
        The members' input shape, ``(batch, ...)``.

    Output shape:
        A list of K member outputs, each the member's own output shape.

    Logs name member ``i``'s metric ``name`` ``m{i}/{name}`` (and ``val_m{i}/{name}``);
    :func:`member_logs` splits them back. ``loss`` is the sum of the members' losses.
    """

    def __init__(self, members: Sequence[keras.Model], **kwargs: Any):
        if not members:
            raise ValueError(f"A cohort needs at least one member. Received: members={len(members)}")
        for member in members:
            if not member.compiled:
                raise ValueError(f"Every member must be compiled first. Received: member={member.name}")
        super().__init__(name=kwargs.pop("name", "cohort"), **kwargs)
        self.members = list(members)

    def call(self, inputs: Any, training: bool = False) -> list[Any]:
        return [member(inputs, training=training) for member in self.members]

    def _symbolic_build(self, iterator: Any = None, data_batch: Any = None) -> None:
        """Build each member's loss and metric state symbolically from the first batch.

        A member trained alone builds these in its own first step, which takes the first
        batch from the epoch iterator; the cohort takes it the same way, so a shuffled fit
        sees the same batches in the same order as the member's own fit. (Keras' trainer
        calls this hook; :mod:`cnnkeras.adapters.keras_internals` holds what it touches.)
        """
        if not all(keras_internals.is_compiled_state_built(member) for member in self.members):
            if data_batch is None:
                for _, _, data in iterator:
                    data_batch = data[0] if isinstance(data, (list, tuple)) else next(data)
                    break
            symbolic = keras.tree.map_structure(
                lambda v: None if v is None else keras.KerasTensor(v.shape, keras.backend.standardize_dtype(v.dtype)),
                data_batch)
            x, y, _ = keras.utils.unpack_x_y_sample_weight(symbolic)
            predictions = self.compute_output_spec(x, training=False)
            for member, y_pred in zip(self.members, predictions):
                keras_internals.build_compiled_state(member, y, y_pred)
        keras_internals.symbolic_build(super(), data_batch)

    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None, sample_weight: Any = None,
                     training: bool = True) -> Any:
        total = 0.0
        batch = keras.ops.shape(x)[0]
        for member, member_pred in zip(self.members, y_pred):
            loss = member.compute_loss(x, y, member_pred, sample_weight, training=training)
            keras_internals.loss_tracker(member).update_state(loss, sample_weight=batch)
            total = total + loss
        return total

    def compute_metrics(self, x: Any, y: Any, y_pred: Any, sample_weight: Any = None) -> dict[str, Any]:
        for member, member_pred in zip(self.members, y_pred):
            keras_internals.update_compiled_metrics(member, y, member_pred, sample_weight)
        return self.get_metrics_result()

    @property
    def metrics(self) -> list[Any]:
        own = [self._loss_tracker] if self.compiled and self._loss_tracker is not None else []
        return own + [metric for member in self.members for metric in keras_internals.own_metrics(member)]

    def get_metrics_result(self) -> dict[str, Any]:
        results: dict[str, Any] = {}
        if self._loss_tracker is not None:
            results["loss"] = self._loss_tracker.result()
        for index, member in enumerate(self.members):
            for metric in keras_internals.own_metrics(member):
                value = metric.result()
                for name, result in (value.items() if isinstance(value, dict) else [(metric.name, value)]):
                    results[f"m{index}/{name}"] = result
        return results


def member_logs(logs: dict[str, Any] | None, index: int) -> dict[str, float]:
    """Member ``index``'s logs from the cohort's (``m3/accuracy`` -> ``accuracy``, ``val_m3/accuracy`` ->
    ``val_accuracy``, ``train_m3/accuracy`` -> ``train_accuracy``)."""
    own = f"m{index}/"
    prefixed = {f"{prefix}m{index}/": prefix for prefix in ("val_", TRAIN_PREFIX)}
    out: dict[str, float] = {}
    for key, value in (logs or {}).items():
        if key.startswith(own):
            out[key[len(own):]] = float(value)
            continue
        for start, prefix in prefixed.items():
            if key.startswith(start):
                out[prefix + key[len(start):]] = float(value)
    return out


class MemberCallbacks(keras.callbacks.Callback):
    """Drive each member's own Keras callbacks with its own logs; freeze members that stop.

    A member stops when one of its callbacks sets ``member.stop_training`` (early
    stopping, a NaN guard, a pruner). Its callbacks then get ``on_train_end``
    (early stopping restores its best weights), its weights are kept as they are
    (:attr:`kept`), and its updates are masked. When every member has stopped, the
    cohort stops.

    Args:
        members: The member models.
        callbacks: One list of Keras callbacks per member.
    """

    def __init__(self, members: Sequence[keras.Model], callbacks: Sequence[Sequence[keras.callbacks.Callback]]):
        super().__init__()
        self.members = list(members)
        self.lists = [keras.callbacks.CallbackList(list(c), model=m) for m, c in zip(members, callbacks)]
        self.active = [True] * len(self.members)
        self.kept: dict[int, list[Any]] = {}
        self.stopped_at: dict[int, int] = {}

    def on_train_begin(self, logs: dict | None = None) -> None:
        for member, callbacks in zip(self.members, self.lists):
            member.stop_training = False
            callbacks.on_train_begin()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        for index, callbacks in enumerate(self.lists):
            if self.active[index]:
                callbacks.on_epoch_begin(epoch)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for index, (member, callbacks) in enumerate(zip(self.members, self.lists)):
            if not self.active[index]:
                continue
            callbacks.on_epoch_end(epoch, member_logs(logs, index))
            if member.stop_training:
                self._freeze(index, epoch + 1)
        if not any(self.active):
            self.model.stop_training = True

    def _freeze(self, index: int, epoch: int) -> None:
        self.active[index] = False
        self.stopped_at[index] = epoch
        self.lists[index].on_train_end()
        self.kept[index] = self.members[index].get_weights()
        mask = np.asarray(self.active, dtype="float32")
        self.model.optimizer.active.assign(mask)

    def on_train_end(self, logs: dict | None = None) -> None:
        for index, callbacks in enumerate(self.lists):
            if self.active[index]:
                callbacks.on_train_end()

    def restore_stopped(self) -> None:
        """Put back the weights each stopped member had when it stopped."""
        for index, weights in self.kept.items():
            self.members[index].set_weights(weights)


class _CohortProgress:
    """The cohort's epoch line: how many members still train, and the best validation accuracy."""

    def __init__(self, bar: RichProgress, recorders: Sequence[Any]):
        self.bar, self.recorders = bar, list(recorders)

    def on_epoch(self, epoch: int, record: dict[str, float]) -> None:
        values = [recorder.history for recorder in self.recorders]
        best = [h["val_accuracy"][-1] for h in values if h.get("val_accuracy") and len(h["val_accuracy"]) == epoch]
        summary = {"epoch_time_s": record.get("epoch_time_s", 0.0)}
        if best:
            summary["val_accuracy"] = max(best)
        self.bar.on_epoch(epoch, summary)


def fit_cohort(
    members: Sequence[keras.Model],
    data: Dataset,
    configs: Sequence[ExperimentConfig],
    *,
    listeners: Sequence[Sequence[EpochListener]] | None = None,
    callbacks: Sequence[Sequence[keras.callbacks.Callback]] | None = None,
    checkpoint_dirs: Sequence[str | Path | None] | None = None,
    progress: bool = True,
    title: str | None = None,
) -> list[FitResult]:
    """Train K compiled members on ``data`` as one program, then evaluate each on the test split.

    ``configs[i]`` is member ``i``'s config; they share data, batch size, epochs and
    shuffling (see :func:`cnnkeras.cohort.cohort_key`). Each member gets the callbacks
    :func:`~cnnkeras.training.fit.training_callbacks` makes from its config, its own
    ``listeners[i]`` and ``callbacks[i]``, and a :class:`FitResult` as if it had been
    trained alone; ``train_time_s`` is its share of the cohort's time.
    """
    k = len(members)
    listeners = listeners or [()] * k
    callbacks = callbacks or [()] * k
    checkpoint_dirs = checkpoint_dirs or [None] * k
    first = configs[0]
    train = first.train
    made = [training_callbacks(cfg, listeners=lst, callbacks=cbs, checkpoint_dir=folder, num_classes=data.num_classes,
                               batch_norm=bool(batch_norm_layers(member)))
            for cfg, lst, cbs, folder, member in zip(configs, listeners, callbacks, checkpoint_dirs, members)]
    driver = MemberCallbacks(members, [m.callbacks for m in made])
    cohort = CohortModel(members)
    cohort.compile(optimizer=CohortOptimizer([m.optimizer for m in members],
                                             [len(m.trainable_variables) for m in members]),
                   steps_per_execution=train.steps_per_execution)
    targets = targets_of(data, first)
    # The training sample is evaluated once for the whole cohort (each member's metrics under
    # train_m{i}/), before the driver hands each member its own logs.
    sample = gap_sample(data, targets, first)
    measures = EpochMeasures(*(sample or (None, None)), batch_size=max(train.batch_size, 256))
    keras_callbacks: list[keras.callbacks.Callback] = [StopOnInterrupt(), measures, driver]
    bar = None
    if progress:
        bar = RichProgress(train.epochs, steps_per_epoch(len(data.x_train), train.batch_size),
                           title=title or f"cohort of {k}")
        keras_callbacks.append(bar)
        made[0].recorder.listeners.append(_CohortProgress(bar, [m.recorder for m in made]))
    inputs = fit_inputs(data, targets, first)
    started = time.perf_counter()
    try:
        with interrupts.watch(cohort), reraise_pipeline_errors(*pipelines(inputs)):
            cohort.fit(**inputs, epochs=train.epochs, callbacks=[*keras_callbacks, *input_callbacks(inputs)],
                       verbose=0)
    finally:
        if bar is not None:
            bar.on_train_end()
    interrupts.raise_if_requested()
    elapsed = time.perf_counter() - started
    driver.restore_stopped()
    tests: list[dict[str, float]] = [{} for _ in members]
    if len(data.x_test) and any(m.guard.reason is None for m in made):
        test_inputs = evaluate_inputs(data, targets, first)
        with interrupts.watch(cohort), reraise_pipeline_errors(*pipelines(test_inputs)):
            scores = cohort.evaluate(**test_inputs, verbose=0, return_dict=True)
        interrupts.raise_if_requested()
        for index, m in enumerate(made):
            if m.guard.reason is None:
                tests[index] = {f"test_{key}": value for key, value in member_logs(scores, index).items()}
    return [m.result(test=test, elapsed=elapsed / k, monitor=cfg.train.monitor)
            for m, test, cfg in zip(made, tests, configs)]
