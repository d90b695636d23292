"""One trial: sample overrides, run the experiment as a nested MLflow run, report to Optuna.

A trial is :func:`cnnkeras.runner.run` with the sampled ``key.path=value``
overrides, a child MLflow run of the study's parent run, and a Keras callback
that reports the pruning metric to Optuna every epoch and stops training when
the pruner says so. :func:`run_trial` is used in-process and by the worker
process (:mod:`cnnkeras.studies.worker`) alike.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from optuna_integration.keras import KerasPruningCallback

from ..config import config_from_dict
from ..config.schema import OBJECTIVE_METRICS, ExperimentConfig
from ..measures import gap_metrics
from ..runner import run
from ..tracking import Tracker

__all__ = ["PruningCallback", "TrialOutcome", "run_trial", "trial_config"]

TRIAL_TAG = "cnnkeras.trial_number"
STATE_TAG = "cnnkeras.trial_state"
STUDY_TAG = "cnnkeras.study"
WORKER_TAG = "cnnkeras.sweep_process"
SEED_TAG = "cnnkeras.sampler_seed"


class PruningCallback(KerasPruningCallback):
    """optuna-integration's ``KerasPruningCallback``, reporting each epoch (from 1) and stopping the fit.

    It reports ``monitor`` to the trial every epoch as the original does, with two
    differences: when the pruner says prune it stops training instead of raising inside
    ``fit`` (so the run can still be closed and tagged cleanly, and ``pruned_at`` says
    when), and a gap monitor (``gap_accuracy``) is computed from the epoch's logs.
    """

    def __init__(self, trial: Any, monitor: str):
        super().__init__(trial, monitor)
        self.pruned_at: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = dict(logs or {})
        if self._monitor.startswith("gap_"):
            logs.update(gap_metrics({k: float(v) for k, v in logs.items()}))
        value = logs.get(self._monitor)
        if value is None or not math.isfinite(float(value)):
            return
        self._trial.report(float(value), epoch + 1)
        if self._trial.should_prune():
            self.pruned_at = epoch + 1
            self.model.stop_training = True


class _NoTracking:
    """Stands in for a Tracker when tracking is off, so trial code needs no conditionals."""

    run_id = None

    def set_tags(self, tags: Any) -> None:
        pass

    def end(self, status: str = "FINISHED", reason: str | None = None) -> None:
        pass


class TrialOutcome(dict):
    """state ('COMPLETE', 'PRUNED', 'FAIL'), values, summary, run_id, reason."""


def trial_config(config: ExperimentConfig, overrides: list[str], *, number: int) -> ExperimentConfig:
    """The experiment config of one trial: the study's config with the trial's overrides."""

    raw = config.to_dict()
    search = raw.pop("search")
    raw.pop("report", None)  # a trial is a plain run: no sweep, nothing to report on
    keep = bool(search.get("log_models"))
    extra = [f"tracking.log_model={str(keep).lower()}", f"tracking.log_plots={str(keep).lower()}",
             f"tracking.run_name=trial-{number}"]
    return config_from_dict(raw, list(overrides) + extra)


def run_trial(config: ExperimentConfig, trial: Any, *, parent_run_id: str | None, study_name: str,
              overrides: list[str], worker: int = 0, sampler_seed: int | None = None) -> TrialOutcome:
    """Run one trial to completion; never raises for a failing trial, returns its outcome.

    The trial's MLflow run id is stored on the Optuna trial as soon as the run exists,
    so whichever process finds this trial dead can close the run.
    """
    search = config.search
    assert search is not None
    child = trial_config(config, overrides, number=trial.number)
    callbacks = []
    pruner = None
    if search.pruner.name != "none" and len(search.objectives) == 1:
        pruner = PruningCallback(trial, OBJECTIVE_METRICS[search.objectives[0].metric])
        callbacks.append(pruner)
    tracker: Any = _NoTracking()
    if child.tracking.enabled:
        tags = {TRIAL_TAG: trial.number, STUDY_TAG: study_name, STATE_TAG: "RUNNING", WORKER_TAG: worker}
        if sampler_seed is not None:
            tags[SEED_TAG] = sampler_seed
        tracker = Tracker(uri=child.tracking.uri, experiment=child.tracking.experiment or child.name,
                          run_name=f"trial-{trial.number}", parent_run_id=parent_run_id, tags=tags)
        trial.set_user_attr("mlflow_run_id", tracker.run_id)
    try:
        result = run(child, progress=False, callbacks=callbacks,
                     tracker=None if isinstance(tracker, _NoTracking) else tracker)
    except KeyboardInterrupt:
        tracker.set_tags({STATE_TAG: "FAIL"})
        raise
    except Exception as exc:  # NaN loss, OOM, anything: the trial fails, the sweep goes on
        reason = f"{type(exc).__name__}: {str(exc)[:500]}"
        tracker.set_tags({STATE_TAG: "FAIL"})
        tracker.end("FAILED", reason)
        return TrialOutcome(state="FAIL", values=None, summary={}, run_id=tracker.run_id, reason=reason)
    summary = result.summary
    if pruner is not None and pruner.pruned_at is not None:
        tracker.set_tags({STATE_TAG: "PRUNED", "cnnkeras.pruned_at_epoch": pruner.pruned_at,
                          "cnnkeras.pruned_reason": f"pruned by the {search.pruner.name} pruner at epoch "
                                                    f"{pruner.pruned_at}"})
        tracker.end("FINISHED")
        return TrialOutcome(state="PRUNED", values=None, summary=summary, run_id=tracker.run_id,
                            reason=f"pruned at epoch {pruner.pruned_at}")
    values = [summary.get(o.metric) for o in search.objectives]
    if any(v is None or not math.isfinite(v) for v in values):
        reason = f"objective metric missing or not finite: {dict(zip([o.metric for o in search.objectives], values))}"
        tracker.set_tags({STATE_TAG: "FAIL"})
        tracker.end("FAILED", reason)
        return TrialOutcome(state="FAIL", values=None, summary=summary, run_id=tracker.run_id, reason=reason)
    tracker.set_tags({STATE_TAG: "COMPLETE"})
    tracker.end("FINISHED")
    return TrialOutcome(state="COMPLETE", values=values, summary=summary, run_id=tracker.run_id, reason=None)


def outcome_attrs(outcome: Mapping[str, Any]) -> dict[str, Any]:
    """User attributes stored on the Optuna trial: run id, failure reason, summary metrics.

    The summary is one attribute (a dict), not one per metric: each attribute is a
    separate write to the study storage.
    """
    attrs: dict[str, Any] = {"mlflow_run_id": outcome.get("run_id")}
    if outcome.get("reason"):
        attrs["reason"] = outcome["reason"]
    attrs["summary"] = {k: v for k, v in (outcome.get("summary") or {}).items()
                        if isinstance(v, float) and math.isfinite(v)}
    return attrs
