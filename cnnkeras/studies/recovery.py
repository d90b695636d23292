"""Trials whose process died, and keeping Optuna and MLflow in agreement about every trial.

A sweep process can die at any instruction (``kill -9``, the OOM killer, a power cut), and
a journal file can lose its last, half-written record. Whatever happened, the next process
that looks leaves the study and the MLflow runs agreeing:

- **Dead trials** (:class:`DeadTrials`): the trial is FAIL with its reason; its MLflow run,
  if still RUNNING, is closed FAILED with the same reason; its parameters are queued again
  (``retry_of``; at most ``search.max_retries`` deaths) -- unless its run had in fact
  finished (the process died between MLflow and Optuna), in which case the retry adopts
  that run's result instead of training again.
- **Who is dead**: on a journal, every RUNNING trial found at start (the journal lock says
  no other process uses it); on a database, a trial whose heartbeat stopped for
  ``search.stale_after_s`` (:class:`HeartbeatWatch`, run by every sweep process, counted
  on each process's own clock so that machines need not agree on the time).
- **Orphaned runs** (:func:`reconcile_runs`, journals only): a child run of the sweep that
  no trial refers to (its record was cut off with a torn journal) is adopted when it had
  finished, and closed FAILED when it was left RUNNING.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import optuna

from ..tracking import Tracker, iter_runs, read_run
from .ledger import RUN_ATTR, STALE_ATTR, Ledger
from .outcome import RUN_NAME_TAG, TrialOutcome, TrialState, trial_run_name
from .space import values_from_params

__all__ = ["DeadTrials", "HeartbeatWatch", "adopted_outcome", "reconcile_runs", "recover_journal"]

STATE_TAG = "cnnkeras.trial_state"
STUDY_TAG = "cnnkeras.study"
TRIAL_TAG = "cnnkeras.trial_number"
ORPHAN_TAG = "cnnkeras.orphaned"

#: The reason given to a trial found RUNNING when a journal's next sweep starts.
JOURNAL_DEAD = "its sweep process died (found RUNNING at the next start)"


class DeadTrials:
    """Fail a dead process's trial, close its MLflow run, and queue it again (or adopt its result).

    Args:
        ledger: The study's ledger (this process's writes).
        tracking_uri: The resolved MLflow tracking URI, or None when tracking is off.
        parameters: The search space (to read a lost trial's parameters back from its run).
    """

    def __init__(self, ledger: Ledger, tracking_uri: str | None, parameters: Any = None):
        self.ledger, self.tracking_uri, self.parameters = ledger, tracking_uri, parameters
        self.unclosed: dict[str, str] = {}  # run id -> reason: runs whose closing failed, tried again

    def __call__(self, number: int, reason: str) -> bool:
        """Handle trial ``number``; False when another process did first.

        Optuna first (FAIL, then the retry queued), MLflow after: a tracking store that fails
        now loses neither the retry nor the run's closing, which is tried again on each
        :meth:`close_unclosed` (the heartbeat watch's next look).
        """
        frozen = self.ledger.frozen(number)
        if frozen.state.name != "RUNNING":
            return False
        finished = self.finished_run(frozen.user_attrs.get(RUN_ATTR))
        failed = self.ledger.fail_dead(number, reason, adopt=finished is not None)
        if failed is None:
            return False
        frozen, again = failed
        if again:
            params = frozen.params
            if not params and finished is not None and self.parameters is not None:  # its params' record was lost
                params = values_from_params(read_run(finished, uri=self.tracking_uri)["params"], self.parameters)
            self.ledger.requeue(frozen, count_retry=finished is None, adopt_run_id=finished, params=params)
        run_id = frozen.user_attrs.get(RUN_ATTR)
        if finished is None and run_id:
            self.unclosed[run_id] = frozen.user_attrs.get("reason") or reason
            self.close_unclosed()
        return True

    def close_left_running(self, experiment: str, parent_run_id: str | None) -> int:
        """At a sweep's start: runs of trials failed as dead that are still RUNNING (a process died, or
        the tracking store failed, before it closed them) are closed FAILED; how many. One search
        for the sweep's RUNNING child runs (as :func:`reconcile_runs`), matched against the dead trials."""
        if self.tracking_uri is None or parent_run_id is None:
            return 0
        running = {run.info.run_id for run in iter_runs(
            experiment, uri=self.tracking_uri,
            filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}' and attributes.status = 'RUNNING'")}
        for trial in self.ledger.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)):
            run_id = trial.user_attrs.get(RUN_ATTR)
            if trial.user_attrs.get(STALE_ATTR) and run_id in running:
                self.unclosed.setdefault(run_id, trial.user_attrs.get("reason") or "its sweep process died")
        left = len(self.unclosed)
        self.close_unclosed()
        return left

    def close_unclosed(self) -> None:
        """Close the dead trials' runs not closed yet (the tracking store failed before); raises the
        first failure, and keeps the runs it could not close for the next try."""
        for run_id, reason in list(self.unclosed.items()):
            self.close_run(run_id, reason)
            del self.unclosed[run_id]

    def finished_run(self, run_id: str | None) -> str | None:
        """``run_id`` when its run had finished COMPLETE or PRUNED (its result can be adopted)."""
        if not run_id or self.tracking_uri is None:
            return None
        run = Tracker.attach(run_id, uri=self.tracking_uri).client.get_run(run_id)
        if run.info.status == "FINISHED" and run.data.tags.get(STATE_TAG) in ("COMPLETE", "PRUNED"):
            return run_id
        return None

    def close_run(self, run_id: str | None, reason: str, *, force: bool = False) -> None:
        """Close the run FAILED with ``reason`` if it is still RUNNING (or, ``force``, whatever it is: a run
        whose trial another process took as dead while it was in fact alive)."""
        if not run_id or self.tracking_uri is None:
            return
        tracker = Tracker.attach(run_id, uri=self.tracking_uri)
        run = tracker.client.get_run(run_id)
        if force or run.info.status == "RUNNING":
            number = run.data.tags.get(TRIAL_TAG)
            named = {RUN_NAME_TAG: trial_run_name(int(number), "FAIL")} if number and number.isdigit() else {}
            tracker.set_tags({STATE_TAG: "FAIL", **named})
            tracker.end("FAILED", reason)


def recover_journal(ledger: Ledger, dead: DeadTrials) -> int:
    """A journal: every RUNNING trial at start belongs to a dead process (the lock says so)."""
    return sum(dead(t.number, JOURNAL_DEAD) for t in ledger.running())


def adopted_outcome(run_id: str, objectives: list[str], tracking_uri: str | None, *, number: int) -> TrialOutcome:
    """The outcome of trial ``number``, which adopts a run that finished before its process (or a journal
    record) was lost; the run is tagged with its new trial's number (and the one it came from)."""
    if tracking_uri is not None:
        tracker = Tracker.attach(run_id, uri=tracking_uri)
        old = tracker.client.get_run(run_id).data.tags.get(TRIAL_TAG)
        tracker.set_tags({TRIAL_TAG: number, "cnnkeras.adopted_from_trial": old or ""})
    run = read_run(run_id, uri=tracking_uri)
    summary = {k: float(v) for k, v in run["metrics"].items()}
    pruned = run["tags"].get(STATE_TAG) == "PRUNED"
    values = [summary.get(metric) for metric in objectives]
    reason = f"result of MLflow run {run_id}, finished before its process or storage failed"
    if pruned:
        return TrialOutcome(state=TrialState.PRUNED, summary=summary, run_id=run_id, reason=reason)
    if any(v is None or not math.isfinite(v) for v in values):
        return TrialOutcome.failed("the adopted run has no finite objective value", run_id)
    return TrialOutcome(state=TrialState.COMPLETE, values=[float(v) for v in values if v is not None],
                        summary=summary, run_id=run_id, reason=reason)


def reconcile_runs(ledger: Ledger, *, experiment: str, parent_run_id: str, parameters: Any,
                   tracking_uri: str) -> tuple[int, int]:
    """Journals, before dead trials are handled: child runs of the sweep that no trial refers to.

    A crash can cut a journal's last records off, such as the one that stored a trial's run
    id, or the trial itself. Each child run no trial refers to is matched by its trial
    number tag:

    - its trial is still RUNNING without a run id: the run id is stored on it again, and the
      trial is then handled as any dead trial (its finished result adopted, or its run closed);
    - its trial is gone: a finished COMPLETE or PRUNED run is adopted by a new trial with its
      parameters; a RUNNING one is closed FAILED and its parameters queued again.

    Returns ``(adopted or attached, closed)``; each such run is tagged ``cnnkeras.orphaned``.
    """
    trials = ledger.study.get_trials(deepcopy=False)
    known = {t.user_attrs.get(RUN_ATTR) for t in trials} | {t.user_attrs.get("adopt_run_id") for t in trials}
    by_number = {t.number: t for t in trials}
    adopted = closed = 0
    for run in iter_runs(experiment, uri=tracking_uri, filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'"):
        run_id, tags = run.info.run_id, run.data.tags
        if run_id in known or tags.get(ORPHAN_TAG) or tags.get(TRIAL_TAG) is None:
            continue
        trial = by_number.get(int(tags[TRIAL_TAG]))
        tracker = Tracker.attach(run_id, uri=tracking_uri)
        if trial is not None and trial.state.name == "RUNNING" and not trial.user_attrs.get(RUN_ATTR):
            ledger.attach_run(trial.number, run_id)
            tracker.set_tags({ORPHAN_TAG: "its run id was lost with the journal's last records; stored again"})
            adopted += 1
            continue
        values = values_from_params(run.data.params, parameters) if trial is None else None
        if trial is None and run.info.status == "FINISHED" and tags.get(STATE_TAG) in ("COMPLETE", "PRUNED") \
                and values is not None:
            ledger.study.enqueue_trial(values, user_attrs={"adopt_run_id": run_id}, skip_if_exists=False)
            tracker.set_tags({ORPHAN_TAG: "its trial was lost with the journal's last records; adopted by a new "
                                          "trial"})
            adopted += 1
        elif run.info.status == "RUNNING":
            reason = "its trial's journal record was lost (a crash cut the journal back)"
            if values is not None:
                ledger.study.enqueue_trial(values, user_attrs={"retries": 1}, skip_if_exists=False)
                reason += "; parameters queued again"
            tracker.set_tags({STATE_TAG: "FAIL", ORPHAN_TAG: reason,
                              RUN_NAME_TAG: trial_run_name(int(tags[TRIAL_TAG]), "FAIL")})
            tracker.end("FAILED", reason)
            closed += 1
    return adopted, closed


class HeartbeatWatch:
    """Database storages: beat for this process's trials, and take over other processes' dead ones.

    A daemon thread: every ``interval_s`` it raises the heartbeat counter of each trial this
    process runs, and notes, on this process's own monotonic clock, when each other
    RUNNING trial's counter last moved; one that has not moved for ``stale_after_s``
    belongs to a dead process and goes to :class:`DeadTrials`. Storage errors (an outage
    the storage is waiting out) skip a beat.
    """

    def __init__(self, ledger: Ledger, dead: DeadTrials, *, interval_s: float, stale_after_s: float):
        self.ledger, self.dead = ledger, dead
        self.interval_s, self.stale_after_s = interval_s, stale_after_s
        self._seen: dict[int, tuple[Any, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cnnkeras-heartbeat", daemon=True)

    def start(self) -> HeartbeatWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.interval_s + 5)

    def check(self) -> int:
        """One look at the other processes' trials; how many were taken over as dead."""
        now = time.monotonic()
        taken = 0
        running = {t.number: t for t in self.ledger.running() if not self.ledger.own(t.number)}
        for number in list(self._seen):
            if number not in running:
                del self._seen[number]
        for number, trial in running.items():
            beat = trial.user_attrs.get("heartbeat")
            last = self._seen.get(number)
            if last is None or last[0] != beat:
                self._seen[number] = (beat, now)
            elif now - last[1] >= self.stale_after_s:
                reason = (f"its sweep process stopped sending heartbeats for over {self.stale_after_s:.0f} s "
                          "(killed or lost)")
                if self.dead(number, reason):
                    taken += 1
                del self._seen[number]
        return taken

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.ledger.beat()
                self.dead.close_unclosed()
                self.check()
            except Exception:  # noqa: BLE001 - an outage: the storage says so itself, and the next beat retries
                continue
