"""MLflow tracking: the only module of cnnkeras that imports mlflow.

:class:`Tracker` wraps one MLflow run through ``MlflowClient`` (no global
"active run", so trials in threads or processes cannot mix their runs up):
parameters and tags at the start, one ``log_batch`` per epoch (a synchronous
call costs a few ms, against epochs of seconds), artifacts at the end, and a
terminal status (FINISHED, FAILED or KILLED) with the reason as a tag.

The tracking URI is always explicit: the config's ``tracking.uri``, else
``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the working directory.
It is checked once per process (:func:`~cnnkeras.tracking.connection.check_tracking`:
seconds, one line) before the first run is created. Every tag, param and metric
goes through :mod:`cnnkeras.tracking.values` (strings for tags, truncated params,
finite metrics, masked passwords), so every MLflow store sees the same values.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import TrackingError
from ..lazy import lazy_import
from .connection import check_tracking, explain_http_error
from .names import from_mlflow, to_mlflow
from .values import metric_values, param_values, tag_values

mlflow = lazy_import("mlflow")
mlflow_entities = lazy_import("mlflow.entities")
mlflow_exceptions = lazy_import("mlflow.exceptions")
mlflow_tracking = lazy_import("mlflow.tracking")

__all__ = [
    "TAG_PREFIX",
    "Tracker",
    "default_tracking_uri",
    "flatten",
    "get_client",
    "read_run",
]

TAG_PREFIX = "cnnkeras."
PARENT_TAG = "mlflow.parentRunId"
NOTE_TAG = "mlflow.note.content"
#: The experiment tag MLflow's UI reads for an experiment's kind; cnnkeras' experiments train models.
KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


def default_tracking_uri(uri: str | None = None) -> str:
    """The tracking URI to use: ``uri``, ``$MLFLOW_TRACKING_URI``, or ./mlflow.db as SQLite."""
    if uri:
        return uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path('mlflow.db').resolve()}"


def _artifact_root(uri: str) -> str | None:
    """Keep a SQLite store's artifacts beside its database file (./mlartifacts)."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        return (db.parent / "mlartifacts").resolve().as_uri()
    return None


def get_client(uri: str | None = None) -> Any:
    """An ``MlflowClient`` for ``uri`` (resolved with :func:`default_tracking_uri`)."""
    return mlflow_tracking.MlflowClient(tracking_uri=default_tracking_uri(uri))


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{'train': {'batch_size': 32}}`` -> ``{'train.batch_size': '32'}`` (lists as JSON)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple, dict)):
            out[name] = json.dumps(value, separators=(",", ":"))
        else:
            out[name] = str(value)
    return out


def _refusals(method: Callable[..., Any]) -> Callable[..., Any]:
    """A Tracker method whose HTTP 401/403 from the server becomes one :class:`TrackingError` line."""

    @functools.wraps(method)
    def wrapped(self: Tracker, *args: Any, **kwargs: Any) -> Any:
        with server_errors(self.uri):
            return method(self, *args, **kwargs)

    return wrapped


class Tracker:
    """One MLflow run, logged through the client API.

    Args:
        uri: Tracking URI (None: the default, see :func:`default_tracking_uri`).
        experiment: Experiment name; created when missing.
        run_name: The run's name in the MLflow UI.
        tags: Extra tags set when the run starts.
        parent_run_id: Makes this a nested (child) run of that run.
        run_id: Attach to an existing run instead of creating one.
    """

    def __init__(self, *, uri: str | None, experiment: str, run_name: str | None = None,
                 tags: Mapping[str, Any] | None = None, parent_run_id: str | None = None,
                 run_id: str | None = None):
        self.uri = default_tracking_uri(uri)
        check_tracking(self.uri)
        self.client = get_client(self.uri)
        self.ended = False
        with server_errors(self.uri):
            self.experiment_id = self._experiment_id(experiment)
            all_tags = dict(tags or {})
            if parent_run_id:
                all_tags[PARENT_TAG] = parent_run_id
            if run_id is None:
                run = self.client.create_run(self.experiment_id, tags=tag_values(all_tags), run_name=run_name)
                self.run_id = run.info.run_id
            else:
                self.run_id = run_id
                self.set_tags(all_tags)

    @classmethod
    def attach(cls, run_id: str, *, uri: str | None = None) -> Tracker:
        """A Tracker for an existing run known only by its id (a sweep closing a dead trial's run)."""
        tracker = cls.__new__(cls)
        tracker.uri = default_tracking_uri(uri)
        tracker.client = get_client(tracker.uri)
        with server_errors(tracker.uri):
            tracker.experiment_id = tracker.client.get_run(run_id).info.experiment_id
        tracker.run_id, tracker.ended = run_id, False
        return tracker

    def _experiment_id(self, name: str) -> str:
        """The experiment's id, created when missing, always of MLflow's model-training kind (its UI
        then opens on the runs, not on GenAI traces)."""
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                self.client.restore_experiment(found.experiment_id)
            if found.tags.get(KIND_TAG) != MODEL_TRAINING:
                try:
                    self.client.set_experiment_tag(found.experiment_id, KIND_TAG, MODEL_TRAINING)
                except mlflow_exceptions.MlflowException:
                    pass  # a user who may log runs but not edit the experiment: the kind is only the UI's
            return found.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=_artifact_root(self.uri),
                                                 tags={KIND_TAG: MODEL_TRAINING})
        except mlflow_exceptions.MlflowException:  # created meanwhile by a parallel worker
            return self.client.get_experiment_by_name(name).experiment_id

    # ---------------------------------------------------------------- logging

    @_refusals
    def log_params(self, params: Mapping[str, Any]) -> None:
        items = [mlflow_entities.Param(k, v) for k, v in param_values(params).items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    @_refusals
    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if tags:
            items = [mlflow_entities.RunTag(k, v) for k, v in tag_values(tags).items()]
            self.client.log_batch(self.run_id, tags=items)

    @_refusals
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None, *,
                    timestamp_ms: int | None = None) -> None:
        """Log the finite metrics in one batch (see :func:`~cnnkeras.tracking.values.metric_values`),
        each under its MLflow name (:func:`~cnnkeras.tracking.names.to_mlflow`)."""
        now = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
        items = [mlflow_entities.Metric(to_mlflow(k), v, now, step or 0) for k, v in metric_values(metrics).items()]
        for start in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[start : start + 1000])

    def on_epoch(self, epoch: int, record: Mapping[str, float]) -> None:
        """EpochRecorder listener: one batch of metrics per epoch, step = epoch (from 1)."""
        self.log_metrics(record, step=epoch)

    @_refusals
    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    @_refusals
    def log_artifacts(self, folder: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path)

    @_refusals
    def log_text(self, text: str, artifact_file: str) -> None:
        """A text file in the run's artifacts (a failed run's traceback: ``failure/traceback.txt``)."""
        self.client.log_text(self.run_id, text, artifact_file)

    def log_image(self, image: Any, key: str, step: int = 0) -> None:
        """An image (H x W x 3 uint8) shown on the run's page in the section of ``key``'s prefix
        (``predictions/confusion_matrix``), kept per step, and as a PNG artifact ``<key>.png``."""
        self.client.log_image(self.run_id, image, key=key, step=step)
        self.client.log_image(self.run_id, image, artifact_file=f"{key}.png")

    def flush(self) -> None:
        """Every call is done when it returns (the interface :class:`BackgroundTracker` shares)."""

    @_refusals
    def end(self, status: str = "FINISHED", reason: str | None = None) -> None:
        """Close the run as FINISHED, FAILED or KILLED (with the reason as a tag)."""
        if self.ended:
            return
        if reason:
            self.set_tags({f"{TAG_PREFIX}failure_reason": reason})
        self.client.set_terminated(self.run_id, status=status)
        self.ended = True

    @_refusals
    def reopen(self) -> None:
        """Mark the (finished) run RUNNING again: a resumed sweep's parent run."""
        self.client.update_run(self.run_id, status="RUNNING")

    @property
    def ui_path(self) -> str:
        return f"#/experiments/{self.experiment_id}/runs/{self.run_id}"


def is_transient(exc: BaseException) -> bool:
    """An error of a store that is restarting or briefly away: a 5xx answer, a refused or dropped
    connection, a locked or unreachable database (worth waiting for, unlike a refused login)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, mlflow_exceptions.MlflowException):
            status = exc.get_http_status_code()
            if status >= 500 or exc.error_code in ("INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE"):
                return True
        name = type(exc).__name__
        if name in ("ConnectionError", "Timeout", "ReadTimeout", "ConnectTimeout", "OperationalError",
                    "MaxRetryError", "ConnectionRefusedError", "RemoteDisconnected"):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


@contextmanager
def server_errors(uri: str) -> Iterator[None]:
    """Turn an MLflow server's refusal (HTTP 401/403) into a one-line :class:`TrackingError`."""
    try:
        yield
    except mlflow_exceptions.MlflowException as exc:
        status = exc.get_http_status_code()
        if status in (401, 403):
            raise TrackingError(explain_http_error(uri, status)) from None
        raise


def reading_client(uri: str | None = None) -> Any:
    """A client for reading only: a SQLite store that does not exist is an error, not created empty."""
    resolved = default_tracking_uri(uri)
    if resolved.startswith("sqlite:///") and not Path(resolved[len("sqlite:///"):]).exists():
        raise TrackingError(f"no MLflow store at {resolved[len('sqlite:///'):]}: nothing has been tracked there "
                            "yet; run an experiment first, or pass --uri (or set MLFLOW_TRACKING_URI)")
    return get_client(resolved)


def read_run(run_id: str, *, uri: str | None = None) -> dict[str, Any]:
    """A logged run as plain data: info, params, tags, final metrics and per-epoch histories."""
    client = reading_client(uri)
    try:
        run = client.get_run(run_id)
    except mlflow_exceptions.MlflowException as exc:
        raise TrackingError(f"no run {run_id!r} in {default_tracking_uri(uri)}: {exc.message}") from None
    histories = {
        from_mlflow(key): [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]
        for key in run.data.metrics
    }
    return {
        "run_id": run_id,
        "experiment_id": run.info.experiment_id,
        "status": run.info.status,
        "run_name": run.info.run_name,
        "params": dict(run.data.params),
        "tags": dict(run.data.tags),
        "metrics": internal_metrics(run.data.metrics),
        "histories": histories,
    }


def internal_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """A run's latest metrics under their internal names (runs logged under the old names too)."""
    return {from_mlflow(key): value for key, value in metrics.items()}


@contextmanager
def _no_progress_bar() -> Iterator[None]:
    """MLflow draws a progress bar for every download unless told not to (a user's setting is kept)."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    if key in os.environ:
        yield
        return
    os.environ[key] = "false"
    try:
        yield
    finally:
        os.environ.pop(key, None)


def download_artifact(run_id: str, path: str, dst: str | os.PathLike[str], *, uri: str | None = None) -> Path:
    """Download one artifact of a run into ``dst`` and return its local path (no progress bar)."""
    try:
        with _no_progress_bar():
            return Path(get_client(uri).download_artifacts(run_id, path, str(dst)))
    except (mlflow_exceptions.MlflowException, OSError) as exc:
        raise TrackingError(f"run {run_id} has no artifact {path!r}: {exc}") from None


def iter_runs(experiment: str, *, uri: str | None = None, filter_string: str = "") -> Iterable[Any]:
    """Every run of an experiment (newest first)."""
    client = reading_client(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs([found.experiment_id], filter_string=filter_string, max_results=50000)


def register_keras_model(run_id: str, model: Any, *, name: str, uri: str | None = None) -> Any:
    """Log ``model`` in MLflow's Keras format on ``run_id`` and register it as ``name``.

    Returns the new model version. (No input example: passing one raised with this stack.)
    """
    mlflow.set_tracking_uri(default_tracking_uri(uri))
    with mlflow.start_run(run_id=run_id):
        info = mlflow.keras.log_model(model, name="registered_model", registered_model_name=name)
    mlflow_tracking.MlflowClient(default_tracking_uri(uri)).set_tag(run_id, f"{TAG_PREFIX}registered_model", name)
    return info.registered_model_version
