"""Optuna sweeps, tracked in MLflow, that resume and survive failing trials.

:func:`sweep` is the whole of ``cnnkeras sweep``:

1. The study (name, storage, sampler, pruner, directions) is created or loaded
   (:mod:`cnnkeras.studies.study`). Storage: ``search.storage`` (a PostgreSQL URL or a
   ``.journal`` file), else ``$CNNKERAS_STORAGE``, else ``.cnnkeras/<study>.journal``
   beside the experiment file (:mod:`cnnkeras.studies.storage`).
2. One MLflow parent run per study; its id is kept in the study, so running the
   same command again continues the same study under the same parent run.
3. Trials left RUNNING by a killed process are marked FAIL with the reason (their
   MLflow runs FAILED) and their parameters are queued again; they do not count
   towards the total, so the study ends with exactly ``n_trials`` finished trials.
   On a database storage, heartbeats tell which RUNNING trials are dead
   (:mod:`cnnkeras.studies.storage`), and any process that looks cleans them up.
   Each process that joins a study gets its own index and sampler seed (recorded
   on every trial), so parallel or resumed workers never draw the same trials.
4. Each trial is a nested MLflow run (see :mod:`cnnkeras.studies.objective`), in this process or
   in a worker process of its own (``isolation: process``, implied by ``jobs > 1``).
   A failing trial is FAIL in Optuna and FAILED in MLflow, and the sweep goes on.
5. At the end, the best trials, parameter importances (for the objective and for
   the generalization gap) and Optuna's plots are logged on the parent run.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import optuna
from rich.console import Console

from ..cohort_probe import measure_cohort_sizes
from ..config.schema import ExperimentConfig
from ..errors import CnnkerasError, SweepInterrupted
from ..interrupts import deferred_interrupts, raise_if_requested
from ..lazy import lazy_import
from ..tracking import Tracker, check_tracking, default_tracking_uri, flatten, read_run
from ..tracking.values import redact, redact_data
from .cohort_loop import optimize_cohorts
from .objective import STATE_TAG, STUDY_TAG, TrialOutcome, outcome_attrs, run_cohort_trials, run_trial
from .space import trial_overrides
from .storage import (PARENT_ATTR, REASON_ATTR, STALE_ATTR, JournalLock, check_journal, claim_worker, is_journal,
                      sampler_seed, setup_lock)
from .study import base_seed, load_study, make_sampler, storage_for, study_name
from .summary import SweepResult, count_done, summarize

keras = lazy_import("keras")

__all__ = ["SweepResult", "TrialFailed", "short_number", "sweep"]


class _DeadTrials:
    """What happens to a trial whose process died (Optuna's stale-trial callback, and the journal's).

    The trial is already FAIL (with its reason, see :mod:`.storage`). Its MLflow run is
    closed FAILED with that reason. If the run had in fact finished (the process died,
    or the database went away, between MLflow and Optuna), the retry adopts its result
    instead of training again; otherwise the parameters are queued again.
    """

    def __init__(self, tracking_uri: str | None):
        self.tracking_uri = tracking_uri

    def __call__(self, study: Any, trial: Any) -> None:
        reason = trial.user_attrs.get(REASON_ATTR) or "its sweep process died; parameters queued again"
        finished_run = self._close_run(trial, reason)
        _queue_again(study, trial, **({"adopt_run_id": finished_run} if finished_run else {}))

    def _close_run(self, trial: Any, reason: str) -> str | None:
        """Close the trial's MLflow run FAILED; return its id instead when it had finished COMPLETE."""
        if self.tracking_uri is None:
            return None
        run_id = trial.user_attrs.get("mlflow_run_id")
        if not run_id:
            return None
        tracker = Tracker.attach(run_id, uri=self.tracking_uri)
        run = tracker.client.get_run(run_id)
        if run.info.status == "FINISHED" and run.data.tags.get(STATE_TAG) == "COMPLETE":
            return run_id
        if run.info.status == "RUNNING":
            tracker.set_tags({STATE_TAG: "FAIL"})
            tracker.end("FAILED", reason)
        return None


def _queue_again(study: Any, trial: Any, **attrs: Any) -> None:
    """Queue a trial's parameters again; ``retry_of`` keeps the original out of the total (see count_done)."""
    if trial.params:
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number, **attrs}, skip_if_exists=False)


def _recover_journal(study: Any, dead: _DeadTrials) -> int:
    """Journal storage: every RUNNING trial found at start belongs to a dead process (the lock says so).

    Optuna has no public call to annotate and fail another process's RUNNING trial (its
    heartbeat path, used for databases, does this inside the storage), so this one branch
    talks to the study's storage directly.
    """
    stale = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in stale:
        study._storage.set_trial_user_attr(trial._trial_id, STALE_ATTR, True)
        study._storage.set_trial_user_attr(trial._trial_id, REASON_ATTR,
                                           "its sweep process died (found RUNNING at the next start); "
                                           "parameters queued again")
        if study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL):
            dead(study, study._storage.get_trial(trial._trial_id))
    return len(stale)


def _recover_stale(study: Any, storage: str, dead: _DeadTrials) -> int:
    """Fail the trials of dead processes, close their runs, queue them again; returns how many."""
    if is_journal(storage):
        return _recover_journal(study, dead)
    before = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # heartbeats decide; the callback is _DeadTrials
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))) - before


def _parent_run(study: Any, config: ExperimentConfig, storage: str) -> Any:
    experiment = config.tracking.experiment or config.name
    parent_id = study.user_attrs.get(PARENT_ATTR)
    if parent_id:
        tracker = Tracker(uri=config.tracking.uri, experiment=experiment, run_id=parent_id)
        tracker.client.update_run(parent_id, status="RUNNING")
        return tracker
    tracker = Tracker(uri=config.tracking.uri, experiment=experiment, run_name=f"sweep-{study.study_name}",
                      tags={STUDY_TAG: study.study_name, "cnnkeras.storage": storage, "cnnkeras.kind": "sweep"})
    study.set_user_attr(PARENT_ATTR, tracker.run_id)
    raw = config.to_dict()
    params = {k: v for k, v in flatten(raw).items() if not k.startswith("search.")}
    params.update({f"search.{k}": v for k, v in flatten(raw["search"]).items()})
    tracker.log_params(params)  # values are masked by the tracker (a password in search.storage)
    return tracker


def _worker_trial(config: ExperimentConfig, storage: str, study_name: str, trial: Any, overrides: list[str],
                  parent_run_id: str | None, slot: int, worker: int, seed: int) -> TrialOutcome:
    """Run one trial in a fresh Python process; a crash there is this trial's failure only."""
    result, code = _worker_process({
        "config": config.to_dict(), "storage": storage, "study": study_name, "trial_id": trial._trial_id,
        "number": trial.number, "overrides": overrides, "parent_run_id": parent_run_id,
        "tracking_uri": config.tracking.uri, "worker": worker, "sampler_seed": seed,
    }, slot)
    if result is not None:
        return TrialOutcome(result)
    return TrialOutcome(state="FAIL", values=None, summary={}, run_id=None,
                        reason=f"worker process died ({_death(code)})")


def _adopted(config: ExperimentConfig, run_id: str) -> TrialOutcome:
    """The outcome of a trial that finished in MLflow before its process or the storage went away."""
    run = read_run(run_id, uri=config.tracking.uri)
    summary = {k: float(v) for k, v in run["metrics"].items()}
    values = [summary.get(o.metric) for o in config.search.objectives]
    if any(v is None or not math.isfinite(v) for v in values):
        return TrialOutcome(state="FAIL", values=None, summary=summary, run_id=run_id,
                            reason="the adopted run has no finite objective value")
    return TrialOutcome(state="COMPLETE", values=values, summary=summary, run_id=run_id,
                        reason=f"result of MLflow run {run_id}, finished before its process or storage failed")


def sweep(
    config: ExperimentConfig,
    *,
    jobs: int | None = None,
    n_trials: int | None = None,
    progress: bool = True,
) -> SweepResult:
    """Run (or resume) the config's sweep until its total number of trials is reached.

    ``config`` is a validated config (``cnnkeras.sweep`` also takes a path and overrides).
    """
    cfg = config
    if cfg.search is None:
        raise CnnkerasError("this config has no search: section; add one to sweep (see experiments/*sweep*.yaml)")
    search = cfg.search
    total = n_trials or search.n_trials
    jobs = jobs or search.jobs
    isolation = "process" if jobs > 1 else search.isolation
    storage = storage_for(cfg)
    if jobs > 1 and storage.startswith("sqlite"):
        warnings.warn("SQLite storage locks under parallel writers; with --jobs > 1 use a .journal file or "
                      "PostgreSQL (postgresql+psycopg://...)", stacklevel=2)
    if cfg.tracking.enabled:
        check_tracking(default_tracking_uri(cfg.tracking.uri))  # seconds, one line: before any set-up
    dead = _DeadTrials(cfg.tracking.uri if cfg.tracking.enabled else None)
    journal_lock = JournalLock(storage).acquire() if is_journal(storage) else None
    try:
        repaired = check_journal(storage, repair=True) if journal_lock is not None else None
        if repaired:  # said even with progress off: the file was changed
            _console().print(repaired, style="yellow", highlight=False, markup=False, soft_wrap=True)
        with setup_lock(storage, study_name(cfg), wait_s=search.storage_wait_s):  # one process at a time
            study = load_study(cfg, on_stale=dead)
            worker = claim_worker(study)
            seed = sampler_seed(base_seed(cfg), worker)
            study.sampler = make_sampler(cfg, seed)
            parent = _parent_run(study, cfg, storage) if cfg.tracking.enabled else None
            if "config" not in study.user_attrs:  # the study's first config, read back by `best`
                study.set_user_attr("config", redact_data(cfg.to_dict()))
            recovered = _recover_stale(study, storage, dead)
        return _optimize(cfg, study, storage, parent, worker=worker, seed=seed, total=total, jobs=jobs,
                         isolation=isolation, recovered=recovered, progress=progress)
    finally:
        if journal_lock is not None:
            journal_lock.release()


def _optimize(cfg: ExperimentConfig, study: Any, storage: str, parent: Any, *, worker: int, seed: int,
              total: int | None, jobs: int, isolation: str, recovered: int, progress: bool) -> SweepResult:
    """The trial loop of one sweep process, then its summary (see :func:`sweep`)."""
    search = cfg.search
    shown = redact(storage)
    done = count_done(study.get_trials(deepcopy=False))
    remaining = max(0, total - done) if total else None
    console = _console() if progress else None
    if console:
        console.print(f"study [bold]{study.study_name}[/] ({shown}): {done} trials done, "
                      f"{remaining if remaining is not None else 'unbounded'} to go"
                      + (f", {recovered} interrupted trial(s) queued again" if recovered else "")
                      + (f"; sweep process {worker} (sampler seed {seed})" if worker else ""),
                      highlight=False)
    slots = iter(range(10**9))
    lock = threading.Lock()

    def objective(trial: Any) -> Any:
        with lock:
            slot = next(slots)
        trial.set_user_attr("worker", worker)
        trial.set_user_attr("sampler_seed", seed)
        try:
            trial_overrides_ = trial_overrides(trial, search.parameters)
            parent_id = parent.run_id if parent else None
            if trial.user_attrs.get("adopt_run_id"):
                outcome = _adopted(cfg, trial.user_attrs["adopt_run_id"])
            elif isolation == "process":
                outcome = _worker_trial(cfg, storage, study.study_name, trial, trial_overrides_, parent_id, slot,
                                        worker, seed)
            else:
                outcome = run_trial(cfg, trial, parent_run_id=parent_id, study_name=study.study_name,
                                    overrides=trial_overrides_, worker=worker, sampler_seed=seed)
        except KeyboardInterrupt:  # not this trial's fault: it does not count, and runs again on resume
            trial.set_user_attr(STALE_ATTR, True)
            trial.set_user_attr(REASON_ATTR, "interrupted (Ctrl-C); parameters queued again")
            _queue_again(study, trial)
            raise
        except Exception as exc:  # outside the run itself (tracking set-up, a storage that stayed away)
            trial.set_user_attr(REASON_ATTR, redact(f"{type(exc).__name__}: {exc}")[:500])
            raise
        for key, value in outcome_attrs(outcome).items():
            trial.set_user_attr(key, value)
        if outcome["state"] == "PRUNED":
            raise optuna.TrialPruned(outcome.get("reason"))
        if outcome["state"] == "FAIL":
            raise TrialFailed(outcome.get("reason") or "failed")
        values = outcome["values"]
        return values[0] if len(values) == 1 else values

    started = time.time()
    callbacks: list[Any] = [_stop_on_interrupt]
    # Quiet (-q) drops the per-trial lines, never a failure: a failed trial is one line either way.
    callbacks.insert(0, _TrialLine(console or _console(), search, failures_only=console is None))
    if total:
        callbacks.append(_StopAtTotal(total))
    # In-process trials defer Ctrl-C to an epoch boundary (cnnkeras.interrupts); worker
    # processes get the signal themselves.
    try:
        with deferred_interrupts() if isolation != "process" else nullcontext():
            if search.cohort > 1 and (remaining is None or remaining > 0):
                _optimize_in_cohorts(cfg, study, storage, parent, worker=worker, seed=seed, total=total, jobs=jobs,
                                     isolation=isolation, callbacks=callbacks[:1],
                                     say=lambda text: (console or _console()).print(
                                         text, style="cyan", highlight=False, markup=False, soft_wrap=True))
            elif remaining is None or remaining > 0:
                study.optimize(objective, n_trials=remaining, timeout=search.timeout_s, n_jobs=jobs,
                               catch=(TrialFailed, Exception), callbacks=callbacks)
    except KeyboardInterrupt:
        if parent is not None:
            parent.end("KILLED", "interrupted (Ctrl-C)")
        raise SweepInterrupted(
            f"sweep interrupted: the running trial is FAIL (queued again, not counted) and its MLflow run KILLED. "
            f"Resume with the same command ({_resume_command(cfg)}); finished trials are kept in {shown}"
        ) from None
    result = summarize(study, cfg, storage, parent, elapsed=time.time() - started)
    if parent is not None:
        if result.counts().get("RUNNING"):  # other processes still work on the study: the last one closes it
            parent.set_tags({"cnnkeras.sweep_state": "other sweep processes still running"})
        else:
            parent.set_tags({"cnnkeras.sweep_state": "finished"})
            parent.end("FINISHED")
    return result


def _optimize_in_cohorts(cfg: ExperimentConfig, study: Any, storage: str, parent: Any, *, worker: int, seed: int,
                         total: int | None, jobs: int, isolation: str, callbacks: list[Any],
                         say: Any) -> None:
    """The trial loop for ``search.cohort > 1`` (:mod:`cnnkeras.studies.cohort_loop`), wired to this sweep."""
    search = cfg.search
    parent_id = parent.run_id if parent else None
    slots = iter(range(10**9))
    lock = threading.Lock()

    dead = _DeadTrials(cfg.tracking.uri if cfg.tracking.enabled else None)

    def run_group(trials: list[Any], overrides: list[list[str]]) -> list[TrialOutcome]:
        if isolation == "process":
            with lock:
                slot = next(slots)
            outcomes, code = _worker_cohort(cfg, storage, study.study_name, trials, overrides, parent_id, slot,
                                            worker, seed)
            if outcomes is not None:
                return outcomes
            how = _death(code)
            reason = f"worker process died ({how}) while training a cohort of {len(trials)}"
            for trial in trials:  # its runs were left RUNNING
                dead._close_run(study._storage.get_trial(trial._trial_id), reason)
            if len(trials) > 1:  # the OOM killer's SIGKILL, an aborted allocation: a smaller cohort may fit
                half = len(trials) // 2
                say(f"the worker training a cohort of {len(trials)} died ({how}; out of memory?): trying two "
                    f"cohorts of {half} and {len(trials) - half}")
                return run_group(trials[:half], overrides[:half]) + run_group(trials[half:], overrides[half:])
            return [TrialOutcome(state="FAIL", values=None, summary={}, run_id=None, reason=reason) for _ in trials]
        if len(trials) == 1:
            return [run_trial(cfg, trials[0], parent_run_id=parent_id, study_name=study.study_name,
                              overrides=overrides[0], worker=worker, sampler_seed=seed)]
        return run_cohort_trials(cfg, trials, parent_run_id=parent_id, study_name=study.study_name,
                                 overrides=overrides, worker=worker, sampler_seed=seed, say=say)

    def choose_size(configs: list[ExperimentConfig]) -> int:
        if not search.cohort_probe:
            return search.cohort
        if isolation == "process":
            probe = _worker_probe(configs, min(search.cohort, len(configs)))
        else:
            result = measure_cohort_sizes(configs, min(search.cohort, len(configs)))
            probe = {"size": result.size, "line": result.line(configs[0].backend or _backend_name())}
        say(probe["line"])
        if parent is not None:
            parent.set_tags({"cnnkeras.cohort_size": probe["size"]})
        return probe["size"]

    optimize_cohorts(cfg, study, worker=worker, seed=seed, total=total, jobs=jobs, run_group=run_group,
                     adopt=lambda run_id: _adopted(cfg, run_id), choose_size=choose_size, callbacks=callbacks,
                     say=say)


def _backend_name() -> str:
    return keras.backend.backend()


def _worker_process(payload: dict[str, Any], slot: int = 0) -> tuple[Any, int]:
    """Run ``python -m cnnkeras.studies.worker`` on ``payload``; its JSON result (or None) and exit code."""
    with tempfile.TemporaryDirectory(prefix="cnnkeras-trial-") as tmp:  # mode 0700: the storage URL stays private
        path = Path(tmp) / "payload.json"
        result = Path(tmp) / "result.json"
        path.write_text(json.dumps({**payload, "result": str(result)}))
        env = dict(os.environ)
        # JAX would otherwise claim 75% of the GPU per process; workers share devices politely.
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        gpus = [g for g in os.environ.get("CNNKERAS_GPUS", "").split(",") if g]
        if gpus:  # one trial (or cohort) per GPU slot
            env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
        process = subprocess.run([sys.executable, "-m", "cnnkeras.studies.worker", str(path)], env=env)
        return (json.loads(result.read_text()) if result.exists() else None), process.returncode


def _death(code: int) -> str:
    """How a worker process ended, in words: "killed by SIGKILL", "exit code 1"."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"exit code {code}"


def _worker_cohort(config: ExperimentConfig, storage: str, study_name: str, trials: list[Any],
                   overrides: list[list[str]], parent_run_id: str | None, slot: int, worker: int,
                   seed: int) -> tuple[list[TrialOutcome] | None, int]:
    """Run one cohort in a fresh Python process: its outcomes (None if it died) and its exit code."""
    members = [{"trial_id": t._trial_id, "number": t.number, "overrides": o} for t, o in zip(trials, overrides)]
    result, code = _worker_process({
        "config": config.to_dict(), "storage": storage, "study": study_name, "members": members,
        "parent_run_id": parent_run_id, "tracking_uri": config.tracking.uri, "worker": worker, "sampler_seed": seed,
    }, slot)
    return ([TrialOutcome(o) for o in result] if result is not None else None), code


def _worker_probe(configs: list[ExperimentConfig], largest: int) -> dict[str, Any]:
    """The cohort size measurement, in a worker process like the cohorts (a crash there fails no trial)."""
    result, code = _worker_process({"probe": [c.to_dict() for c in configs], "largest": largest})
    if result is None:
        return {"size": 1, "line": f"cohorts: one trial at a time (the size measurement's process died, exit code "
                                   f"{code})"}
    return result


def _resume_command(cfg: ExperimentConfig) -> str:
    """``cnnkeras sweep FILE key=value ...`` with the overrides this sweep was started with."""
    source = cfg._source
    parts = ["cnnkeras", "sweep", source.file if source and source.file else "FILE"]
    return " ".join(shlex.quote(part) for part in parts + list(source.overrides if source else []))


class _StopAtTotal:
    """Stop this process once the study holds ``total`` counted trials.

    Several ``cnnkeras sweep`` processes (or machines) can work on one study in an
    RDB storage; each stops when the shared total is reached, not after its own
    count. Trials already running elsewhere still finish, so concurrent processes
    can end up to (processes - 1) trials over the total.
    """

    def __init__(self, total: int):
        self.total = total

    def __call__(self, study: Any, trial: Any) -> None:
        if count_done(study.get_trials(deepcopy=False)) >= self.total:
            study.stop()


def _stop_on_interrupt(study: Any, trial: Any) -> None:
    """After a trial: a Ctrl-C pressed while it finished (say, logging artifacts) ends the sweep."""
    raise_if_requested()


class TrialFailed(Exception):
    """A trial that failed (its reason is in the trial's user attributes and the MLflow run)."""


def _console() -> Any:
    return Console(stderr=True)


class _TrialLine:
    """One line per finished trial (an Optuna callback), whatever ended it.

    A callback rather than a print in the objective: it also sees trials that failed
    outside the trial function (a storage error, a worker killed before it reported).
    """

    def __init__(self, console: Any, search: Any, *, failures_only: bool = False):
        self.console, self.search, self.failures_only = console, search, failures_only

    def __call__(self, study: Any, trial: Any) -> None:
        state = trial.state.name
        if self.failures_only and state != "FAIL":
            return
        colour = {"COMPLETE": "green", "PRUNED": "yellow", "FAIL": "red"}.get(state, "dim")
        metric = self.search.objectives[0].metric
        value = (trial.user_attrs.get("summary") or {}).get(metric)
        if state == "COMPLETE" and isinstance(value, float) and math.isfinite(value):
            shown = f"{metric}={value:.4f}"
        else:
            shown = trial.user_attrs.get(REASON_ATTR, "")
        overrides = [f"{k}={short_number(v)}" for k, v in trial.params.items()]
        self.console.print(f"trial {trial.number:3d} [{colour}]{state:8s}[/] {redact(shown)}  "
                           f"[dim]{' '.join(overrides)}[/]", highlight=False, soft_wrap=True)


def short_number(value: Any) -> str:
    """A parameter value for people: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
