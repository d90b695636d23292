"""``cnnkeras best``: retrain a study's best configuration and register the model.

The best trial's parameters are applied to the study's saved config; the model is
retrained on the whole training split (validation folded in, early stopping off,
the config's epochs), evaluated on the test split, logged as a run tagged with the
study, and registered in the MLflow model registry under the study's name.
"""

from __future__ import annotations

from typing import Any

from ..backend import use_backend
from ..config import config_from_dict
from ..errors import CnnkerasError
from ..lazy import lazy_import
from ..tracking import register_keras_model
from .space import format_override
from .study import find_study

# Keras (through the runner) is imported only after the study's backend is chosen.
runner = lazy_import("cnnkeras.runner")

__all__ = ["best"]


def best(target: str, *, storage: str | None = None, register: bool = True, progress: bool = True) -> Any:
    """Retrain the best trial of a study (named, or given by its experiment file) and register it."""
    study, storage = find_study(target, storage)
    try:
        trial = study.best_trials[0] if len(study.directions) > 1 else study.best_trial
    except ValueError:
        raise CnnkerasError(f"study {study.study_name} has no complete trial yet") from None
    raw = dict(study.user_attrs["config"])
    raw.pop("search", None)
    raw.pop("report", None)
    overrides = [format_override(k, v) for k, v in trial.params.items()]
    overrides += ["data.validation_split=0", "train.early_stopping=null", "train.checkpoint=null",
                  "train.monitor=loss", "tracking.log_model=true", "tracking.log_plots=true",
                  f"tracking.run_name=best-{study.study_name}"]
    if (raw.get("train") or {}).get("schedule", {}).get("name") == "reduce_on_plateau":
        overrides.append("train.schedule.monitor=loss")
    config = config_from_dict(raw, overrides)
    use_backend(config.backend, tracking_uri=config.tracking.uri)
    result = runner.run(config, progress=progress, tags={"cnnkeras.best_of_study": study.study_name,
                                                  "cnnkeras.best_trial": str(trial.number)})
    if register and result.run_id:
        register_keras_model(result.run_id, result.model, name=study.study_name, uri=config.tracking.uri)
    return result
