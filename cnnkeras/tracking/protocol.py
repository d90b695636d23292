"""What a run's tracking looks like to the rest of cnnkeras, whichever object does it.

:class:`RunTracker` is the interface the run lifecycle (:mod:`cnnkeras.runner`) and a
sweep's trials log through: :class:`~cnnkeras.tracking.Tracker` (MLflow, synchronous),
:class:`~cnnkeras.tracking.BackgroundTracker` (MLflow from a worker thread) and
:class:`NullTracker` (tracking off: every call does nothing, ``run_id`` is None) all
satisfy it, so no caller tests for "no tracker". This module imports no MLflow.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["NullTracker", "RunTracker"]


@runtime_checkable
class RunTracker(Protocol):
    """One tracked run: parameters, tags, per-epoch metrics, files, and how it ended."""

    @property
    def run_id(self) -> str | None: ...

    @property
    def uri(self) -> str | None: ...

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def set_tags(self, tags: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None: ...

    def on_epoch(self, epoch: int, record: Mapping[str, float]) -> None: ...

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None: ...

    def log_artifacts(self, folder: str | os.PathLike[str], artifact_path: str | None = None) -> None: ...

    def log_text(self, text: str, artifact_file: str) -> None: ...

    def log_image(self, image: Any, key: str, step: int = 0) -> None: ...

    def flush(self) -> None: ...

    def end(self, status: str = "FINISHED", reason: str | None = None) -> None: ...


class NullTracker:
    """Tracking switched off (``tracking.enabled: false``): the interface, doing nothing."""

    run_id: str | None = None
    uri: str | None = None
    ended = False

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        pass

    def on_epoch(self, epoch: int, record: Mapping[str, float]) -> None:
        pass

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        pass

    def log_artifacts(self, folder: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        pass

    def log_text(self, text: str, artifact_file: str) -> None:
        pass

    def log_image(self, image: Any, key: str, step: int = 0) -> None:
        pass

    def flush(self) -> None:
        pass

    def end(self, status: str = "FINISHED", reason: str | None = None) -> None:
        self.ended = True
