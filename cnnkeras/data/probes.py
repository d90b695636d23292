"""The probes overfitting studies use on the training split: label noise and a per-class subset.

Both act on the training split only, after validation has been split off, so the
validation and test sets (and their labels) are the same whatever the probe's value:
a sweep over ``data.label_noise`` or ``data.per_class`` compares models on one yardstick.

- :func:`per_class_indices`: at most ``n`` training images of each class, seeded;
- :func:`noisy_labels`: a seeded fraction of the training labels replaced by a class
  drawn uniformly at random, as Zhang et al. 2017 ("Understanding deep learning requires
  rethinking generalization", Sec. 2: "partially corrupted labels ... with probability p,
  the label of each image is corrupted as a uniform random class"); here exactly
  ``round(p * n)`` images are drawn, so the fraction is exact for every seed. The random
  class can be the true one: at ``p = 1`` about 1/C of the labels stay right, as with
  random labels.

Images are taken by sorted integer indices (``x[index]``), all a training split needs
to support; a streamed split (:class:`~cnnkeras.data.arrays.SplitView`) stays a view.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config.schema import DataConfig
from .arrays import SplitView

if TYPE_CHECKING:  # (dataset.py calls apply_probes: no import cycle at run time)
    from .dataset import Dataset

__all__ = ["apply_probes", "noisy_labels", "per_class_indices"]


def per_class_indices(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of at most ``n`` examples of each class of ``y`` (all of a class that has fewer)."""
    if n < 1:
        raise ValueError(f"n must be at least 1. Received: n={n}")
    rng = np.random.default_rng([seed, 0x5C1])
    keep = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        keep.append(members if len(members) <= n else rng.choice(members, size=n, replace=False))
    return np.sort(np.concatenate(keep)) if keep else np.arange(0)


def noisy_labels(y: np.ndarray, fraction: float, num_classes: int, seed: int) -> np.ndarray:
    """``y`` with ``round(fraction * len(y))`` labels, chosen at random, replaced by uniform random classes.

    A new array (``y`` is left as it was), of ``y``'s dtype.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1]. Received: fraction={fraction}")
    out = np.array(y, copy=True)
    count = int(round(fraction * len(y)))
    if count == 0:
        return out
    rng = np.random.default_rng([seed, 0x1AB])
    chosen = rng.choice(len(y), size=count, replace=False)
    out[chosen] = rng.integers(0, num_classes, size=count).astype(out.dtype)
    return out


def apply_probes(data: Dataset, config: DataConfig, seed: int) -> Dataset:
    """``data`` with ``config.per_class`` and ``config.label_noise`` applied to its training split."""
    if config.per_class is None and config.label_noise == 0:
        return data
    x_train, y_train = data.x_train, data.y_train
    if config.per_class is not None:
        index = per_class_indices(np.asarray(y_train), config.per_class, seed)
        x_train, y_train = _rows(x_train, index), np.asarray(y_train)[index]
    if config.label_noise > 0:
        y_train = noisy_labels(np.asarray(y_train), config.label_noise, data.num_classes, seed)
    return replace(data, x_train=x_train, y_train=y_train)


def _rows(x: Any, index: np.ndarray) -> Any:
    """Rows ``index`` of a split: an array's rows, or, for a streamed split, a view of them (still read on
    demand: a per-class subset of data larger than memory stays out of memory)."""
    if isinstance(x, SplitView):
        return SplitView(x.base, x.positions[index], x.transform, x.shape[1:], x.dtype)
    return x[index]
