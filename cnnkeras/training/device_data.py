"""In-memory arrays placed on the accelerator once, instead of copied there batch by batch.

Keras' array adapter slices NumPy arrays on the host and copies each batch to the device.
On JAX, arrays that already live on the device are sliced there (a gather, no host
copy): :func:`on_device` puts a run's arrays on the default device when that device is
an accelerator (GPU/TPU) and they take at most a quarter of its memory; on a CPU, on
the other backends, or when they are too large, they stay as they are.
``CNNKERAS_DATA_ON_DEVICE=1`` (or ``0``) forces the choice (the tests use it on a CPU).

Shapes are unchanged: (N, H, W, C) images and (N,) or (N, K) targets.
"""

from __future__ import annotations

import os
from typing import Any

from ..lazy import lazy_import

jax = lazy_import("jax")  # used on the JAX backend only (TensorFlow machines may have no JAX)
keras = lazy_import("keras")

__all__ = ["on_device", "wanted"]

#: Share of the device's memory the arrays may take.
MEMORY_SHARE = 0.25


def wanted(nbytes: int) -> bool:
    """Whether arrays of ``nbytes`` in all should be put on the device."""
    forced = os.environ.get("CNNKERAS_DATA_ON_DEVICE")
    if forced in ("0", "1"):
        return forced == "1" and keras.backend.backend() == "jax"
    if keras.backend.backend() != "jax":
        return False
    device = jax.devices()[0]
    if device.platform == "cpu":
        return False
    limit = (device.memory_stats() or {}).get("bytes_limit")
    return limit is None or nbytes <= MEMORY_SHARE * limit


def on_device(*arrays: Any) -> tuple[Any, ...]:
    """The arrays on the default JAX device when :func:`wanted`, else unchanged (empty ones stay)."""
    if not wanted(sum(a.nbytes for a in arrays)):
        return arrays
    return tuple(jax.device_put(a) if len(a) else a for a in arrays)
