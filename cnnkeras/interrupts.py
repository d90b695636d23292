"""Ctrl-C, SIGTERM and SIGHUP stop training at a safe point, so every run ends recorded.

Why: Python raises ``KeyboardInterrupt`` wherever the main thread happens to be. When
that is inside an MLflow write, SQLAlchemy is left mid-transaction and the clean-up that
should mark the run KILLED fails; inside a callback that native code calls (XLA
compiling, say) the exception can be swallowed, and the run then trains to the end.
SIGTERM (what ``kill``, ``timeout`` and ``docker stop`` send) and SIGHUP (a closed
terminal) would end the process on the spot, leaving its MLflow run RUNNING for good.

While :func:`deferred_interrupts` is active (the CLI's training commands hold it from
their first line; ``cnnkeras.run``, sweeps and trial workers hold it too), the first of
these signals only records itself, prints one line, and tells the models being trained
to stop after the current batch. :class:`Interrupted` (a ``KeyboardInterrupt``) is then
raised at the next safe point: the epoch boundary (``training.callbacks.StopOnInterrupt``,
before the partial epoch is logged) or :func:`raise_if_requested` (after the data is
loaded, after a fit, between trials). A second signal raises at once, except while runs
are being closed (:func:`closing`: it is said in one line, and the closing finishes); a
third ends the process with ``128 + signal`` without any clean-up. The CLI keeps a handler
until its process has ended, so a signal during the last flush exits with ``128 + signal``
rather than a bare signal death. The run is closed KILLED with its
finished epochs, a sweep queues the trial again, and the CLI exits 130 (Ctrl-C), 143
(SIGTERM) or 129 (SIGHUP). Only the main thread can own signal handlers; elsewhere this
module does nothing.
"""

from __future__ import annotations

import os
import signal
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Interrupted", "SIGNALS", "closing", "deferred_interrupts", "exit_code", "interrupt_reason", "pending_signal",
           "raise_if_requested", "requested", "signal_name", "watch"]

#: The signals handled like Ctrl-C (SIGHUP where the platform has it).
SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None))
                if s is not None)

_NAMES: dict[int, str] = {signal.SIGINT: "Ctrl-C"}

_depth = 0
_requested: int | None = None  # the first signal received in the window
_count = 0
_previous: dict[int, Any] = {}
_models: weakref.WeakSet[Any] = weakref.WeakSet()
_shielded = 0  # > 0 while runs are being closed: a second signal does not abort the closing


class Interrupted(KeyboardInterrupt):
    """A stop asked for by a signal: Ctrl-C (SIGINT), SIGTERM or SIGHUP.

    A ``KeyboardInterrupt``, so every ``except KeyboardInterrupt`` treats all three alike;
    ``exit_code`` is the shell's convention, ``128 + signal``.
    """

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal_name(signum))
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)


def signal_name(signum: int) -> str:
    """``Ctrl-C`` for SIGINT, else the signal's name (``SIGTERM``)."""
    if signum in _NAMES:
        return _NAMES[signum]
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def interrupt_reason(exc: BaseException | None = None) -> str:
    """Why a run was stopped, for its KILLED status: ``interrupted (Ctrl-C)``, ``stopped by SIGTERM``."""
    signum = getattr(exc, "signum", None) or _requested or signal.SIGINT
    return "interrupted (Ctrl-C)" if signum == signal.SIGINT else f"stopped by {signal_name(signum)}"


def exit_code(exc: BaseException) -> int:
    """The exit code for an interrupt: 130 for Ctrl-C (or a plain KeyboardInterrupt), 143 SIGTERM, 129 SIGHUP."""
    return 128 + int(getattr(exc, "signum", signal.SIGINT))


def requested() -> bool:
    """Whether a stop signal was received inside the active :func:`deferred_interrupts` window."""
    return _requested is not None


def pending_signal() -> int | None:
    """The stop signal received in the active window, if any (to forward it to a worker process)."""
    return _requested


def raise_if_requested() -> None:
    """Raise :class:`Interrupted` here, a safe point, if a stop signal was received."""
    if _requested is not None:
        raise Interrupted(_requested)


def _message(signum: int) -> bytes:
    again = "Ctrl-C" if signum == signal.SIGINT else signal_name(signum)
    return (f"\n{signal_name(signum)}: stopping at the next safe point, the runs closed KILLED "
            f"({again} again to stop at once)\n").encode()


def _on_signal(signum: int, frame: Any) -> None:
    global _requested, _count
    _count += 1
    if _count >= 3:  # the user insists: no clean-up
        os.write(2, f"\n{signal_name(signum)} a third time: exiting now\n".encode())
        os._exit(128 + int(signum))
    if _requested is not None:
        if _shielded:  # closing the runs: let it finish (it is bounded by tracking.wait_s); a third exits
            os.write(2, f"\n{signal_name(signum)}: closing the runs first ({signal_name(signum)} again to exit "
                        "without closing them)\n".encode())
            return
        raise Interrupted(signum)
    _requested = signum
    os.write(2, _message(signum))  # async-signal-safe, unlike print
    for model in list(_models):
        model.stop_training = model.stop_evaluating = model.stop_predicting = True


@contextmanager
def closing() -> Iterator[None]:
    """While runs are being closed after a stop, a second signal does not raise into the closing (which would
    leave them RUNNING); it prints one line, and a third still exits at once."""
    global _shielded
    _shielded += 1
    try:
        yield
    finally:
        _shielded -= 1


def _on_signal_while_exiting(signum: int, frame: Any) -> None:
    """The CLI's handler once its command is over and the process is ending (flushing, exit handlers)."""
    os.write(2, f"\n{signal_name(signum)}: exiting\n".encode())
    os._exit(128 + int(signum))


@contextmanager
def deferred_interrupts(*, until_exit: bool = False) -> Iterator[None]:
    """Defer the first stop signal to a safe point; re-entrant (the outermost window owns the handlers).

    When the outermost window closes with a signal pending and no exception on its way,
    it raises :class:`Interrupted` so that the caller still learns of it. ``until_exit`` (the
    CLI, whose process ends right after): the handlers are not restored to the defaults but
    replaced by one that exits with ``128 + signal`` at once, so a signal that comes while
    the process ends is never a bare SIGTERM death.
    """
    global _depth, _requested, _count
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _depth == 0:
        _requested, _count = None, 0
        for signum in SIGNALS:
            _previous[signum] = signal.signal(signum, _on_signal)
    _depth += 1
    pending: int | None = None
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            for signum in SIGNALS:
                # None: a handler not installed from Python; Python's own is the closest
                previous = _previous.pop(signum, None)
                if until_exit:
                    signal.signal(signum, _on_signal_while_exiting)
                    continue
                signal.signal(signum, previous if previous is not None else
                              (signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL))
            pending, _requested, _count = _requested, None, 0
            _models.clear()
    if pending is not None:  # reached only when the body finished without an exception of its own
        raise Interrupted(pending)


@contextmanager
def watch(model: Any) -> Iterator[None]:
    """Let a stop signal tell ``model`` to stop training, evaluating and predicting."""
    _models.add(model)
    try:
        if _requested is not None:  # the signal came before this model existed (during start-up)
            model.stop_training = model.stop_evaluating = model.stop_predicting = True
        yield
    finally:
        _models.discard(model)
