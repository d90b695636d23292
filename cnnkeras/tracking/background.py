"""A run's MLflow tracking done from one background thread, so training never waits for it.

Why: importing MLflow and opening its store take about 2 s, a seventh of a short run on
this CPU, and the main thread would otherwise wait for every write. :class:`BackgroundTracker`
checks the tracking URI at once (a bad one is still one line before anything trains), then
creates the run and performs every call in a worker thread, in order. That work overlaps
data loading and the first epoch: TensorFlow's and XLA's kernels release the GIL, and a
small model leaves the second core idle. It costs the same CPU seconds.

Nothing is dropped: :meth:`flush` waits for the queued calls (the runner calls it before
the files it logged are deleted), and :meth:`end` waits for all of them. A call that failed
turns a FINISHED end into FAILED with the reason, and :meth:`end` then raises it; a run that
could not be created raises at the next call (within an epoch). No wait is unbounded: a
store that has not answered within ``wait_s`` (``tracking.wait_s``) seconds is one
:class:`~cnnkeras.errors.TrackingError` line that says so.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

from ..errors import CnnkerasError, TrackingError
from .connection import check_tracking
from .mlflow_tracker import Tracker, default_tracking_uri, is_transient
from .values import redact

__all__ = ["BackgroundTracker"]

_STOP = object()


class BackgroundTracker:
    """The :class:`~cnnkeras.tracking.Tracker` interface, performed by a worker thread.

    Args: as :class:`~cnnkeras.tracking.Tracker` (a new run; ``uri`` is checked at once).
    """

    def __init__(self, *, uri: str | None, experiment: str, run_name: str | None = None,
                 tags: Mapping[str, Any] | None = None, parent_run_id: str | None = None, wait_s: float = 300.0):
        self.uri = default_tracking_uri(uri)
        self.wait_s = wait_s
        check_tracking(self.uri)
        self.ended = False
        self._tracker: Tracker | None = None
        self._error: BaseException | None = None
        self._created = threading.Event()
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._work, name="cnnkeras-tracking", daemon=True,
            kwargs={"experiment": experiment, "run_name": run_name, "tags": dict(tags or {}),
                    "parent_run_id": parent_run_id})
        self._thread.start()

    # ------------------------------------------------------------------ worker

    def _create(self, run: dict[str, Any]) -> Tracker:
        """The run, created once the store answers: a server or database restarting (an error
        MLflow's own retries gave up on) is waited out, up to ``wait_s``."""
        deadline = time.monotonic() + self.wait_s
        delay = 1.0
        while True:
            try:
                return Tracker(uri=self.uri, **run)
            except Exception as exc:
                if not is_transient(exc) or time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(2 * delay, 10.0)

    def _work(self, **run: Any) -> None:
        try:
            self._tracker = self._create(run)
        except CnnkerasError as exc:
            self._error = exc
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, in one line
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            self._error = TrackingError(f"could not open the MLflow run in {redact(self.uri)}: "
                                        f"{type(exc).__name__}: {first}")
        finally:
            self._created.set()
        while True:
            call = self._calls.get()
            if call is _STOP:
                return
            name, args, kwargs = call
            if name == "flush":
                args[0].set()
                continue
            if self._tracker is None:
                continue
            if name == "end" and self._error is not None and args[0] == "FINISHED":
                args = ("FAILED", f"tracking failed: {type(self._error).__name__}: {self._error}")
            elif self._error is not None and name != "end":
                continue  # after a failed call, only the end is still written
            try:
                getattr(self._tracker, name)(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001
                if self._error is None:
                    self._error = exc

    def _call(self, name: str, *args: Any, **kwargs: Any) -> None:
        if self._created.is_set() and self._tracker is None and self._error is not None:
            raise self._error  # the run could not be created: stop instead of training on
        if self.ended:
            raise TrackingError(f"the MLflow run was already ended; cannot {name}")
        self._calls.put((name, args, kwargs))

    # ----------------------------------------------------------------- the run

    def _waited(self, event: threading.Event | threading.Thread, what: str) -> None:
        """Wait for the worker thread, at most ``wait_s`` seconds; then one line naming the store."""
        if isinstance(event, threading.Event):
            done = event.wait(self.wait_s)
        else:
            event.join(self.wait_s)
            done = not event.is_alive()
        if not done:
            raise TrackingError(f"the MLflow store {redact(self.uri)} did not answer within {self.wait_s:.0f} s "
                                f"({what}; tracking.wait_s)")

    def _wait_created(self) -> Tracker:
        self._waited(self._created, "creating the run")
        if self._tracker is None:
            raise self._error if self._error is not None else TrackingError("the MLflow run was not created")
        return self._tracker

    @property
    def run_id(self) -> str:
        return self._wait_created().run_id

    # ----------------------------------------------------------------- logging

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._call("log_params", dict(params))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._call("set_tags", dict(tags))

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        self._call("log_metrics", dict(metrics), step=step, timestamp_ms=int(time.time() * 1000))

    def on_epoch(self, epoch: int, record: Mapping[str, float]) -> None:
        """EpochRecorder listener: one batch of metrics per epoch, step = epoch (from 1)."""
        self.log_metrics(record, step=epoch)

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        self._call("log_artifact", str(path), artifact_path)

    def log_artifacts(self, folder: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        self._call("log_artifacts", str(folder), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self._call("log_text", text, artifact_file)

    def log_image(self, image: Any, key: str, step: int = 0) -> None:
        self._call("log_image", image, key, step)

    def flush(self) -> None:
        """Wait until every call queued so far is done (their files may then be deleted)."""
        if self.ended or not self._thread.is_alive():
            return
        done = threading.Event()
        self._calls.put(("flush", (done,), {}))
        self._waited(done, "logging")

    def end(self, status: str = "FINISHED", reason: str | None = None) -> None:
        """Close the run after every queued call; raises the first failed call's error on FINISHED."""
        if self.ended:
            return
        self._calls.put(("end", (status, reason), {}))
        self._calls.put(_STOP)
        self.ended = True
        self._waited(self._thread, f"closing the run {status}")
        if status == "FINISHED" and self._error is not None:
            where = f" (MLflow run {self._tracker.run_id}, closed FAILED)" if self._tracker is not None else ""
            raise TrackingError(f"tracking failed: {type(self._error).__name__}: {self._error}{where}") \
                from self._error
