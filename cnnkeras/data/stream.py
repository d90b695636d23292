"""Batches of streamed splits for ``model.fit`` and ``model.evaluate``, on every Keras backend.

:class:`StreamBatches` is a ``keras.utils.PyDataset``: Keras accepts it on TensorFlow,
JAX and PyTorch alike (a ``tf.data`` pipeline would not run where TensorFlow is not
installed, as on the GPU machine), and its worker threads read the next batches while
the model trains on this one. docs/benchmarks.md ("Data larger than memory") has the
measurements behind the choice.

Epoch ``e`` visits the rows in the permutation ``numpy.random.default_rng([seed, e])``
draws (in order without ``shuffle``), so a config and seed give the same batches on every
run and backend, whatever the number of reading threads.

A batch's rows are read from the split (:class:`~cnnkeras.data.arrays.SplitView`: the
decoded cache, an npz mapped in place, or the image files themselves) and transformed
there (float32, resize, normalization). An exception while reading a batch (a corrupt
image met mid-stream) is kept in :attr:`StreamBatches.error`, because TensorFlow's
generator wrapper re-raises it as its own error type: :func:`reraise_pipeline_errors`
turns it back into the one-line :class:`~cnnkeras.errors.DataError`.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import keras
import numpy as np

__all__ = ["EpochOrder", "StreamBatches", "default_workers", "reraise_pipeline_errors"]


def default_workers() -> int:
    """Reading threads when data.workers is not set: the machine's cores, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


class StreamBatches(keras.utils.PyDataset):
    """Batches ``(x[rows], y[rows])`` of a split, rows in a seeded order per epoch, read ahead by threads.

    Args:
        x: Images (N, H, W, C): an array or array-like (see :mod:`cnnkeras.data.arrays`).
        y: Labels (N,) or masks (N, H, W), array or array-like, or None (inputs only).
        batch_size: Rows per batch (the last one may be smaller).
        seed: Seed of the per-epoch permutations.
        shuffle: Visit the rows in a new seeded order each epoch (else in order).
        workers: Threads reading the next batches while the model trains on this one.

    Output:
        Batch ``i`` is ``(x, y)`` NumPy arrays of ``min(batch_size, N - i * batch_size)`` rows.

    The epoch is set by :class:`EpochOrder` (a callback of the fit) from Keras' own epoch
    number: Keras' data adapters call ``on_epoch_begin``/``on_epoch_end`` an extra time on
    some backends (JAX's first symbolic build), so counting those calls would shift the
    order by a backend. Read-ahead is done here rather than by Keras' ``workers`` (its
    enqueuer serves the batches it prefetched during that extra call at the start of the
    next epoch), keyed by (epoch, batch): a batch is always the one its index names.
    Without :class:`EpochOrder`, ``on_epoch_end`` advances the epoch.
    """

    def __init__(self, x: Any, y: Any, *, batch_size: int, seed: int = 0, shuffle: bool = True,
                 workers: int = 1):
        super().__init__(workers=1, use_multiprocessing=False)
        if y is not None and len(y) != len(x):
            raise ValueError(f"x and y must have as many rows. Received: x={len(x)}, y={len(y)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1. Received: batch_size={batch_size}")
        if workers < 1:
            raise ValueError(f"workers must be at least 1. Received: workers={workers}")
        self.x, self.y, self.batch_size, self.seed, self.shuffle = x, y, batch_size, seed, shuffle
        self.readers, self.driven = workers, False
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._ahead: dict[tuple[int, int], Future] = {}
        self._pool: ThreadPoolExecutor | None = None
        self.set_epoch(0)

    def order_of(self, epoch: int) -> np.ndarray:
        """The rows of epoch ``epoch``, in the order its batches take them."""
        if not self.shuffle:
            return np.arange(len(self.x))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.x))

    def set_epoch(self, epoch: int) -> None:
        """Serve epoch ``epoch``'s batches from now on."""
        with self._lock:
            self.epoch, self.order = epoch, self.order_of(epoch)
            for future in self._ahead.values():
                future.cancel()
            self._ahead.clear()

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def read(self, order: np.ndarray, index: int) -> Any:
        """Batch ``index`` of the epoch whose row order is ``order``."""
        rows = order[index * self.batch_size:(index + 1) * self.batch_size]
        x = self.x[rows]
        return x if self.y is None else (x, np.asarray(self.y[rows]))

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        with self._lock:
            epoch, order = self.epoch, self.order
            future = self._ahead.pop((epoch, index), None)
            if self.readers > 1:
                for key in [k for k in self._ahead if k[1] < index]:
                    self._ahead.pop(key).cancel()
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.readers, thread_name_prefix="cnnkeras-batches")
                for ahead in range(index + 1, min(index + 1 + 2 * self.readers, len(self))):
                    if (epoch, ahead) not in self._ahead:
                        self._ahead[(epoch, ahead)] = self._pool.submit(self.read, order, ahead)
        try:
            return future.result() if future is not None else self.read(order, index)
        except Exception as exc:
            self.error = exc
            raise

    def on_epoch_end(self) -> None:
        if not self.driven:
            self.set_epoch(self.epoch + 1)

    def close(self) -> None:
        """Stop the reading threads (batches can still be read, in the calling thread)."""
        with self._lock:
            pool, self._pool = self._pool, None
            for future in self._ahead.values():
                future.cancel()
            self._ahead.clear()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


class EpochOrder(keras.callbacks.Callback):
    """Set each :class:`StreamBatches`' epoch from Keras' epoch number, before the epoch's batches are read."""

    def __init__(self, batches: Any):
        super().__init__()
        self.batches = list(batches)

    def on_train_begin(self, logs: dict | None = None) -> None:
        for batches in self.batches:
            batches.driven = True

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        for batches in self.batches:
            batches.set_epoch(epoch)


@contextmanager
def reraise_pipeline_errors(*pipelines: Any) -> Iterator[None]:
    """Raise the error a pipeline met (a corrupt image) instead of the backend's wrapper of it; stop
    the pipelines' reading threads on the way out."""
    try:
        yield
    except Exception:
        for pipeline in pipelines:
            error = getattr(pipeline, "error", None)
            if error is not None:
                raise error.with_traceback(None) from None
        raise
    finally:
        for pipeline in pipelines:
            if isinstance(pipeline, StreamBatches):
                pipeline.close()
