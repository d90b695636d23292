"""Batches of streamed splits for ``model.fit`` and ``model.evaluate``, on every Keras backend.

:class:`StreamBatches` is a ``keras.utils.PyDataset``: Keras accepts it on TensorFlow,
JAX and PyTorch alike (a ``tf.data`` pipeline would not run where TensorFlow is not
installed, as on the GPU machine), and its worker threads read the next batches while
the model trains on this one. docs/benchmarks.md ("Data larger than memory") has the
measurements behind the choice.

Epoch ``e`` visits the rows in the permutation ``numpy.random.default_rng([seed, e])``
draws (in order without ``shuffle``), so a config and seed give the same batches on every
run, whatever the number of workers (Keras' ordered enqueuer keeps the batch order).

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
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

import keras

__all__ = ["StreamBatches", "default_workers", "reraise_pipeline_errors"]


def default_workers() -> int:
    """Reading threads when data.workers is not set: the machine's cores, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


class StreamBatches(keras.utils.PyDataset):
    """Batches ``(x[rows], y[rows])`` of a split, rows in a seeded order per epoch.

    Args:
        x: Images (N, H, W, C): an array or array-like (see :mod:`cnnkeras.data.arrays`).
        y: Labels (N,) or masks (N, H, W), array or array-like, or None (inputs only).
        batch_size: Rows per batch (the last one may be smaller).
        seed: Seed of the per-epoch permutations.
        shuffle: Visit the rows in a new seeded order each epoch (else in order).
        workers: Threads reading batches ahead (1: read in the training thread).

    Output:
        Batch ``i`` is ``(x, y)`` NumPy arrays of ``min(batch_size, N - i * batch_size)`` rows.
    """

    def __init__(self, x: Any, y: Any, *, batch_size: int, seed: int = 0, shuffle: bool = True,
                 workers: int = 1):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max(2, 2 * workers))
        if y is not None and len(y) != len(x):
            raise ValueError(f"x and y must have as many rows. Received: x={len(x)}, y={len(y)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1. Received: batch_size={batch_size}")
        self.x, self.y, self.batch_size, self.seed, self.shuffle = x, y, batch_size, seed, shuffle
        self.epoch = 0
        self.error: BaseException | None = None
        self.order = self.order_of(0)

    def order_of(self, epoch: int) -> np.ndarray:
        """The rows of epoch ``epoch``, in the order its batches take them."""
        if not self.shuffle:
            return np.arange(len(self.x))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.x))

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index: int) -> Any:
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        try:
            x = self.x[rows]
            return x if self.y is None else (x, np.asarray(self.y[rows]))
        except Exception as exc:
            self.error = exc
            raise

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = self.order_of(self.epoch)


@contextmanager
def reraise_pipeline_errors(*pipelines: Any) -> Iterator[None]:
    """Raise the error a pipeline met (a corrupt image) instead of the backend's wrapper of it."""
    try:
        yield
    except Exception:
        for pipeline in pipelines:
            error = getattr(pipeline, "error", None)
            if error is not None:
                raise error.with_traceback(None) from None
        raise
