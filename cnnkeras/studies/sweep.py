"""``cnnkeras sweep``: set up a study, run the sweep loop, summarize.

:func:`sweep` is the whole command:

1. **Set-up**, one process at a time (a journal's lock, PostgreSQL's advisory lock): the
   study is created or loaded (:mod:`cnnkeras.studies.study`), this process claims its
   index and sampler seed, the sweep's MLflow parent run is created or reopened, trials of
   dead processes are failed and queued again with their runs closed
   (:mod:`cnnkeras.studies.recovery`), and on a journal, runs that no trial refers to are
   adopted or closed.
2. **The loop** (:func:`cnnkeras.studies.scheduler.run_loop`): ask, group, train, tell;
   on a database storage a :class:`~cnnkeras.studies.recovery.HeartbeatWatch` beats for
   this process's trials and takes over dead processes' trials meanwhile.
3. **The end**: the summary (best trials, importances) logged on the parent run, which
   is closed FINISHED by the last process (KILLED on a stop signal).

A stop signal (Ctrl-C, SIGTERM, SIGHUP) ends the running trials KILLED, queues them
again and raises :class:`~cnnkeras.errors.SweepInterrupted`, whose message says how to
resume and whose exit code is the signal's (130, 143, 129).
"""

from __future__ import annotations

import contextlib
import shlex
import time
import warnings
from collections.abc import Callable
from typing import Any

from rich.console import Console

from ..config.schema import ExperimentConfig
from ..errors import CnnkerasError, SweepInterrupted
from ..interrupts import deferred_interrupts, exit_code, interrupt_reason
from ..lazy import lazy_import
from ..tracking import Tracker, check_tracking, default_tracking_uri, flatten, views
from ..tracking.values import redact, redact_data
from .console import SweepDisplay, TrialLine, best_so_far, gap_summary_key
from .executor import Executor, TrialWatch
from .identity import check_same_experiment
from .ledger import Ledger
from .outcome import TrialOutcome
from .recovery import DeadTrials, HeartbeatWatch, reconcile_runs, recover_journal
from .scheduler import FailureStreak, SizeChooser, run_loop
from .storage import PARENT_ATTR, JournalLock, check_journal, claim_worker, is_journal, sampler_seed, setup_lock
from .study import base_seed, make_sampler, open_study, storage_for, study_name
from .summary import SweepResult, count_done, summarize

keras = lazy_import("keras")

__all__ = ["SweepResult", "sweep"]

STUDY_TAG = "cnnkeras.study"
#: The study's MLflow experiment (for links from the landing page).
EXPERIMENT_ATTR = "mlflow_experiment_id"


def sweep(config: ExperimentConfig, *, jobs: int | None = None, n_trials: int | None = None,
          progress: bool | str = True, verbose: bool = False) -> SweepResult:
    """Run (or resume) the config's sweep until its total number of trials is reached.

    ``progress``: True shows a live panel of the running trials on a terminal (one line per
    trial elsewhere, :mod:`cnnkeras.studies.console`); ``"lines"`` one line per trial
    (``cnnkeras sweep -q``); False only the failed trials' lines.

    ``config`` is a validated config (``cnnkeras.sweep`` also takes a path and overrides);
    its ``tracking.uri`` is resolved by the caller (config key, ``--tracking-uri`` or
    ``$MLFLOW_TRACKING_URI``), so every process and clean-up uses the same store. ``verbose``
    prints a failed trial's whole traceback under its line (it is on its MLflow run either way).
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
    tracking_uri = default_tracking_uri(cfg.tracking.uri) if cfg.tracking.enabled else None
    if tracking_uri is not None:
        check_tracking(tracking_uri)  # seconds, one line: before any set-up
    console = Console(stderr=True)
    say = _sayer(console)
    journal_lock = JournalLock(storage).acquire() if is_journal(storage) else None
    try:
        with deferred_interrupts():  # a stop signal during set-up is acted on at the loop's first safe point
            repaired = check_journal(storage, repair=True) if journal_lock is not None else None
            if repaired:  # said even with progress off: the file was changed
                console.print(repaired, style="yellow", highlight=False, markup=False,
                              soft_wrap=not console.is_terminal)
            with setup_lock(storage, study_name(cfg), wait_s=search.storage_wait_s):  # one process at a time
                study, store = open_study(cfg, storage)
                joined = check_same_experiment(study, cfg)  # a study is one experiment
                if joined:
                    say(f"joining study {study.study_name} although this sweep differs from it (search.join: any): "
                        + "; ".join(joined))
                worker = claim_worker(study)
                seed = sampler_seed(base_seed(cfg), worker)
                study.sampler = make_sampler(cfg, seed)
                ledger = Ledger(study, store, worker=worker, seed=seed, max_retries=search.max_retries,
                                notes={"joined_with": "; ".join(joined)} if joined else None)
                dead = DeadTrials(ledger, tracking_uri, search.parameters)
                parent = _parent_run(study, cfg, storage, tracking_uri) if tracking_uri is not None else None
                if "config" not in study.user_attrs:  # the study's first config, read back by `best`
                    study.set_user_attr("config", redact_data(cfg.to_dict()))
                if journal_lock is not None and parent is not None and tracking_uri is not None:
                    adopted, closed = reconcile_runs(ledger, experiment=cfg.tracking.experiment or cfg.name,
                                                     parent_run_id=parent.run_id, parameters=search.parameters,
                                                     tracking_uri=tracking_uri)
                    if adopted or closed:
                        say(f"{adopted + closed} MLflow run(s) had lost their trial's journal record: {adopted} "
                            f"taken back by their trials, {closed} closed FAILED")
                recovered = recover_journal(ledger, dead) if journal_lock is not None else 0
                try:
                    closed = dead.close_left_running(cfg.tracking.experiment or cfg.name,
                                                     parent.run_id if parent is not None else None)
                except Exception as exc:  # noqa: BLE001 - said; the runs it found stay in dead.unclosed, tried again
                    closed = 0
                    say(f"could not close the dead trials' runs left RUNNING ({type(exc).__name__}); tried again "
                        "while the sweep runs")
                if closed:
                    say(f"{closed} dead trial run(s) left RUNNING by an earlier failure closed FAILED")
            return _run(cfg, ledger, dead, parent, storage, total=total, jobs=jobs, isolation=isolation,
                        recovered=recovered, progress=progress, verbose=verbose, console=console, say=say)
    finally:
        if journal_lock is not None:
            journal_lock.release()


def _run(cfg: ExperimentConfig, ledger: Ledger, dead: DeadTrials, parent: Any, storage: str, *, total: int | None,
         jobs: int, isolation: str, recovered: int, progress: bool | str, verbose: bool, console: Console,
         say: Callable[[str], None]) -> SweepResult:
    """The loop of one sweep process, then its summary (see :func:`sweep`)."""
    search = cfg.search
    assert search is not None
    study, shown = ledger.study, redact(storage)
    done = count_done(study.get_trials(deepcopy=False))
    remaining = max(0, total - done) if total else None
    if progress is True:
        console.print(f"study [bold]{study.study_name}[/] ({shown}): {done} trials done, "
                      f"{remaining if remaining is not None else 'unbounded'} to go"
                      + (f", {recovered} interrupted trial(s) queued again" if recovered else "")
                      + (f"; sweep process {ledger.worker} (sampler seed {ledger.seed})" if ledger.worker else ""),
                      highlight=False)
    mode = "failures" if progress is False else "lines" if progress == "lines" or not console.is_terminal else "live"
    line = TrialLine(console, search, failures_only=mode == "failures")
    display = SweepDisplay(console, search, study=study.study_name, total=remaining, done=done,
                           best=best_so_far(study.get_trials(deepcopy=False),
                                            search.objectives[0].direction == "maximize")) if mode == "live" else None
    streak = FailureStreak(search.max_consecutive_failures)

    def told(asked: Any, outcome: TrialOutcome, frozen: Any) -> None:
        streak.add(outcome)
        if display is not None:
            display.told(frozen)
        else:
            line(frozen)
        if verbose and outcome.traceback:
            console.print(outcome.traceback.rstrip(), highlight=False, markup=False, soft_wrap=True, style="dim")

    executor = Executor(cfg, ledger, dead, isolation, parent.run_id if parent else None, study.study_name, told, say,
                        watch=display if display is not None else TrialWatch())
    chooser = SizeChooser(search.cohort, search.cohort_probe, cfg.backend or _backend_name(), say,
                          on_choice=lambda size: parent.set_tags({"cnnkeras.cohort_size": size}) if parent else None)
    watch = None if is_journal(storage) else HeartbeatWatch(ledger, dead, interval_s=search.heartbeat_s,
                                                            stale_after_s=search.stale_after_s).start()
    started = time.time()
    try:
        with display if display is not None else contextlib.nullcontext():
            run_loop(cfg, ledger, executor, total=total, jobs=jobs, chooser=chooser, streak=streak, say=say,
                     resume=_resume_command(cfg))
    except CnnkerasError as exc:  # the stores stayed away, or too many trials failed in a row
        if parent is not None:
            try:
                parent.end("FAILED", str(exc))
            except Exception:  # noqa: BLE001 - the store may be the one that failed
                pass
        raise
    except KeyboardInterrupt as exc:
        if parent is not None:
            parent.end("KILLED", interrupt_reason(exc))
        raise SweepInterrupted(
            f"sweep {interrupt_reason(exc)}: the running trials are FAIL (queued again, not counted) and their "
            f"MLflow runs KILLED. Resume with the same command ({_resume_command(cfg)}); finished trials are kept "
            f"in {shown}", exit_code=exit_code(exc)) from None
    finally:
        if watch is not None:
            watch.stop()
    if dead.unclosed:  # the tracking store failed while a dead trial's run was being closed: a last try
        try:
            dead.close_unclosed()
        except Exception as exc:  # noqa: BLE001 - said; the next sweep process's look closes them
            say(f"{len(dead.unclosed)} dead trial run(s) could not be closed FAILED ({type(exc).__name__}); "
                "the next sweep on this study closes them at its start")
    result = summarize(study, cfg, storage, parent, elapsed=time.time() - started)
    if parent is not None:
        if result.counts().get("RUNNING"):  # other processes still work on the study: the last one closes it
            parent.set_tags({"cnnkeras.sweep_state": "other sweep processes still running"})
        else:
            parent.set_tags({"cnnkeras.sweep_state": "finished"})
            parent.end("FINISHED")
    return result


def _parent_run(study: Any, config: ExperimentConfig, storage: str, tracking_uri: str) -> Any:
    """The sweep's MLflow parent run, created or reopened, and the study's runs table shared on its
    experiment (:func:`cnnkeras.tracking.views.share_sweep_view`: the landing page links it)."""
    tracker = _open_parent(study, config, storage, tracking_uri)
    if study.user_attrs.get(EXPERIMENT_ATTR) != tracker.experiment_id:
        study.set_user_attr(EXPERIMENT_ATTR, tracker.experiment_id)
    assert config.search is not None  # a sweep's config (sweep() refuses one without a search: section)
    objective = config.search.objectives[0]
    try:
        views.share_sweep_view(tracker.experiment_id, study.study_name, objective=objective.metric,
                               maximize=objective.direction == "maximize", gap=gap_summary_key(objective.metric),
                               swept=list(config.search.parameters), uri=tracking_uri)
    except Exception:  # noqa: BLE001 - a user who may not edit the experiment still sweeps; only the link is lost
        pass
    return tracker


def _open_parent(study: Any, config: ExperimentConfig, storage: str, tracking_uri: str) -> Any:
    experiment = config.tracking.experiment or config.name
    parent_id = study.user_attrs.get(PARENT_ATTR)
    if parent_id:
        tracker = Tracker(uri=tracking_uri, experiment=experiment, run_id=parent_id)
        tracker.reopen()
        return tracker
    tracker = Tracker(uri=tracking_uri, experiment=experiment, run_name=f"sweep-{study.study_name}",
                      tags={STUDY_TAG: study.study_name, "cnnkeras.storage": storage, "cnnkeras.kind": "sweep"})
    study.set_user_attr(PARENT_ATTR, tracker.run_id)
    raw = config.to_dict()
    params = {k: v for k, v in flatten(raw).items() if not k.startswith("search.")}
    params.update({f"search.{k}": v for k, v in flatten(raw["search"]).items()})
    tracker.log_params(params)  # values are masked by the tracker (a password in search.storage)
    return tracker


def _sayer(console: Console) -> Callable[[str], None]:
    def say(text: str) -> None:
        # wrapped at the terminal's width on a terminal; one line in a pipe or a log (grep finds it whole)
        console.print(text, style="cyan", highlight=False, markup=False, soft_wrap=not console.is_terminal)
    return say


def _backend_name() -> str:
    return str(keras.backend.backend())


def _resume_command(cfg: ExperimentConfig) -> str:
    """``cnnkeras sweep FILE key=value ...`` with the overrides this sweep was started with."""
    source = cfg._source
    parts = ["cnnkeras", "sweep", source.file if source and source.file else "FILE"]
    return " ".join(shlex.quote(part) for part in parts + list(source.overrides if source else []))
