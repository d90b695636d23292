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
from typing import Any, Callable

from ..tracking import Tracker, iter_runs, read_run
from .ledger import RUN_ATTR, Ledger
from .outcome import TrialOutcome, TrialState
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
        say: Prints one line for people.
    """

    def __init__(self, ledger: Ledger, tracking_uri: str | None, say: Callable[[str], None] | None = None):
        self.ledger, self.tracking_uri, self.say = ledger, tracking_uri, say

    def __call__(self, number: int, reason: str) -> bool:
        """Handle trial ``number``; False when another process did first."""
        frozen = self.ledger.frozen(number)
        if frozen.state.name != "RUNNING":
            return False
        finished = self.finished_run(frozen.user_attrs.get(RUN_ATTR))
        failed = self.ledger.fail_dead(number, reason, adopt=finished is not None)
        if failed is None:
            return False
        frozen, again = failed
        if finished is None:
            self.close_run(frozen.user_attrs.get(RUN_ATTR), frozen.user_attrs.get("reason") or reason)
        if again:
            self.ledger.requeue(frozen, count_retry=finished is None, adopt_run_id=finished)
        return True

    def finished_run(self, run_id: str | None) -> str | None:
        """``run_id`` when its run had finished COMPLETE or PRUNED (its result can be adopted)."""
        if not run_id or self.tracking_uri is None:
            return None
        run = Tracker.attach(run_id, uri=self.tracking_uri).client.get_run(run_id)
        if run.info.status == "FINISHED" and run.data.tags.get(STATE_TAG) in ("COMPLETE", "PRUNED"):
            return run_id
        return None

    def close_run(self, run_id: str | None, reason: str) -> None:
        """Close the run FAILED with ``reason`` if it is still RUNNING."""
        if not run_id or self.tracking_uri is None:
            return
        tracker = Tracker.attach(run_id, uri=self.tracking_uri)
        if tracker.client.get_run(run_id).info.status == "RUNNING":
            tracker.set_tags({STATE_TAG: "FAIL"})
            tracker.end("FAILED", reason)


def recover_journal(ledger: Ledger, dead: DeadTrials) -> int:
    """A journal: every RUNNING trial at start belongs to a dead process (the lock says so)."""
    return sum(dead(t.number, JOURNAL_DEAD) for t in ledger.running())


def adopted_outcome(run_id: str, objectives: list[str], tracking_uri: str | None) -> TrialOutcome:
    """The outcome of a trial whose run finished before its process (or a journal record) was lost."""
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
    """Journals: child runs of the sweep that no trial refers to are adopted or closed.

    Returns ``(adopted, closed)``. A run is adopted (its parameters queued with its run id,
    so the retry takes its result) when it finished COMPLETE or PRUNED; left RUNNING, it is
    closed FAILED; either way it is tagged ``cnnkeras.orphaned`` with what happened.
    """
    known = {t.user_attrs.get(RUN_ATTR) for t in ledger.study.get_trials(deepcopy=False)}
    known |= {t.user_attrs.get("adopt_run_id") for t in ledger.study.get_trials(deepcopy=False)}
    adopted = closed = 0
    for run in iter_runs(experiment, uri=tracking_uri, filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'"):
        if run.info.run_id in known or run.data.tags.get(ORPHAN_TAG):
            continue
        tracker = Tracker.attach(run.info.run_id, uri=tracking_uri)
        state = run.data.tags.get(STATE_TAG)
        if run.info.status == "FINISHED" and state in ("COMPLETE", "PRUNED"):
            values = values_from_params(run.data.params, parameters)
            if values is not None:
                ledger.study.enqueue_trial(values, user_attrs={"adopt_run_id": run.info.run_id},
                                           skip_if_exists=False)
                tracker.set_tags({ORPHAN_TAG: "its trial's journal record was lost; adopted by a new trial"})
                adopted += 1
                continue
        if run.info.status == "RUNNING":
            reason = "its trial's journal record was lost (a crash cut the journal back); parameters queued again"
            values = values_from_params(run.data.params, parameters)
            if values is not None:
                ledger.study.enqueue_trial(values, user_attrs={"retries": 1}, skip_if_exists=False)
            tracker.set_tags({STATE_TAG: "FAIL", ORPHAN_TAG: reason})
            tracker.end("FAILED", reason)
            closed += 1
        else:
            tracker.set_tags({ORPHAN_TAG: "its trial's journal record was lost; not counted"})
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

    def start(self) -> "HeartbeatWatch":
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
                self.check()
            except Exception:  # noqa: BLE001 - an outage: the storage says so itself, and the next beat retries
                continue
