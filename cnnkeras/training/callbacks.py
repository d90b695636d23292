"""Keras callbacks that record each epoch, stop on divergence and show progress.

:class:`EpochRecorder` is the single place an epoch's numbers are assembled: the
Keras logs plus the generalization gaps (:func:`cnnkeras.measures.gap_metrics`),
the learning rate and the epoch time. It hands
the record to every *listener* (the MLflow tracker, the Rich progress display,
a sweep's pruning hook), so none of them recomputes anything.

Listeners are plain objects with ``on_epoch(epoch, record)`` (``epoch`` counts
from 1); nothing here imports MLflow or Optuna.
"""

from __future__ import annotations

import math
import time
from typing import Any, Protocol, Sequence

import keras
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .. import interrupts
from ..measures import gap_metrics
from .epoch_line import epoch_line

__all__ = ["EpochListener", "EpochRecorder", "NanGuard", "RichProgress", "StopOnInterrupt", "gap_metrics"]


class EpochListener(Protocol):
    def on_epoch(self, epoch: int, record: dict[str, float]) -> None: ...


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
        record.update(gap_metrics(record))
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
