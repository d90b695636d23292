"""Let TensorFlow free the graphs a finished run traced, so in-process trials do not leak.

Why: with the TensorFlow backend, every ``model.fit`` traces a train step in which
Keras' optimizer sums the gradients over replicas with ``tf.distribute``'s
``ReplicaContext.all_reduce``. That ``all_reduce`` is a ``tf.custom_gradient``, and in
graph mode each call registers a uniquely named gradient function
(``CustomGradient-<uid>``) in TensorFlow's process-global gradient registry, which
nothing ever clears. The function's closure holds the traced tensors, so the registry
keeps the whole train-step graph alive after the model, the optimizer and the
``tf.function`` are gone: about 6 MB per fitted LeNet-sized model, the same growth a
plain ``clear_session(); build; fit`` loop shows (reported as tensorflow/tensorflow#61791
and keras-team/keras#20552). ``clear_session`` and ``gc.collect`` cannot reach it, since
the registry is a module global.

:func:`release_traced_graphs` wraps a run: when the last run active in this process
ends, the ``CustomGradient-*`` entries registered while runs were active are dropped.
Their only use is ``tape.gradient`` while the step that created them is being traced,
which is over once the runs are; a model kept afterwards still trains and predicts
(a retrace registers fresh entries). Runs that overlap in threads of one process
share one window, so the entries are dropped only at a moment when no run is active,
never under a trace in progress (``--jobs N`` runs trials in processes of their own).
Other backends keep no such registry and pass through untouched.
``benchmarks/sweep.py`` measures the effect (RSS after each of 30 in-process trials).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..adapters import tensorflow_internals
from ..lazy import lazy_import

keras = lazy_import("keras")

__all__ = ["release_traced_graphs", "custom_gradient_entries"]

_PREFIX = "CustomGradient-"
_lock = threading.Lock()
_active = 0
_baseline: frozenset[str] = frozenset()


def _registry() -> dict | None:
    """TensorFlow's gradient registry, or None off TensorFlow (:mod:`cnnkeras.adapters.tensorflow_internals`)."""
    if keras.backend.backend() != "tensorflow":
        return None
    return tensorflow_internals.gradient_registry()


def custom_gradient_entries() -> int:
    """How many ``tf.custom_gradient`` functions the registry holds (0 off TensorFlow)."""
    registry = _registry()
    return 0 if registry is None else sum(1 for name in list(registry) if name.startswith(_PREFIX))


@contextmanager
def release_traced_graphs() -> Iterator[None]:
    """Drop the gradient functions registered by runs once no run is active.

    Re-entrant and thread-safe: nested or concurrent runs share one window, which
    closes when the last of them exits (normally or by an exception).

    Example:

    >>> with release_traced_graphs():
    ...     model.fit(x, y, epochs=1)          # registers CustomGradient-* entries
    >>> # the entries, and the traced graph they held, are gone
    """
    global _active, _baseline
    registry = _registry()
    if registry is None:
        yield
        return
    with _lock:
        if _active == 0:
            _baseline = frozenset(registry)
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                for name in [n for n in list(registry) if n.startswith(_PREFIX) and n not in _baseline]:
                    registry.pop(name, None)
                _baseline = frozenset()
