"""One trial: sample overrides, run the experiment as a nested MLflow run, report to Optuna.

A trial is :func:`cnnkeras.runner.run` with the sampled ``key.path=value``
overrides, a child MLflow run of the study's parent run, and a Keras callback
that reports the pruning metric to Optuna every epoch and stops training when
the pruner says so. :func:`run_trial` is used in-process and by the worker
process (:mod:`cnnkeras.studies.worker`) alike.
"""

from __future__ import annotations

import gc
import math
from typing import Any, Callable, Mapping, Sequence

from optuna_integration.keras import KerasPruningCallback

from ..config import config_from_dict
from ..config.schema import OBJECTIVE_METRICS, ExperimentConfig
from ..cohort import run_cohort
from ..runner import run
from ..tracking import Tracker

__all__ = ["PruningCallback", "TrialOutcome", "is_out_of_memory", "run_cohort_trials", "run_trial", "trial_config"]

TRIAL_TAG = "cnnkeras.trial_number"
STATE_TAG = "cnnkeras.trial_state"
STUDY_TAG = "cnnkeras.study"
WORKER_TAG = "cnnkeras.sweep_process"
SEED_TAG = "cnnkeras.sampler_seed"
COHORT_TAG = "cnnkeras.cohort_size"


class PruningCallback(KerasPruningCallback):
    """optuna-integration's ``KerasPruningCallback``, reporting each epoch (from 1) and stopping the fit.

    It reports ``monitor`` to the trial every epoch as the original does, with two
    differences: when the pruner says prune it stops training instead of raising inside
    ``fit`` (so the run can still be closed and tagged cleanly, and ``pruned_at`` says
    when); a gap monitor (``gap_accuracy``) is read from the logs like any other.
    """

    def __init__(self, trial: Any, monitor: str):
        super().__init__(trial, monitor)
        self.pruned_at: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = dict(logs or {})  # gaps are in the logs already (cnnkeras.training.callbacks.EpochMeasures)
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


def _trial_tracker(child: ExperimentConfig, trial: Any, *, parent_run_id: str | None, study_name: str,
                   worker: int, sampler_seed: int | None, cohort: int = 1) -> Any:
    """The trial's MLflow run, started now; its id is stored on the Optuna trial at once."""
    if not child.tracking.enabled:
        return _NoTracking()
    tags = {TRIAL_TAG: trial.number, STUDY_TAG: study_name, STATE_TAG: "RUNNING", WORKER_TAG: worker}
    if sampler_seed is not None:
        tags[SEED_TAG] = sampler_seed
    if cohort > 1:
        tags[COHORT_TAG] = cohort
    tracker = Tracker(uri=child.tracking.uri, experiment=child.tracking.experiment or child.name,
                      run_name=f"trial-{trial.number}", parent_run_id=parent_run_id, tags=tags)
    trial.set_user_attr("mlflow_run_id", tracker.run_id)
    return tracker


def _pruner(search: Any, trial: Any) -> PruningCallback | None:
    if search.pruner.name != "none" and len(search.objectives) == 1:
        return PruningCallback(trial, OBJECTIVE_METRICS[search.objectives[0].metric])
    return None


def _failed(tracker: Any, exc: BaseException, summary: dict | None = None) -> TrialOutcome:
    reason = f"{type(exc).__name__}: {str(exc)[:500]}"
    tracker.set_tags({STATE_TAG: "FAIL"})
    tracker.end("FAILED", reason)
    return TrialOutcome(state="FAIL", values=None, summary=summary or {}, run_id=tracker.run_id, reason=reason)


def _outcome(result: Any, search: Any, pruner: PruningCallback | None, tracker: Any) -> TrialOutcome:
    """A finished run's trial outcome (PRUNED, COMPLETE, or FAIL for a missing objective); closes the run."""
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


def run_trial(config: ExperimentConfig, trial: Any, *, parent_run_id: str | None, study_name: str,
              overrides: list[str], worker: int = 0, sampler_seed: int | None = None) -> TrialOutcome:
    """Run one trial to completion; never raises for a failing trial, returns its outcome.

    The trial's MLflow run id is stored on the Optuna trial as soon as the run exists,
    so whichever process finds this trial dead can close the run.
    """
    search = config.search
    assert search is not None
    child = trial_config(config, overrides, number=trial.number)
    pruner = _pruner(search, trial)
    tracker = _trial_tracker(child, trial, parent_run_id=parent_run_id, study_name=study_name, worker=worker,
                             sampler_seed=sampler_seed)
    try:
        result = run(child, progress=False, callbacks=[pruner] if pruner else [],
                     tracker=None if isinstance(tracker, _NoTracking) else tracker)
    except KeyboardInterrupt:
        tracker.set_tags({STATE_TAG: "FAIL"})
        raise
    except Exception as exc:  # NaN loss, OOM, anything: the trial fails, the sweep goes on
        return _failed(tracker, exc)
    return _outcome(result, search, pruner, tracker)


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocation failure of any backend (host MemoryError, XLA or TensorFlow RESOURCE_EXHAUSTED, CUDA OOM)."""
    text = f"{type(exc).__name__}: {exc}"
    return isinstance(exc, MemoryError) or any(
        marker in text for marker in ("RESOURCE_EXHAUSTED", "ResourceExhausted", "out of memory", "Out of memory"))


def run_cohort_trials(config: ExperimentConfig, trials: Sequence[Any], *, parent_run_id: str | None,
                      study_name: str, overrides: Sequence[list[str]], worker: int = 0,
                      sampler_seed: int | None = None, say: Callable[[str], None] | None = None) -> list[TrialOutcome]:
    """Run trials that share one training loop (:func:`cnnkeras.cohort.cohort_key`) as a cohort.

    Each trial keeps its own MLflow run, pruning callback and outcome. A cohort that
    runs out of memory is retried as two halves (each trial with a fresh MLflow run;
    the first closed FAILED with the reason), down to single trials.
    """
    search = config.search
    assert search is not None
    children = [trial_config(config, o, number=t.number) for t, o in zip(trials, overrides)]
    pruners = [_pruner(search, t) for t in trials]
    trackers = [_trial_tracker(c, t, parent_run_id=parent_run_id, study_name=study_name, worker=worker,
                               sampler_seed=sampler_seed, cohort=len(trials)) for c, t in zip(children, trials)]
    try:
        results = run_cohort(children, progress=False, callbacks=[[p] if p else [] for p in pruners],
                             trackers=[None if isinstance(t, _NoTracking) else t for t in trackers])
    except KeyboardInterrupt:
        for tracker in trackers:
            tracker.set_tags({STATE_TAG: "FAIL"})
        raise
    except Exception as exc:
        if not (len(trials) > 1 and is_out_of_memory(exc)):
            return [_failed(tracker, exc) for tracker in trackers]
        results = None  # leaving this block drops the exception and its frames, which hold the models
    if results is None:
        gc.collect()
        half = len(trials) // 2
        if say is not None:
            say(f"a cohort of {len(trials)} ran out of memory: trying two cohorts of {half} and "
                f"{len(trials) - half}")
        for tracker in trackers:
            tracker.set_tags({STATE_TAG: "FAIL"})
            tracker.end("FAILED", f"out of memory as a cohort of {len(trials)}; retried in a smaller cohort")
        kwargs = dict(parent_run_id=parent_run_id, study_name=study_name, worker=worker,
                      sampler_seed=sampler_seed, say=say)
        return (run_cohort_trials(config, trials[:half], overrides=overrides[:half], **kwargs)
                + run_cohort_trials(config, trials[half:], overrides=overrides[half:], **kwargs))
    return [_failed(tracker, result) if isinstance(result, BaseException) else _outcome(result, search, pruner, tracker)
            for result, pruner, tracker in zip(results, pruners, trackers)]


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
