"""Keras callbacks that measure and record each epoch, stop on divergence and show progress.

:class:`EpochMeasures` comes first among a training's callbacks: at each epoch end it
evaluates the model in inference mode on the fixed training sample (``train_*``) and
adds the generalization gaps (:func:`cnnkeras.measures.gap_metrics`) to the epoch's
``logs``. Keras hands that same dict to every later callback, so early stopping,
checkpoints, the sweep's pruning callback and the recorder all see the same numbers,
computed once. :class:`EpochRecorder` assembles the epoch's record (those logs, the
learning rate and the epoch time) and hands it to every *listener* (the MLflow
tracker, the Rich progress display), so none of them recomputes anything.
:class:`BatchNormWarning`, a listener, says once when an epoch looks like lagging
batch-norm statistics rather than overfitting, and tags the run.

Listeners are plain objects with ``on_epoch(epoch, record)`` (``epoch`` counts
from 1); nothing here imports MLflow or Optuna.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, Protocol

import keras
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .. import interrupts
from ..lazy import lazy_import
from ..measures import TRAIN_PREFIX, batch_norm_lag, gap_metrics
from .epoch_line import epoch_line

tf = lazy_import("tensorflow")  # the TensorFlow backend only (EpochMeasures' evaluation pipeline)

__all__ = ["BATCH_NORM_TAG", "BatchNormWarning", "EpochListener", "EpochMeasures", "EpochRecorder", "NanGuard",
           "RichProgress", "StopOnInterrupt", "gap_metrics"]

#: The run tag that carries the batch-norm warning.
BATCH_NORM_TAG = "cnnkeras.warning.batch_norm"


class EpochListener(Protocol):
    def on_epoch(self, epoch: int, record: dict[str, float]) -> None: ...


class EpochMeasures(keras.callbacks.Callback):
    """Put the training sample's metrics and the gaps into each epoch's logs.

    Args:
        x: The fixed training sample's images ``(n, H, W, C)``, or None: then only the
            gaps are added, from ``train_*`` already in the logs (a cohort member, whose
            sample was evaluated for the whole cohort).
        y: Their targets, in the form the loss wants.
        batch_size: Evaluation batch size.

    ``model.evaluate`` on the sample (inference mode: no dropout, no augmentation,
    batch norm's moving statistics) gives every compiled metric; each is written to the
    logs as ``train_<name>``, as Keras writes ``val_<name>`` (a cohort's ``m3/accuracy``
    becomes ``train_m3/accuracy``, like its ``val_m3/accuracy``). Then
    :func:`~cnnkeras.measures.gap_metrics` adds the gaps.
    """

    def __init__(self, x: Any = None, y: Any = None, *, batch_size: int = 256):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        self._batches: Any = None

    def _inputs(self) -> dict[str, Any]:
        """``evaluate``'s data. On TensorFlow a ``tf.data`` pipeline made once: ``evaluate`` on NumPy
        arrays builds one on every call, which costs more than evaluating a small sample (0.15 s against
        0.05 s for the quickstart's 288 images here). Other backends take the arrays."""
        if keras.backend.backend() != "tensorflow":
            return {"x": self.x, "y": self.y, "batch_size": self.batch_size}
        if self._batches is None:
            self._batches = tf.data.Dataset.from_tensor_slices((self.x, self.y)).batch(self.batch_size)
        return {"x": self._batches}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None:
            return
        if self.x is not None and len(self.x):
            scores = self.model.evaluate(**self._inputs(), verbose=0, return_dict=True)
            logs.update({f"{TRAIN_PREFIX}{key}": float(value) for key, value in scores.items()})
        logs.update(gap_metrics({k: float(v) for k, v in logs.items() if isinstance(v, (int, float))}))


class BatchNormWarning:
    """An epoch listener: one warning line, and a run tag, when batch-norm statistics lag.

    When validation and the inference-mode training accuracy are near chance while the
    training-mode accuracy is high (:func:`~cnnkeras.measures.batch_norm_lag`), the "gap"
    is batch normalization's moving statistics, not overfitting. Said once per run, on
    ``console`` and as the :data:`BATCH_NORM_TAG` tag through every listener that can
    tag the run (the tracker's ``set_tags``).
    """

    def __init__(self, num_classes: int, listeners: Sequence[Any] = (), *, console: Any = None,
                 title: str | None = None):
        self.num_classes = num_classes
        self.listeners = list(listeners)
        self.console = console or Console(stderr=True)
        self.title = title
        self.message: str | None = None

    def on_epoch(self, epoch: int, record: dict[str, float]) -> None:
        if self.message is not None or not batch_norm_lag(record, self.num_classes):
            return
        self.message = (f"epoch {epoch}: training-mode accuracy {record['accuracy']:.3f} but inference-mode "
                        f"training accuracy {record['train_accuracy']:.3f} and validation "
                        f"{record['val_accuracy']:.3f} (chance {1 / self.num_classes:.3f}): batch-norm statistics, "
                        "not overfitting; try model.bn_momentum: 0.9 or lower (the fewer the steps, the lower), or train longer")
        where = f"{self.title}: " if self.title else ""
        self.console.print(f"[bold yellow]warning:[/] {where}{self.message}", highlight=False, soft_wrap=True)
        for listener in self.listeners:
            if hasattr(listener, "set_tags"):
                listener.set_tags({BATCH_NORM_TAG: self.message})


class EpochRecorder(keras.callbacks.Callback):
    """Build each epoch's record (metrics, gaps, learning rate, time) and fan it out."""

    def __init__(self, listeners: Sequence[EpochListener] = ()):
        super().__init__()
        self.listeners = list(listeners)
        self.history: dict[str, list[float]] = {}
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        record = {k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"}
        try:
            record["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        except Exception:  # an optimizer without a readable rate
            pass
        record["epoch_time_s"] = time.perf_counter() - self._started
        for key, value in record.items():
            self.history.setdefault(key, []).append(value)
        for listener in self.listeners:
            listener.on_epoch(epoch + 1, record)


class NanGuard(keras.callbacks.Callback):
    """Stop training after the first epoch whose loss is not finite, and say where.

    Checked once per epoch (a NaN batch makes the epoch mean NaN too), so the
    guard costs no per-batch device synchronisation.
    """

    def __init__(self) -> None:
        super().__init__()
        self.reason: str | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch + 1

    def _check(self, where: str, logs: dict | None) -> None:
        for key in ("loss", "val_loss"):
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(float(value)):
                self.reason = f"non-finite {key} ({float(value)}) at epoch {self._epoch}{where}"
                self.model.stop_training = True
                return

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.reason is None:
            self._check("", logs)


class RichProgress(keras.callbacks.Callback):
    """Epoch and batch progress with the latest metrics, drawn with Rich.

    On a terminal it shows a live bar; elsewhere (CI, logs) it prints one line per epoch.
    """

    def __init__(self, epochs: int, steps: int, *, title: str = "training", console: Any = None):
        super().__init__()
        self.console = console or Console(stderr=True)
        self.epochs, self.steps, self.title = epochs, steps, title
        self._progress: Any = None
        self._task: Any = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.console.is_terminal:
            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), TextColumn("{task.fields[metrics]}"),
                                      console=self.console, transient=False)
            self._progress.start()
            self._task = self._progress.add_task(self.title, total=self.epochs * self.steps, metrics="")

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def on_epoch(self, epoch: int, record: dict[str, float]) -> None:
        if self._progress is not None:  # the bar, its count and time take about 60 columns
            text = epoch_line("", epoch, self.epochs, record, max(24, self.console.width - 60), with_epoch=False)
            self._progress.update(self._task, completed=epoch * self.steps,
                                  description=f"{self.title} epoch {epoch}/{self.epochs}", metrics=text)
        else:  # one line per epoch that fits the console (80 columns in a pipe)
            self.console.print(epoch_line(self.title, epoch, self.epochs, record, self.console.width),
                               soft_wrap=True, highlight=False, markup=False)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class StopOnInterrupt(keras.callbacks.Callback):
    """Raise ``KeyboardInterrupt`` at the first epoch boundary after a Ctrl-C.

    Put it first in the callback list, so that nothing after it logs the partial
    epoch. Only epoch-level hooks: Keras keeps dispatching batch callbacks
    asynchronously.
    """

    def on_train_begin(self, logs: dict | None = None) -> None:
        interrupts.raise_if_requested()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        interrupts.raise_if_requested()

    def on_train_end(self, logs: dict | None = None) -> None:
        interrupts.raise_if_requested()
