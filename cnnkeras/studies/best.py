"""``cnnkeras best``: retrain a study's best configuration and register the model.

The best trial's parameters are applied to the study's saved config; the model is
retrained on the whole training split (validation folded in, early stopping off,
the config's epochs), evaluated on the test split, logged as a run, and registered in
the MLflow model registry under the study's name.

The run says where it came from: it is nested under the MLflow run of the trial it
retrained (so the sweep's runs table shows it under that trial, never as a run of its own
among the trials), named ``best-<study> (trial N, train+val)``, tagged ``cnnkeras.kind:
best``, ``cnnkeras.best_trial``, ``cnnkeras.retrained_run_id`` and
``cnnkeras.validation_folded``, with a note that says it in words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..backend import use_backend
from ..config import config_from_dict
from ..errors import CnnkerasError
from ..lazy import lazy_import
from ..tracking import register_keras_model
from .ledger import RUN_ATTR
from .space import format_override
from .study import find_study

# Keras (through the runner) is imported only after the study's backend is chosen.
runner = lazy_import("cnnkeras.runner")

__all__ = ["BestResult", "best"]


@dataclass
class BestResult:
    """The retrained run (its :class:`~cnnkeras.runner.RunResult`'s attributes read through) and what it
    retrained: the study, the trial's number and run, the validation fraction folded into training."""

    run: Any
    study: str
    trial: int
    trial_run_id: str | None
    folded: float
    registered: bool
    note: str

    def __getattr__(self, name: str) -> Any:
        if name == "run":
            raise AttributeError(name)
        return getattr(self.run, name)


def best(target: str, *, storage: str | None = None, register: bool = True, progress: bool = True) -> Any:
    """Retrain the best trial of a study (named, or given by its experiment file) and register it.

    Returns a :class:`BestResult`: the run's :class:`~cnnkeras.runner.RunResult` (``run_id``,
    ``test``, ``summary``... read through) with what was retrained: ``study``, ``trial`` (its
    number), ``trial_run_id``, ``folded`` (the validation fraction folded into training).
    """
    study, storage = find_study(target, storage)
    try:
        trial = study.best_trials[0] if len(study.directions) > 1 else study.best_trial
    except ValueError:
        raise CnnkerasError(f"study {study.study_name} has no complete trial yet") from None
    raw = dict(study.user_attrs["config"])
    raw.pop("search", None)
    raw.pop("report", None)
    folded = float((raw.get("data") or {}).get("validation_split", 0.1))
    overrides = [format_override(k, v) for k, v in trial.params.items()]
    folded = float(next((v for k, v in trial.params.items() if k == "data.validation_split"), folded))
    overrides += ["data.validation_split=0", "train.early_stopping=null", "train.checkpoint=null",
                  "train.monitor=loss", "tracking.log_model=true", "tracking.log_plots=true",
                  f"tracking.run_name=best-{study.study_name} (trial {trial.number}, train+val)"]
    if (raw.get("train") or {}).get("schedule", {}).get("name") == "reduce_on_plateau":
        overrides.append("train.schedule.monitor=loss")
    config = config_from_dict(raw, overrides)
    use_backend(config.backend, tracking_uri=config.tracking.uri)
    trial_run_id = trial.user_attrs.get(RUN_ATTR)
    note = (f"Retrain of trial {trial.number} of study {study.study_name}"
            + (f" (MLflow run {trial_run_id})" if trial_run_id else "")
            + f" with its parameters, on the whole training split: the validation part ({folded:.0%}) folded "
            "into training, early stopping off, "
            f"{config.train.epochs} epochs; scored on the test split.")
    tags = {"cnnkeras.kind": "best", "cnnkeras.best_of_study": study.study_name,
            "cnnkeras.best_trial": str(trial.number), "cnnkeras.retrained_run_id": trial_run_id or "",
            "cnnkeras.validation_folded": f"{folded:g}", "mlflow.note.content": note}
    result = runner.run(config, progress=progress, tags=tags, parent_run_id=trial_run_id or None)
    registered = bool(register and result.run_id)
    if registered:
        register_keras_model(result.run_id, result.model, name=study.study_name, uri=config.tracking.uri)
    return BestResult(result, study.study_name, trial.number, trial_run_id, folded, registered, note)
