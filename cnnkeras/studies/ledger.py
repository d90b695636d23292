"""The one place a sweep process writes trial state to Optuna: ask, report, tell, queue again.

Every write goes through Optuna's public API: ``study.ask``/``tell``/``enqueue_trial``, a
trial's ``report``/``should_prune``/``set_user_attr``, and for trials another (dead)
process left behind, the storage's documented ``BaseStorage`` methods, addressed by the
trial's number (``get_trial_id_from_study_id_trial_number``). The storage object is the
one this process opened (:mod:`cnnkeras.studies.storage`), not a study's private handle.

What the attributes on a trial mean:

- ``worker``, ``sampler_seed``: which sweep process asked for it, with which sampler seed;
- ``mlflow_run_id``: its MLflow run, recorded as soon as the run exists;
- ``heartbeat``: a counter its process raises every ``search.heartbeat_s`` (database storages);
- ``stale``: its process died or was stopped: it is FAIL, not counted, and queued again;
- ``retry_of``: the number of the trial it repeats (that one is then not counted either);
- ``retries``: how many times its parameters' process died before (``search.max_retries``);
- ``adopt_run_id``: a retry whose predecessor's run had finished: its result is taken, not retrained;
- ``reason``: why it failed, in one line; ``summary``: its run's summary metrics.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from ..tracking.values import redact
from .outcome import TrialOutcome, TrialState
from .space import trial_overrides

__all__ = ["AskedTrial", "Ledger", "TrialOutcome", "TrialState", "attr_names"]

RUN_ATTR = "mlflow_run_id"
STALE_ATTR = "stale"
REASON_ATTR = "reason"
RETRY_ATTR = "retry_of"
RETRIES_ATTR = "retries"
ADOPT_ATTR = "adopt_run_id"
HEARTBEAT_ATTR = "heartbeat"
SUMMARY_ATTR = "summary"
WORKER_ATTR = "worker"
SEED_ATTR = "sampler_seed"

attr_names = (RUN_ATTR, STALE_ATTR, REASON_ATTR, RETRY_ATTR, RETRIES_ATTR, ADOPT_ATTR, HEARTBEAT_ATTR, SUMMARY_ATTR,
              WORKER_ATTR, SEED_ATTR)

State = optuna.trial.TrialState


@dataclass
class AskedTrial:
    """A trial this process asked for: Optuna's trial, its number and its sampled overrides."""

    trial: Any
    number: int
    overrides: list[str]
    run_id: str | None = None

    @property
    def adopt_run_id(self) -> str | None:
        return self.trial.user_attrs.get(ADOPT_ATTR)


class Ledger:
    """A sweep process's writes to one study (thread-safe: job threads share it).

    Args:
        study: The loaded study.
        storage: The storage object this process opened the study with.
        worker, seed: This process's index in the study and its sampler seed.
        max_retries: How often a trial whose process died is queued again.
        notes: User attributes set on every trial asked (``joined_with``: how this sweep differs).
    """

    def __init__(self, study: Any, storage: Any, *, worker: int, seed: int, max_retries: int,
                 notes: Mapping[str, Any] | None = None):
        self.study, self.storage = study, storage
        self.worker, self.seed, self.max_retries = worker, seed, max_retries
        self.notes = dict(notes or {})  # attributes set on every trial this process asks for
        self.study_id = storage.get_study_id_from_name(study.study_name)
        self._lock = threading.RLock()
        self._beats: dict[int, int] = {}  # number -> heartbeat count, for this process's running trials
        self.superseded: set[int] = set()  # trials another process took as dead while this one ran them

    # ------------------------------------------------------------------ asking

    def ask(self, n: int, parameters: Mapping[str, Any]) -> list[AskedTrial]:
        """Ask for ``n`` trials (queued ones first), each with its sampled overrides."""
        asked = []
        with self._lock:
            for _ in range(n):
                trial = self.study.ask()
                trial.set_user_attr(WORKER_ATTR, self.worker)
                trial.set_user_attr(SEED_ATTR, self.seed)
                for key, value in self.notes.items():
                    trial.set_user_attr(key, value)
                self._beats[trial.number] = 0
                asked.append(AskedTrial(trial, trial.number, trial_overrides(trial, parameters)))
        return asked

    def record_run(self, asked: AskedTrial, run_id: str | None) -> None:
        """The trial's MLflow run exists: store its id at once (whoever finds the trial dead closes it)."""
        asked.run_id = run_id
        if run_id:
            asked.trial.set_user_attr(RUN_ATTR, run_id)

    def beat(self) -> None:
        """Raise the heartbeat of every trial this process is running (database storages)."""
        with self._lock:
            numbers = list(self._beats)
        for number in numbers:
            count = self._beats.get(number)
            if count is None:
                continue
            try:
                self.storage.set_trial_user_attr(self._trial_id(number), HEARTBEAT_ATTR, count + 1)
                self._beats[number] = count + 1
            except optuna.exceptions.UpdateFinishedTrialError:
                self._beats.pop(number, None)

    def own(self, number: int) -> bool:
        """Whether ``number`` is a trial this process is running."""
        return number in self._beats

    # ---------------------------------------------------------------- pruning

    def report(self, asked: AskedTrial, step: int, value: float) -> bool:
        """Report one epoch's value; True when the pruner says stop."""
        if not math.isfinite(value):
            return False
        asked.trial.report(float(value), step)
        return bool(asked.trial.should_prune())

    def replay(self, asked: AskedTrial, values: Sequence[float | None]) -> int | None:
        """Report a finished member's epochs in order, as it would have alone; the epoch it is pruned at."""
        for step, value in enumerate(values, start=1):
            if value is not None and self.report(asked, step, value):
                return step
        return None

    # ---------------------------------------------------------------- telling

    def tell(self, asked: AskedTrial, outcome: TrialOutcome) -> Any:
        """The one place a trial's ending is told to Optuna (its attributes first); the frozen trial.

        If another process took the trial as dead meanwhile (its heartbeats stalled), the trial is
        already FAIL and queued again: it stays so, and :attr:`superseded` names it, so that its
        run is closed as what it is (:class:`~cnnkeras.studies.executor.LedgerChannel`).
        """
        trial = asked.trial
        with self._lock:
            self._beats.pop(asked.number, None)
        try:
            trial.set_user_attr(RUN_ATTR, outcome.run_id or asked.run_id)
            if outcome.reason:
                trial.set_user_attr(REASON_ATTR, redact(outcome.reason)[:500])
            trial.set_user_attr(SUMMARY_ATTR, {k: v for k, v in outcome.summary.items()
                                               if isinstance(v, float) and math.isfinite(v)})
        except optuna.exceptions.UpdateFinishedTrialError:
            self.superseded.add(asked.number)
            return self.frozen(asked.number)
        if outcome.state is TrialState.PRUNED:
            self.study.tell(trial, state=State.PRUNED, skip_if_finished=True)
        elif outcome.state is TrialState.FAIL:
            self.study.tell(trial, state=State.FAIL, skip_if_finished=True)
        else:
            values = outcome.values or []
            self.study.tell(trial, values[0] if len(values) == 1 else values, skip_if_finished=True)
        frozen = self.frozen(asked.number)
        if frozen.user_attrs.get(STALE_ATTR) and outcome.state is not TrialState.FAIL:
            self.superseded.add(asked.number)
        return frozen

    def interrupted(self, asked: AskedTrial, reason: str) -> None:
        """Set aside: stopped by a signal, or its runs could not be opened. Not the trial's fault: FAIL, not
        counted, queued again (no retry used)."""
        if self.frozen(asked.number).state != State.RUNNING:
            return  # told already
        trial = asked.trial
        trial.set_user_attr(STALE_ATTR, True)
        trial.set_user_attr(REASON_ATTR, f"{reason}; parameters queued again")
        self.requeue(self.frozen(asked.number), count_retry=False)
        with self._lock:
            self._beats.pop(asked.number, None)
        self.study.tell(trial, state=State.FAIL, skip_if_finished=True)

    # ------------------------------------------------ other processes' trials

    def fail_dead(self, number: int, reason: str, *, adopt: bool = False) -> tuple[Any, bool] | None:
        """Fail a trial whose process died; returns ``(frozen trial, queue again?)``, or None when
        another process failed it first.

        Under ``search.max_retries`` deaths (or when its finished run is to be ``adopt``-ed) it
        is marked stale: not counted, its parameters to be queued again. Past the limit it stays
        a counted FAIL whose reason says so.
        """
        trial_id = self._trial_id(number)
        frozen = self.storage.get_trial(trial_id)
        if frozen.state != State.RUNNING:
            return None
        again = adopt or int(frozen.user_attrs.get(RETRIES_ATTR, 0)) < self.max_retries
        if adopt:
            reason = f"{reason}; its MLflow run had finished: its result is adopted by a retry"
        elif again:
            reason = f"{reason}; parameters queued again"
        else:
            reason = (f"{reason}; its process died on each of its {self.max_retries + 1} tries, so it is not "
                      f"queued again (search.max_retries: {self.max_retries})")
        try:
            self.storage.set_trial_user_attr(trial_id, REASON_ATTR, reason)
            if again:
                self.storage.set_trial_user_attr(trial_id, STALE_ATTR, True)
            self.storage.set_trial_state_values(trial_id, State.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            return None  # another process failed it first
        return self.storage.get_trial(trial_id), again

    def attach_run(self, number: int, run_id: str) -> None:
        """Store a RUNNING trial's run id again (its record was lost with a journal's torn tail)."""
        self.storage.set_trial_user_attr(self._trial_id(number), RUN_ATTR, run_id)

    def requeue(self, frozen: Any, *, count_retry: bool = True, adopt_run_id: str | None = None,
                params: Mapping[str, Any] | None = None) -> None:
        """The one place a trial's parameters are queued again (``retry_of`` keeps the original uncounted)."""
        params = params if params is not None else frozen.params
        if not params:
            return  # it died before sampling anything: nothing to repeat
        retries = int(frozen.user_attrs.get(RETRIES_ATTR, 0)) + (1 if count_retry else 0)
        attrs: dict[str, Any] = {RETRY_ATTR: frozen.number, RETRIES_ATTR: retries}
        if adopt_run_id:
            attrs[ADOPT_ATTR] = adopt_run_id
        self.study.enqueue_trial(dict(params), user_attrs=attrs, skip_if_exists=False)

    # ----------------------------------------------------------------- reading

    def frozen(self, number: int) -> Any:
        return self.storage.get_trial(self._trial_id(number))

    def running(self) -> list[Any]:
        return self.study.get_trials(deepcopy=False, states=(State.RUNNING,))

    def _trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)
