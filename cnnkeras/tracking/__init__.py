"""MLflow tracking (the only package that imports mlflow)."""

from .mlflow_tracker import (TAG_PREFIX, Tracker, default_tracking_uri, download_artifact, flatten, get_client,
                             register_keras_model,
                             iter_runs, read_run)

__all__ = ["TAG_PREFIX", "Tracker", "default_tracking_uri", "download_artifact", "flatten", "get_client", "register_keras_model",
           "iter_runs", "read_run"]
