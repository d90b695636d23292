"""Optuna sweeps, tracked in MLflow, that resume and survive failing trials.

:func:`sweep` is the whole of ``cnnkeras sweep``:

1. The study (name, storage, sampler, pruner, directions) is created or loaded.
   Storage: the config's ``search.storage`` (an RDB URL or a ``.journal`` file),
   by default ``.cnnkeras/<study>.journal`` beside the experiment file.
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
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..config import load_config
from ..config.schema import ExperimentConfig
from ..errors import CnnkerasError, SweepInterrupted
from ..interrupts import deferred_interrupts, raise_if_requested
from ..tracking.values import redact, redact_data
from .objective import STATE_TAG, STUDY_TAG, TrialOutcome, outcome_attrs, run_trial
from .space import trial_overrides
from .storage import (REASON_ATTR, STALE_ATTR, JournalLock, claim_worker, is_journal, open_storage, quiet_optuna,
                      sampler_seed, setup_lock)

__all__ = ["SweepInterrupted", "SweepResult", "find_study", "load_study", "storage_for", "sweep"]

PARENT_ATTR = "mlflow_parent_run_id"


@dataclass
class SweepResult:
    """What a sweep left: the study, its parent run and the finished trials."""

    study_name: str
    storage: str
    parent_run_id: str | None
    directions: list[str]
    trials: list[dict[str, Any]] = field(default_factory=list)
    best: list[dict[str, Any]] = field(default_factory=list)
    importances: dict[str, dict[str, float]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for trial in self.trials:
            out[trial["state"]] = out.get(trial["state"], 0) + 1
        return out

    @property
    def all_failed(self) -> bool:
        """Trials were counted and none of them completed or was pruned: nothing was learned."""
        counted = [t for t in self.trials if not t["stale"] and t["state"] != "RUNNING"]
        return bool(counted) and all(t["state"] == "FAIL" for t in counted)


# ------------------------------------------------------------------- storage


def study_name(config: ExperimentConfig) -> str:
    """The config's study name: ``search.study_name``, else the experiment's name."""
    assert config.search is not None
    return config.search.study_name or config.name


def storage_for(config: ExperimentConfig) -> str:
    """The study's storage: ``search.storage``, else ``$CNNKERAS_STORAGE``, else a journal beside the file."""
    search = config.search
    assert search is not None
    if search.storage:
        return search.storage
    if os.environ.get("CNNKERAS_STORAGE"):
        return os.environ["CNNKERAS_STORAGE"]
    folder = Path(config._source.file).resolve().parent if config._source and config._source.file else Path.cwd()
    return str(folder / ".cnnkeras" / f"{study_name(config)}.journal")


def _open(config: ExperimentConfig, storage: str, on_stale: Any = None) -> Any:
    search = config.search
    return open_storage(storage, wait_s=search.storage_wait_s, heartbeat_s=search.heartbeat_s,
                        grace_s=search.stale_after_s, on_stale=on_stale)


def _sampler(config: ExperimentConfig, seed: int) -> Any:
    import optuna

    s = config.search.sampler
    if s.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if s.name == "grid":
        from .space import CategoricalParam

        space = {}
        for path, p in config.search.parameters.items():
            if not isinstance(p, CategoricalParam):
                raise CnnkerasError(f"search.parameters.{path}: the grid sampler needs categorical parameters")
            space[path] = list(p.choices)
        return optuna.samplers.GridSampler(space, seed=seed)
    if s.name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed)
    if s.name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(config: ExperimentConfig) -> Any:
    import optuna

    p = config.search.pruner
    if p.name == "none" or len(config.search.objectives) > 1:
        return optuna.pruners.NopPruner()
    if p.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, p.warmup_epochs))
    if p.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, p.warmup_epochs), max_resource=config.train.epochs)
    return optuna.pruners.MedianPruner(n_startup_trials=p.startup_trials, n_warmup_steps=p.warmup_epochs)


def _base_seed(config: ExperimentConfig) -> int:
    s = config.search.sampler
    return s.seed if s.seed is not None else config.seed


def load_study(config: ExperimentConfig, *, worker: int = 0, on_stale: Any = None) -> Any:
    """Create or load the config's study, with the sampler seed of sweep process number ``worker``."""
    import optuna

    quiet_optuna()
    storage = storage_for(config)
    try:
        return optuna.create_study(
            study_name=study_name(config), storage=_open(config, storage, on_stale),
            sampler=_sampler(config, sampler_seed(_base_seed(config), worker)), pruner=_pruner(config),
            directions=[o.direction for o in config.search.objectives], load_if_exists=True,
        )
    except ValueError as exc:  # e.g. the stored study has other directions
        raise CnnkerasError(f"study {study_name(config)} in {redact(storage)}: {exc}") from None


def find_study(target: str, storage: str | None = None) -> tuple[Any, str]:
    """The study named by ``target``: an experiment file with a search: section, or a study name.

    A study name is looked up in ``storage`` (default ``$CNNKERAS_STORAGE``, else
    ``.cnnkeras/<name>.journal``).
    """
    import optuna


    quiet_optuna()

    def open_existing(name: str, where: str, missing: str) -> tuple[Any, str]:
        if is_journal(where) and not os.path.exists(where):
            raise CnnkerasError(f"{missing} (no {where})")
        try:
            return optuna.load_study(study_name=name, storage=open_storage(where)), where
        except KeyError:
            raise CnnkerasError(f"{missing} (not in {redact(where)})") from None

    if os.path.isfile(target):
        config = load_config(target)
        if config.search is None:
            raise CnnkerasError(f"{target} has no search: section")
        name = study_name(config)
        return open_existing(name, storage_for(config),
                             f"study {name} has not been swept yet; run: cnnkeras sweep {target}")
    where = storage or os.environ.get("CNNKERAS_STORAGE") or str(Path(".cnnkeras") / f"{target}.journal")
    return open_existing(target, where,
                         f"no study named {target!r}; pass the experiment file, or the study's --storage")


# -------------------------------------------------------------- bookkeeping


def _stale_numbers(trials: Sequence[Any]) -> set[int]:
    """Numbers of trials whose process died: marked stale, or retried by a later trial."""
    return ({t.number for t in trials if t.user_attrs.get(STALE_ATTR)}
            | {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs})


def _count_done(trials: Sequence[Any]) -> int:
    """Finished trials that count towards the total (a dead process's trial does not)."""
    from optuna.trial import TrialState

    stale = _stale_numbers(trials)
    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL) and t.number not in stale
               for t in trials)


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
        if trial.params:
            attrs: dict[str, Any] = {"retry_of": trial.number}
            if finished_run:
                attrs["adopt_run_id"] = finished_run
            study.enqueue_trial(trial.params, user_attrs=attrs, skip_if_exists=False)

    def _close_run(self, trial: Any, reason: str) -> str | None:
        """Close the trial's MLflow run FAILED; return its id instead when it had finished COMPLETE."""
        if self.tracking_uri is None:
            return None
        from ..tracking import get_client

        client = get_client(self.tracking_uri)
        run_id = trial.user_attrs.get("mlflow_run_id")
        if not run_id:
            return None
        run = client.get_run(run_id)
        if run.info.status == "FINISHED" and run.data.tags.get(STATE_TAG) == "COMPLETE":
            return run_id
        if run.info.status == "RUNNING":
            client.set_tag(run_id, STATE_TAG, "FAIL")
            client.set_tag(run_id, "cnnkeras.failure_reason", reason)
            client.set_terminated(run_id, status="FAILED")
        return None


def _recover_journal(study: Any, dead: _DeadTrials) -> int:
    """Journal storage: every RUNNING trial found at start belongs to a dead process (the lock says so)."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study._storage.set_trial_user_attr(trial._trial_id, STALE_ATTR, True)
        study._storage.set_trial_user_attr(trial._trial_id, REASON_ATTR,
                                           "its sweep process died (found RUNNING at the next start); "
                                           "parameters queued again")
        if study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
            dead(study, study._storage.get_trial(trial._trial_id))
    return len(stale)


def _recover_stale(study: Any, storage: str, dead: _DeadTrials) -> int:
    """Fail the trials of dead processes, close their runs, queue them again; returns how many."""
    import optuna

    if is_journal(storage):
        return _recover_journal(study, dead)
    before = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # heartbeats decide; the callback is _DeadTrials
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))) - before


def _parent_run(study: Any, config: ExperimentConfig, storage: str) -> Any:
    from ..tracking import Tracker, flatten

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


# -------------------------------------------------------------------- trials


def _worker_trial(config: ExperimentConfig, storage: str, study_name: str, trial: Any, overrides: list[str],
                  parent_run_id: str | None, slot: int, worker: int, seed: int) -> TrialOutcome:
    """Run one trial in a fresh Python process; a crash there is this trial's failure only."""
    with tempfile.TemporaryDirectory(prefix="cnnkeras-trial-") as tmp:  # mode 0700: the storage URL stays private
        payload = Path(tmp) / "trial.json"
        result = Path(tmp) / "result.json"
        payload.write_text(json.dumps({
            "config": config.to_dict(), "storage": storage, "study": study_name, "trial_id": trial._trial_id,
            "number": trial.number, "overrides": overrides, "parent_run_id": parent_run_id,
            "tracking_uri": config.tracking.uri, "result": str(result), "worker": worker, "sampler_seed": seed,
        }))
        env = dict(os.environ)
        # JAX would otherwise claim 75% of the GPU per process; workers share devices politely.
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        gpus = [g for g in os.environ.get("CNNKERAS_GPUS", "").split(",") if g]
        if gpus:  # one trial per GPU slot
            env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
        process = subprocess.run([sys.executable, "-m", "cnnkeras.studies.worker", str(payload)], env=env)
        if result.exists():
            return TrialOutcome(json.loads(result.read_text()))
        reason = f"worker process died (exit code {process.returncode})"
        return TrialOutcome(state="FAIL", values=None, summary={}, run_id=None, reason=reason)


def _adopted(config: ExperimentConfig, run_id: str) -> TrialOutcome:
    """The outcome of a trial that finished in MLflow before its process or the storage went away."""
    from ..tracking import read_run

    run = read_run(run_id, uri=config.tracking.uri)
    summary = {k: float(v) for k, v in run["metrics"].items()}
    values = [summary.get(o.metric) for o in config.search.objectives]
    if any(v is None or not math.isfinite(v) for v in values):
        return TrialOutcome(state="FAIL", values=None, summary=summary, run_id=run_id,
                            reason="the adopted run has no finite objective value")
    return TrialOutcome(state="COMPLETE", values=values, summary=summary, run_id=run_id,
                        reason=f"result of MLflow run {run_id}, finished before its process or storage failed")


def sweep(
    config: ExperimentConfig | str | os.PathLike[str],
    overrides: Sequence[str] = (),
    *,
    jobs: int | None = None,
    n_trials: int | None = None,
    progress: bool = True,
) -> SweepResult:
    """Run (or resume) the config's sweep until its total number of trials is reached."""
    import optuna


    cfg = config if isinstance(config, ExperimentConfig) else load_config(config, overrides)
    if cfg.search is None:
        raise CnnkerasError("this config has no search: section; add one to sweep (see experiments/*sweep*.yaml)")
    search = cfg.search
    total = n_trials or search.n_trials
    jobs = jobs or search.jobs
    isolation = "process" if jobs > 1 else search.isolation
    storage = storage_for(cfg)
    shown = redact(storage)
    if jobs > 1 and storage.startswith("sqlite"):
        warnings.warn("SQLite storage locks under parallel writers; with --jobs > 1 use a .journal file or "
                      "PostgreSQL (postgresql+psycopg://...)", stacklevel=2)
    if cfg.tracking.enabled:
        from ..tracking import check_tracking, default_tracking_uri

        check_tracking(default_tracking_uri(cfg.tracking.uri))  # seconds, one line: before any set-up
    dead = _DeadTrials(cfg.tracking.uri if cfg.tracking.enabled else None)
    journal_lock = JournalLock(storage).acquire() if is_journal(storage) else None
    try:
        with setup_lock(storage, study_name(cfg), wait_s=search.storage_wait_s):  # one process at a time
            study = load_study(cfg, on_stale=dead)
            worker = claim_worker(study)
            seed = sampler_seed(_base_seed(cfg), worker)
            study.sampler = _sampler(cfg, seed)
            parent = _parent_run(study, cfg, storage) if cfg.tracking.enabled else None
            if parent is None and PARENT_ATTR not in study.user_attrs:
                study.set_user_attr("config", redact_data(cfg.to_dict()))
            elif parent is not None and "config" not in study.user_attrs:
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
    import optuna

    search = cfg.search
    shown = redact(storage)
    done = _count_done(study.get_trials(deepcopy=False))
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
    if console:
        callbacks.insert(0, _TrialLine(console, search))
    if total:
        callbacks.append(_StopAtTotal(total))
    # In-process trials defer Ctrl-C to an epoch boundary (cnnkeras.interrupts); worker
    # processes get the signal themselves.
    try:
        with deferred_interrupts() if isolation != "process" else nullcontext():
            if remaining is None or remaining > 0:
                study.optimize(objective, n_trials=remaining, timeout=search.timeout_s, n_jobs=jobs,
                               catch=(TrialFailed, Exception), callbacks=callbacks)
    except KeyboardInterrupt:
        if parent is not None:
            parent.end("KILLED", "interrupted (Ctrl-C)")
        raise SweepInterrupted(
            f"sweep interrupted: the running trial is FAIL and its MLflow run KILLED. Resume with the same "
            f"command (cnnkeras sweep {cfg._source.file if cfg._source and cfg._source.file else '...'}); "
            f"finished trials are kept in {shown}"
        ) from None
    result = _summarize(study, cfg, storage, parent, elapsed=time.time() - started)
    if parent is not None:
        if result.counts().get("RUNNING"):  # other processes still work on the study: the last one closes it
            parent.set_tags({"cnnkeras.sweep_state": "other sweep processes still running"})
        else:
            parent.set_tags({"cnnkeras.sweep_state": "finished"})
            parent.end("FINISHED")
    if console:
        _print_summary(console, result)
    return result


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
        if _count_done(study.get_trials(deepcopy=False)) >= self.total:
            study.stop()


def _stop_on_interrupt(study: Any, trial: Any) -> None:
    """After a trial: a Ctrl-C pressed while it finished (say, logging artifacts) ends the sweep."""
    raise_if_requested()


class TrialFailed(Exception):
    """A trial that failed (its reason is in the trial's user attributes and the MLflow run)."""


# ------------------------------------------------------------------- results


def _trial_rows(study: Any) -> list[dict[str, Any]]:
    rows = []
    trials = study.get_trials(deepcopy=False)
    stale = _stale_numbers(trials)
    for t in trials:
        rows.append({"number": t.number, "state": t.state.name, "values": t.values, "params": dict(t.params),
                     "stale": t.number in stale, "user_attrs": dict(t.user_attrs)})
    return rows


def _importances(study: Any, config: ExperimentConfig) -> dict[str, dict[str, float]]:
    import optuna
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    out: dict[str, dict[str, float]] = {}
    if len(complete) < 2 or len(config.search.parameters) < 1:
        return out
    targets = {o.metric: (lambda t, i=i: t.values[i]) for i, o in enumerate(config.search.objectives)}
    targets.setdefault("final_gap_accuracy",
                       lambda t: t.user_attrs.get("summary", {}).get("final_gap_accuracy", math.nan))
    for name, target in targets.items():
        try:
            if any(not math.isfinite(target(t)) for t in complete):
                continue
            out[name] = {k: float(v) for k, v in optuna.importance.get_param_importances(
                study, target=target, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=config.seed)).items()}
        except (RuntimeError, ValueError, ZeroDivisionError):
            continue
    return out


def _summarize(study: Any, config: ExperimentConfig, storage: str, parent: Any, *, elapsed: float) -> SweepResult:
    directions = [o.direction for o in config.search.objectives]
    result = SweepResult(study.study_name, redact(storage), parent.run_id if parent else None, directions,
                         trials=_trial_rows(study))
    try:
        best = study.best_trials if len(directions) > 1 else [study.best_trial]
    except ValueError:  # no complete trial
        best = []
    result.best = [{"number": t.number, "values": t.values, "params": dict(t.params),
                    "run_id": t.user_attrs.get("mlflow_run_id")} for t in best]
    result.importances = _importances(study, config)
    if parent is not None:
        _log_to_parent(parent, study, config, result, elapsed)
    return result


def _log_to_parent(parent: Any, study: Any, config: ExperimentConfig, result: SweepResult, elapsed: float) -> None:
    counts = result.counts()
    metrics = {f"trials_{state.lower()}": float(counts.get(state, 0))  # zeros too: a worker's RUNNING ends
               for state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")}
    metrics["sweep_time_s"] = elapsed
    if result.best:
        for i, objective in enumerate(config.search.objectives):
            if len(result.best) == 1:
                metrics[f"best_{objective.metric}" if not objective.metric.startswith("best_") else
                        objective.metric] = result.best[0]["values"][i]
        parent.set_tags({"cnnkeras.best_trial": result.best[0]["number"],
                         "cnnkeras.best_run_id": result.best[0]["run_id"] or "",
                         **{f"best.{k}": v for k, v in result.best[0]["params"].items()}})
    for target, values in result.importances.items():
        for param, value in values.items():
            metrics[f"importance.{target}.{param}"] = value
    parent.log_metrics(metrics)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "sweep.json").write_text(json.dumps({
            "study": result.study_name, "storage": result.storage, "counts": counts, "best": result.best,
            "importances": result.importances, "trials": [{k: v for k, v in t.items() if k != "user_attrs"}
                                                          for t in result.trials]}, indent=1, default=str))
        _optuna_plots(study, config, folder / "plots")
        parent.log_artifacts(folder)


def _optuna_plots(study: Any, config: ExperimentConfig, folder: Path) -> None:
    """Optuna's history, importances, parallel coordinate and contour plots, in one HTML page.

    One page with one copy of plotly.js (about 4 MB), not one file per plot.
    """
    import optuna.visualization as vis

    objectives = config.search.objectives
    target = (lambda t: t.values[0]) if len(objectives) > 1 else None
    name = objectives[0].metric
    plots = {
        "history": lambda: vis.plot_optimization_history(study, target=target, target_name=name),
        "importances": lambda: vis.plot_param_importances(study, target=target, target_name=name),
        "parallel_coordinate": lambda: vis.plot_parallel_coordinate(study, target=target, target_name=name),
        "contour": lambda: vis.plot_contour(study, target=target, target_name=name),
    }
    if len(objectives) > 1:
        plots["pareto_front"] = lambda: vis.plot_pareto_front(study, target_names=[o.metric for o in objectives])
    parts = []
    for plot_name, make in plots.items():
        try:
            fig = make()
        except (ValueError, RuntimeError, ZeroDivisionError, IndexError):
            continue  # too few complete trials for this plot
        fig.update_layout(title=f"{plot_name.replace('_', ' ')} ({study.study_name})")
        parts.append(f'<section id="{plot_name}">' + fig.to_html(full_html=False, include_plotlyjs=not parts)
                     + "</section>")
    if parts:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "optuna.html").write_text(
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>study {study.study_name}</title></head>"
            f"<body>{''.join(parts)}</body></html>", encoding="utf-8")


# --------------------------------------------------------------------- output


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


class _TrialLine:
    """One line per finished trial (an Optuna callback), whatever ended it.

    A callback rather than a print in the objective: it also sees trials that failed
    outside the trial function (a storage error, a worker killed before it reported).
    """

    def __init__(self, console: Any, search: Any):
        self.console, self.search = console, search

    def __call__(self, study: Any, trial: Any) -> None:
        state = trial.state.name
        colour = {"COMPLETE": "green", "PRUNED": "yellow", "FAIL": "red"}.get(state, "dim")
        metric = self.search.objectives[0].metric
        value = (trial.user_attrs.get("summary") or {}).get(metric)
        if state == "COMPLETE" and isinstance(value, float) and math.isfinite(value):
            shown = f"{metric}={value:.4f}"
        else:
            shown = trial.user_attrs.get(REASON_ATTR, "")
        overrides = [f"{k}={_short(v)}" for k, v in trial.params.items()]
        self.console.print(f"trial {trial.number:3d} [{colour}]{state:8s}[/] {redact(shown)}  "
                           f"[dim]{' '.join(overrides)}[/]", highlight=False, soft_wrap=True)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _print_summary(console: Any, result: SweepResult) -> None:
    from rich.table import Table

    table = Table(title=f"study {result.study_name}: best trial(s)", header_style="bold")
    table.add_column("trial", justify="right")
    table.add_column("values", justify="right")
    table.add_column("parameters")
    for best in result.best[:10]:
        table.add_row(str(best["number"]), ", ".join(f"{v:.4f}" for v in best["values"]),
                      "  ".join(f"{k}={_short(v)}" for k, v in best["params"].items()))
    console.print(table)
    console.print(f"trials: {result.counts()}; parent MLflow run {result.parent_run_id}")
    for target, values in result.importances.items():
        ranked = ", ".join(f"{k} {v:.2f}" for k, v in sorted(values.items(), key=lambda kv: -kv[1]))
        console.print(f"importance for {target}: {ranked}")
