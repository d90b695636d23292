"""The report's pictures of predictions: what the best trials predict, next to their numbers.

Each finished run logs pictures of its best epoch (:mod:`cnnkeras.training.predictions`):
a confusion matrix and its most confident mistakes, or images with their true and predicted
masks. :func:`best_trials_pictures` picks the best runs of a runs frame by the report's
headline measure (best validation accuracy, or mean IoU for segmentation), reads their
pictures back through :mod:`cnnkeras.tracking` and returns them ready for the page (PNG as
``data:`` URIs, so the report stays one self-contained file). Runs logged before pictures
existed, or with ``tracking.log_predictions: false``, are simply left out.
"""

from __future__ import annotations

import base64
import math
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import TrackingError
from ..tracking import download_artifact

__all__ = ["PICTURES", "best_trials_pictures"]

#: The pictures shown, in order, with their captions.
PICTURES = {"confusion_matrix": "confusion matrix", "mistakes": "most confident mistakes",
            "masks": "image, true and predicted masks"}


def best_trials_pictures(runs: pd.DataFrame, measure: str, *, uri: str | None, count: int = 3,
                         mlflow_url: str | None = None) -> list[dict[str, Any]]:
    """The ``count`` best finished runs by ``measure`` (higher is better) with their pictures.

    Each item: ``run_name``, ``run_id``, ``measure`` and ``value``, ``href`` (the run in the
    MLflow UI, when its address is known) and ``pictures`` (``caption``, ``src``).
    """
    if measure not in runs or runs.empty:
        return []
    state = runs["trial_state"].fillna(runs["status"]) if "trial_state" in runs else runs["status"]
    finished = runs[state.isin(["COMPLETE", "FINISHED"]) & pd.to_numeric(runs[measure], errors="coerce").notna()]
    best = finished.sort_values(measure, ascending=False, kind="stable").head(count)
    out = []
    with tempfile.TemporaryDirectory(prefix="cnnkeras-pictures-") as tmp:
        for _, run in best.iterrows():
            pictures = []
            for name, caption in PICTURES.items():
                folder = Path(tmp) / str(run["run_id"])
                folder.mkdir(exist_ok=True)
                try:
                    path = download_artifact(run["run_id"], f"predictions/{name}.png", folder, uri=uri)
                except TrackingError:
                    continue  # not logged by this run
                pictures.append({"caption": caption, "src": "data:image/png;base64,"
                                 + base64.b64encode(path.read_bytes()).decode("ascii")})
            if pictures:
                value = float(run[measure])
                out.append({"run_name": str(run["run_name"]), "run_id": run["run_id"],
                            "measure": measure.replace("_", " "), "value": value if math.isfinite(value) else None,
                            "href": (f"{mlflow_url}/#/experiments/{run['experiment_id']}/runs/{run['run_id']}"
                                     "/model-metrics?workflowType=machine_learning") if mlflow_url else None,
                            "pictures": pictures})
    return out
