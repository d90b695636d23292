"""The trial loop of a sweep with ``search.cohort: K`` (see :mod:`cnnkeras.cohort`).

Optuna's ``study.optimize`` runs one trial per call; a cohort needs K trials at
once, so this loop uses Optuna's ask-and-tell interface:

1. ask for K trials (queued ones first: a retried trial keeps its parameters), each
   sampling its values; a trial whose finished run is adopted is told at once;
2. group them by what their training loop shares (batch size, epochs, data, seed);
   groups that differ are separate cohorts, and the sweep says why in one line;
3. run each group as a cohort, in this process or in a worker process
   (``isolation: process``, implied by ``jobs > 1``: each job runs its own cohorts),
   while every asked trial sends heartbeats to a database storage;
4. tell Optuna each member's outcome (COMPLETE, PRUNED or FAIL) and print its line.

The guarantees of :mod:`cnnkeras.studies.loop` hold per member: an interrupted or
killed cohort's trials are FAIL, not counted, and queued again; the study ends with
exactly the total. Before the first cohort, the cohort size is chosen by a short
measurement (:mod:`cnnkeras.cohort_probe`) unless ``cohort_probe: false``.
"""

from __future__ import annotations

import threading
import time
import warnings
from contextlib import ExitStack
from typing import Any, Callable, Sequence

import optuna
from optuna.storages._heartbeat import get_heartbeat_thread, is_heartbeat_enabled  # as study.optimize

from ..cohort import group_by_cohort, split_reason
from ..config.schema import ExperimentConfig
from ..interrupts import raise_if_requested
from ..tracking.values import redact
from .objective import TrialOutcome, outcome_attrs, trial_config
from .space import trial_overrides
from .storage import REASON_ATTR, STALE_ATTR
from .summary import count_done

__all__ = ["optimize_cohorts"]

State = optuna.trial.TrialState


class _Budget:
    """How many more trials this process may ask for, shared by its job threads."""

    def __init__(self, study: Any, total: int | None, timeout_s: float | None):
        self.study, self.total, self.deadline = study, total, (time.time() + timeout_s) if timeout_s else None
        self.lock = threading.Lock()
        self.asked = 0  # asked by this process and not told yet
        self.stopped = False

    def take(self, want: int) -> int:
        with self.lock:
            if self.stopped or (self.deadline is not None and time.time() >= self.deadline):
                return 0
            if self.total is None:
                n = want
            else:
                n = min(want, self.total - count_done(self.study.get_trials(deepcopy=False)) - self.asked)
            n = max(0, n)
            self.asked += n
            return n

    def give_back(self, n: int) -> None:
        with self.lock:
            self.asked -= n


def _ask(study: Any, n: int, *, worker: int, seed: int, parameters: Any) -> list[tuple[Any, list[str]]]:
    asked = []
    for _ in range(n):
        trial = study.ask()
        trial.set_user_attr("worker", worker)
        trial.set_user_attr("sampler_seed", seed)
        asked.append((trial, trial_overrides(trial, parameters)))
    return asked


def _tell(study: Any, trial: Any, outcome: TrialOutcome, callbacks: Sequence[Callable[[Any, Any], None]]) -> None:
    for key, value in outcome_attrs(outcome).items():
        trial.set_user_attr(key, value)
    if outcome["state"] == "PRUNED":
        frozen = study.tell(trial, state=State.PRUNED)
    elif outcome["state"] == "FAIL":
        if outcome.get("reason"):
            trial.set_user_attr(REASON_ATTR, redact(outcome["reason"])[:500])
        frozen = study.tell(trial, state=State.FAIL)
    else:
        values = outcome["values"]
        frozen = study.tell(trial, values[0] if len(values) == 1 else values)
    for callback in callbacks:
        callback(study, frozen)


def _interrupted(study: Any, trials: Sequence[Any]) -> None:
    """Ctrl-C: the cohort's unfinished trials do not count, and run again on resume."""
    for trial in trials:
        if study._storage.get_trial(trial._trial_id).state != State.RUNNING:  # told already
            continue
        trial.set_user_attr(STALE_ATTR, True)
        trial.set_user_attr(REASON_ATTR, "interrupted (Ctrl-C); parameters queued again")
        if trial.params:
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
        study.tell(trial, state=State.FAIL)


def optimize_cohorts(
    cfg: ExperimentConfig,
    study: Any,
    *,
    worker: int,
    seed: int,
    total: int | None,
    jobs: int,
    run_group: Callable[[list[Any], list[list[str]]], list[TrialOutcome]],
    adopt: Callable[[str], TrialOutcome],
    choose_size: Callable[[list[ExperimentConfig]], int],
    callbacks: Sequence[Callable[[Any, Any], None]],
    say: Callable[[str], None],
) -> None:
    """Ask, group, train and tell cohorts until the total (or the timeout) is reached.

    ``run_group(trials, overrides)`` trains one group as a cohort (in this process or a
    worker) and returns the outcomes; ``choose_size(configs)`` picks the cohort size from
    the first group; ``adopt(run_id)`` is the outcome of a retried trial whose run had
    finished. ``callbacks`` are Optuna-style ``(study, frozen_trial)`` callbacks.
    """
    search = cfg.search
    assert search is not None
    budget = _Budget(study, total, search.timeout_s)
    size: list[int] = []  # chosen once, by the first thread to get there
    size_lock = threading.Lock()
    errors: list[BaseException] = []

    def one_round() -> bool:
        if is_heartbeat_enabled(study._storage):  # as study.optimize does before each trial: dead workers' trials
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
        want = size[0] if size else search.cohort
        n = budget.take(want)
        if n == 0:
            return False
        asked = _ask(study, n, worker=worker, seed=seed, parameters=search.parameters)
        trials = [t for t, _ in asked]
        try:
            with ExitStack() as beats:
                for trial in trials:
                    beats.enter_context(get_heartbeat_thread(trial._trial_id, study._storage))
                pending = []
                for trial, overrides in asked:
                    run_id = trial.user_attrs.get("adopt_run_id")
                    if run_id:
                        _tell(study, trial, adopt(run_id), callbacks)
                    else:
                        pending.append((trial, overrides))
                _run_groups(pending)
        except KeyboardInterrupt:
            _interrupted(study, trials)
            raise
        finally:
            budget.give_back(n)
        raise_if_requested()
        return True

    def _run_groups(pending: list[tuple[Any, list[str]]]) -> None:
        if not pending:
            return
        configs, ready = [], []
        for trial, overrides in pending:
            try:
                configs.append(trial_config(cfg, overrides, number=trial.number))
                ready.append((trial, overrides))
            except Exception as exc:  # a sampled combination the config refuses: this trial fails
                _tell(study, trial, TrialOutcome(state="FAIL", values=None, summary={}, run_id=None,
                                                 reason=f"{type(exc).__name__}: {exc}"), callbacks)
        groups = group_by_cohort(configs)
        if len(groups) > 1:
            numbers = ", ".join(f"{len(g)}" for g in groups)
            say(f"trials {ready[0][0].number}-{ready[-1][0].number}: {len(groups)} cohorts ({numbers} trials), "
                f"since they differ in {split_reason(configs, groups)}")
        for group in groups:
            with size_lock:
                if not size:
                    size.append(choose_size([configs[i] for i in group]))
            for start in range(0, len(group), size[0]):
                members = [ready[i] for i in group[start:start + size[0]]]
                outcomes = run_group([t for t, _ in members], [o for _, o in members])
                for (trial, _), outcome in zip(members, outcomes):
                    _tell(study, trial, outcome, callbacks)

    def loop() -> None:
        try:
            while one_round():
                pass
        except BaseException as exc:  # handed to the main thread
            budget.stopped = True
            errors.append(exc)

    if jobs <= 1:
        while one_round():
            pass
        return
    threads = [threading.Thread(target=loop, name=f"cnnkeras-cohorts-{i}", daemon=True) for i in range(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)
    if errors:
        raise errors[0]
