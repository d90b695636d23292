"""Optuna sweeps, tracked in MLflow, that resume and survive failing trials.

:func:`sweep` is the whole of ``cnnkeras sweep``:

1. The study (name, storage, sampler, pruner, directions) is created or loaded.
   Storage: the config's ``search.storage`` (an RDB URL or a ``.journal`` file),
   by default ``.cnnkeras/<study>.journal`` beside the experiment file.
2. One MLflow parent run per study; its id is kept in the study, so running the
   same command again continues the same study under the same parent run.
3. Trials left RUNNING by a killed process are marked FAIL (their MLflow runs
   FAILED) and their parameters are queued again; they do not count towards the
   total, so the study ends with exactly ``n_trials`` finished trials.
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
import zlib
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..config.schema import ExperimentConfig
from ..errors import CnnkerasError
from ..interrupts import deferred_interrupts, raise_if_requested
from .objective import STATE_TAG, STUDY_TAG, TRIAL_TAG, TrialOutcome, outcome_attrs, run_trial
from .space import trial_overrides

__all__ = ["SweepInterrupted", "SweepResult", "find_study", "load_study", "storage_for", "sweep"]

PARENT_ATTR = "mlflow_parent_run_id"
STALE_ATTR = "stale"  # a trial whose process died; retried, and not counted


class SweepInterrupted(CnnkerasError):
    """Ctrl-C: the current trial is FAIL, its run KILLED; the message says how to resume."""


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


# ------------------------------------------------------------------- storage


def study_name(config: ExperimentConfig) -> str:
    """The config's study name: ``search.study_name``, else the experiment's name."""
    assert config.search is not None
    return config.search.study_name or config.name


def storage_for(config: ExperimentConfig) -> str:
    """The storage URL or journal path of a config's study (the default beside its file)."""
    search = config.search
    assert search is not None
    if search.storage:
        return search.storage
    folder = Path(config._source.file).resolve().parent if config._source and config._source.file else Path.cwd()
    return str(folder / ".cnnkeras" / f"{study_name(config)}.journal")


def _is_journal(storage: str) -> bool:
    return "://" not in storage


def _open_storage(storage: str) -> Any:
    import optuna

    if _is_journal(storage):
        Path(storage).parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(storage))
    # Heartbeats tell a live trial of another process from one whose process died;
    # Optuna fails the dead ones (after the grace period) and _requeue queues them again.
    return optuna.storages.RDBStorage(storage, heartbeat_interval=10, grace_period=60, failed_trial_callback=_requeue)


def _sampler(config: ExperimentConfig) -> Any:
    import optuna

    s = config.search.sampler
    seed = s.seed if s.seed is not None else config.seed
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


def load_study(config: ExperimentConfig) -> Any:
    """Create or load the config's study (created once, before any worker starts)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=study_name(config), storage=_open_storage(storage_for(config)), sampler=_sampler(config),
        pruner=_pruner(config), directions=[o.direction for o in config.search.objectives], load_if_exists=True,
    )


def find_study(target: str, storage: str | None = None) -> tuple[Any, str]:
    """The study named by ``target``: an experiment file with a search: section, or a study name.

    A study name is looked up in ``storage`` (default ``.cnnkeras/<name>.journal``).
    """
    import optuna

    from ..api import load_config

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def open_existing(name: str, where: str, missing: str) -> tuple[Any, str]:
        if _is_journal(where) and not os.path.exists(where):
            raise CnnkerasError(f"{missing} (no {where})")
        try:
            return optuna.load_study(study_name=name, storage=_open_storage(where)), where
        except KeyError:
            raise CnnkerasError(f"{missing} (not in {where})") from None

    if os.path.isfile(target):
        config = load_config(target)
        if config.search is None:
            raise CnnkerasError(f"{target} has no search: section")
        name = study_name(config)
        return open_existing(name, storage_for(config),
                             f"study {name} has not been swept yet; run: cnnkeras sweep {target}")
    return open_existing(target, storage or str(Path(".cnnkeras") / f"{target}.journal"),
                         f"no study named {target!r}; pass the experiment file, or the study's --storage")


# -------------------------------------------------------------- bookkeeping


@contextmanager
def _study_lock(storage: str, name: str) -> Iterator[None]:
    """Serialize study set-up (tables, study, parent run, stale trials) across processes.

    On PostgreSQL a session advisory lock keyed by the study name: sweep processes
    started at the same instant would otherwise race to create the schema and two
    parent runs. Other storages belong to one process at a time (journal) or warn
    under parallel writers (SQLite), so they take no lock.
    """
    if not storage.startswith("postgresql"):
        yield
        return
    import sqlalchemy

    key = zlib.crc32(f"cnnkeras-study:{name}".encode())
    engine = sqlalchemy.create_engine(storage, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        engine.dispose()


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


def _requeue(study: Any, trial: Any) -> None:
    """A trial whose process died: its parameters are queued again (the retry names it in ``retry_of``).

    Also Optuna's ``failed_trial_callback`` for RDB storages, called once the trial is already FAIL.
    """
    if trial.params:
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)


def _recover_stale(study: Any, client: Any, parent_run_id: str | None) -> int:
    """Mark trials left RUNNING by a dead process FAIL, queue their parameters again, fail their runs.

    A journal file belongs to one ``cnnkeras sweep`` process at a time, so every
    RUNNING trial found at start is stale. An RDB storage (PostgreSQL) can be shared
    by several processes: there only trials whose heartbeat stopped more than the
    grace period ago are stale (Optuna's heartbeats), and live ones are left alone.
    """
    import optuna
    from optuna.trial import TrialState

    rdb = getattr(study._storage, "_backend", study._storage)  # Optuna wraps RDB storages in a cache
    if isinstance(rdb, optuna.storages.RDBStorage):
        stale_ids = set(rdb._get_stale_trial_ids(study._study_id))
        stale = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t._trial_id in stale_ids]
    else:
        stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study._storage.set_trial_user_attr(trial._trial_id, STALE_ATTR, True)
        if study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
            _requeue(study, trial)
    if parent_run_id is not None and stale:
        for run in client.search_runs([client.get_run(parent_run_id).info.experiment_id],
                                      filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}' "
                                                    "and attributes.status = 'RUNNING'"):
            if run.data.tags.get(TRIAL_TAG) not in {str(t.number) for t in stale}:
                continue
            client.set_tag(run.info.run_id, STATE_TAG, "FAIL")
            client.set_tag(run.info.run_id, "cnnkeras.failure_reason",
                           "the sweep process died during this trial; its parameters were queued again")
            client.set_terminated(run.info.run_id, status="FAILED")
    return len(stale)


def _parent_run(study: Any, config: ExperimentConfig, storage: str) -> Any:
    from ..tracking import Tracker

    experiment = config.tracking.experiment or config.name
    parent_id = study.user_attrs.get(PARENT_ATTR)
    if parent_id:
        tracker = Tracker(uri=config.tracking.uri, experiment=experiment, run_id=parent_id)
        tracker.client.update_run(parent_id, status="RUNNING")
        return tracker
    tracker = Tracker(uri=config.tracking.uri, experiment=experiment, run_name=f"sweep-{study.study_name}",
                      tags={STUDY_TAG: study.study_name, "cnnkeras.storage": storage, "cnnkeras.kind": "sweep"})
    study.set_user_attr(PARENT_ATTR, tracker.run_id)
    study.set_user_attr("config", config.to_dict())
    from ..tracking import flatten

    params = {k: v for k, v in flatten(config.to_dict()).items() if not k.startswith("search.")}
    params.update({f"search.{k}": v for k, v in flatten(config.to_dict()["search"]).items()})
    tracker.log_params(params)
    return tracker


# -------------------------------------------------------------------- trials


def _worker_trial(config: ExperimentConfig, storage: str, study_name: str, trial: Any, overrides: list[str],
                  parent_run_id: str | None, slot: int) -> TrialOutcome:
    """Run one trial in a fresh Python process; a crash there is this trial's failure only."""
    with tempfile.TemporaryDirectory(prefix="cnnkeras-trial-") as tmp:
        payload = Path(tmp) / "trial.json"
        result = Path(tmp) / "result.json"
        payload.write_text(json.dumps({
            "config": config.to_dict(), "storage": storage, "study": study_name, "trial_id": trial._trial_id,
            "number": trial.number, "overrides": overrides, "parent_run_id": parent_run_id,
            "tracking_uri": config.tracking.uri, "result": str(result),
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
    from optuna.trial import TrialState

    from ..api import load_config

    cfg = config if isinstance(config, ExperimentConfig) else load_config(config, overrides)
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
    with _study_lock(storage, study_name(cfg)):  # one process at a time sets a study up
        study = load_study(cfg)
        parent = _parent_run(study, cfg, storage) if cfg.tracking.enabled else None
        if parent is None and PARENT_ATTR not in study.user_attrs:
            study.set_user_attr("config", cfg.to_dict())
        recovered = _recover_stale(study, parent.client if parent else None, parent.run_id if parent else None)
    done = _count_done(study.get_trials(deepcopy=False))
    remaining = max(0, total - done) if total else None
    console = _console() if progress else None
    if console:
        console.print(f"study [bold]{study.study_name}[/] ({storage}): {done} trials done, "
                      f"{remaining if remaining is not None else 'unbounded'} to go"
                      + (f", {recovered} interrupted trial(s) queued again" if recovered else ""))
    slots = iter(range(10**9))
    lock = threading.Lock()

    def objective(trial: Any) -> Any:
        with lock:
            slot = next(slots)
        trial_overrides_ = trial_overrides(trial, search.parameters)
        parent_id = parent.run_id if parent else None
        if isolation == "process":
            outcome = _worker_trial(cfg, storage, study.study_name, trial, trial_overrides_, parent_id, slot)
        else:
            outcome = run_trial(cfg, trial, parent_run_id=parent_id, study_name=study.study_name,
                                overrides=trial_overrides_)
        for key, value in outcome_attrs(outcome).items():
            trial.set_user_attr(key, value)
        if console:
            _print_trial(console, trial.number, outcome, trial_overrides_, search)
        if outcome["state"] == "PRUNED":
            raise optuna.TrialPruned(outcome.get("reason"))
        if outcome["state"] == "FAIL":
            raise TrialFailed(outcome.get("reason") or "failed")
        values = outcome["values"]
        return values[0] if len(values) == 1 else values

    started = time.time()
    callbacks: list[Any] = [_stop_on_interrupt] + ([_StopAtTotal(total)] if total else [])
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
            f"finished trials are kept in {storage}"
        ) from None
    result = _summarize(study, cfg, storage, parent, elapsed=time.time() - started)
    if parent is not None:
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
    result = SweepResult(study.study_name, storage, parent.run_id if parent else None, directions,
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
    metrics = {f"trials_{state.lower()}": float(n) for state, n in counts.items()}
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


def _print_trial(console: Any, number: int, outcome: TrialOutcome, overrides: list[str], search: Any) -> None:
    colour = {"COMPLETE": "green", "PRUNED": "yellow", "FAIL": "red"}[outcome["state"]]
    metric = search.objectives[0].metric
    value = (outcome.get("summary") or {}).get(metric)
    shown = f"{metric}={value:.4f}" if isinstance(value, float) and math.isfinite(value) else outcome.get("reason", "")
    console.print(f"trial {number:3d} [{colour}]{outcome['state']:8s}[/] {shown}  "
                  f"[dim]{' '.join(overrides)}[/]", highlight=False, soft_wrap=True)


def _print_summary(console: Any, result: SweepResult) -> None:
    from rich.table import Table

    table = Table(title=f"study {result.study_name}: best trial(s)", header_style="bold")
    table.add_column("trial", justify="right")
    table.add_column("values", justify="right")
    table.add_column("parameters")
    for best in result.best[:10]:
        table.add_row(str(best["number"]), ", ".join(f"{v:.4f}" for v in best["values"]),
                      "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                for k, v in best["params"].items()))
    console.print(table)
    console.print(f"trials: {result.counts()}; parent MLflow run {result.parent_run_id}")
    for target, values in result.importances.items():
        ranked = ", ".join(f"{k} {v:.2f}" for k, v in sorted(values.items(), key=lambda kv: -kv[1]))
        console.print(f"importance for {target}: {ranked}")
