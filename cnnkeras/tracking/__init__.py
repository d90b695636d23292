"""MLflow tracking (the only package that imports mlflow)."""

from .background import BackgroundTracker
from .connection import check_tracking
from .mlflow_tracker import (
                             TAG_PREFIX,
                             Tracker,
                             default_tracking_uri,
                             download_artifact,
                             flatten,
                             get_client,
                             internal_metrics,
                             iter_runs,
                             read_run,
                             register_keras_model,
                             server_errors,
)
from .names import from_mlflow, to_mlflow
from .permissions import grant
from .protocol import NullTracker, RunTracker
from .values import redact, redact_data

__all__ = ["TAG_PREFIX", "BackgroundTracker", "NullTracker", "RunTracker", "Tracker", "check_tracking",
           "default_tracking_uri", "download_artifact", "flatten", "from_mlflow", "get_client", "grant",
           "internal_metrics", "iter_runs", "read_run", "redact", "redact_data", "register_keras_model", "server_errors",
           "to_mlflow"]
