"""Ctrl-C that stops training at a safe point, so the run is recorded as KILLED.

Why: Python raises ``KeyboardInterrupt`` wherever the main thread happens to be. When
that is inside an MLflow write (a run logs metrics every epoch), SQLAlchemy is left
mid-transaction, the SQLite file stays locked, and the clean-up that should mark the run
KILLED fails with "database is locked": the interrupt turns into an ordinary
``MlflowException``, the sweep takes it for a failed trial and carries on.

While :func:`deferred_interrupts` is active (``cnnkeras.run`` and in-process sweeps use
it), the first Ctrl-C only sets a flag and tells the models being trained to stop
after the current batch. ``training.callbacks.StopOnInterrupt``, the first callback of
every fit, raises ``KeyboardInterrupt`` at the next epoch end (before the partial epoch is
logged), and :func:`raise_if_requested` does so at the other safe points (after a fit,
after the test evaluation, between trials). A second Ctrl-C raises at once, as usual.
Only the main thread can own signal handlers; elsewhere this module does nothing.
"""

from __future__ import annotations

import os
import signal
import threading
import weakref
from contextlib import contextmanager
from typing import Any, Iterator

__all__ = ["deferred_interrupts", "raise_if_requested", "requested", "watch"]

_depth = 0
_requested = False
_previous: Any = None
_models: "weakref.WeakSet[Any]" = weakref.WeakSet()

MESSAGE = b"\ninterrupt: stopping after the current batch (Ctrl-C again to stop at once)\n"


def requested() -> bool:
    """Whether Ctrl-C was pressed inside the active :func:`deferred_interrupts` window."""
    return _requested


def raise_if_requested() -> None:
    """Raise ``KeyboardInterrupt`` here, a safe point, if Ctrl-C was pressed."""
    if _requested:
        raise KeyboardInterrupt


def _on_sigint(signum: int, frame: Any) -> None:
    global _requested
    if _requested:
        raise KeyboardInterrupt
    _requested = True
    os.write(2, MESSAGE)  # async-signal-safe, unlike print
    for model in list(_models):
        model.stop_training = model.stop_evaluating = model.stop_predicting = True


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Defer the first Ctrl-C to a safe point; re-entrant (the outermost window owns the handler).

    When the outermost window closes with a Ctrl-C pending and no exception on its
    way, it raises ``KeyboardInterrupt`` so that the caller still learns of it.
    """
    global _depth, _requested, _previous
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _depth == 0:
        _requested = False
        _previous = signal.signal(signal.SIGINT, _on_sigint)
    _depth += 1
    pending = False
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            # None: a handler not installed from Python; Python's own is the closest
            signal.signal(signal.SIGINT, _previous if _previous is not None else signal.default_int_handler)
            pending, _requested = _requested, False
            _models.clear()
    if pending:  # reached only when the body finished without an exception of its own
        raise KeyboardInterrupt


@contextmanager
def watch(model: Any) -> Iterator[None]:
    """Let a Ctrl-C tell ``model`` to stop training, evaluating and predicting."""
    _models.add(model)
    try:
        yield
    finally:
        _models.discard(model)
