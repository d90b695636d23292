"""A group of trials (K >= 1) trained in whichever process runs it, reporting through a channel.

:func:`run_trials` is the trial side of a sweep: each member is a run with the trial's
sampled ``key.path=value`` overrides, a child MLflow run of the sweep's parent run, and
the pruner's say. It goes through the one run lifecycle
(:func:`cnnkeras.runner.run_members`); what it adds are :class:`TrialHooks`:

- **pruning**: a trial alone reports each epoch and stops when the pruner says so; a
  cohort's members (K > 1) train to the end and then report their epochs member by
  member, in order (:meth:`TrialChannel.replay`), each one told before the next replays,
  exactly as they would have been pruned one after another alone (the median pruner
  compares a trial with the trials completed before it); their epochs are logged to
  MLflow after that decision, so a member pruned at epoch 3 has 3 epochs there too;
- **verdict**: the trial's state on its run (``cnnkeras.trial_state``), and FAIL when
  the objective is missing or not finite;
- **telling**: each member's :class:`~cnnkeras.studies.ledger.TrialOutcome` goes back
  through the channel as soon as its run is closed.

The channel is the sweep process's ledger when the trials run in it, or a pipe to it
from a worker process (:mod:`cnnkeras.studies.worker`): Optuna is only ever written by
the sweep process.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..config import config_from_dict
from ..config.schema import OBJECTIVE_METRICS, ExperimentConfig
from ..errors import CnnkerasError
from ..lazy import lazy_import
from ..runner import Ending, MemberHooks, MemberOutcome, format_exception, one_line, open_tracker, run_members
from .outcome import RUN_NAME_TAG, TrialOutcome, TrialState, trial_run_name

if TYPE_CHECKING:  # the real module, so that mypy can resolve PruningCallback's base class
    import keras
else:
    keras = lazy_import("keras")

__all__ = ["EpochProgress", "GroupFailed", "Member", "SetupFailed", "PruningCallback", "TrialChannel", "TrialHooks",
           "gap_of", "is_out_of_memory", "run_trials", "trial_config", "trial_run_name"]

TRIAL_TAG = "cnnkeras.trial_number"
STATE_TAG = "cnnkeras.trial_state"
STUDY_TAG = "cnnkeras.study"
WORKER_TAG = "cnnkeras.sweep_process"
SEED_TAG = "cnnkeras.sampler_seed"
COHORT_TAG = "cnnkeras.cohort_size"
KIND_TAG = "cnnkeras.kind"


class TrialChannel(Protocol):
    """What a group of trials tells the sweep process, and asks it (the pruner's decisions)."""

    def started(self, member: int, run_id: str | None) -> None: ...

    def report(self, member: int, step: int, value: float) -> bool: ...

    def replay(self, member: int, values: Sequence[float | None]) -> int | None: ...

    def finished(self, member: int, outcome: TrialOutcome) -> None: ...

    def say(self, text: str) -> None: ...

    def epoch(self, member: int, epoch: int, epochs: int, values: dict[str, float]) -> None: ...


@dataclass
class Member:
    """One trial of a group: its number and its sampled overrides."""

    number: int
    overrides: list[str]


class GroupFailed(CnnkerasError):
    """The whole group failed at once (its members' runs are closed); ``smaller`` when a smaller
    group may succeed (out of memory, or a worker that ``died``: how, in words)."""

    def __init__(self, message: str, *, smaller: bool, died: str | None = None, traceback: str | None = None):
        super().__init__(message)
        self.smaller, self.died, self.traceback = smaller, died, traceback

    def split_line(self, k: int, half: int) -> str:
        """The one line that says the group is retried as two halves."""
        if self.died:
            return (f"the worker training a cohort of {k} died ({self.died}; out of memory?): trying two cohorts "
                    f"of {half} and {k - half}")
        return f"a cohort of {k} ran out of memory: trying two cohorts of {half} and {k - half}"


class SetupFailed(CnnkerasError):
    """The trials' runs could not be opened (the tracking store stayed away past ``tracking.wait_s``):
    not the trials' fault, so they are set aside (queued again, not counted) and the sweep stops."""


class _OneTrial:
    """An Optuna trial seen as a channel (a pruning callback given a trial directly)."""

    def __init__(self, trial: Any):
        self.trial = trial

    def report(self, member: int, step: int, value: float) -> bool:
        self.trial.report(value, step)
        return bool(self.trial.should_prune())


class PruningCallback(keras.callbacks.Callback):
    """Report the pruning metric every epoch (from 1); stop training when the pruner says so.

    Stops the fit instead of raising inside it, so the run is still closed and tagged
    cleanly, and :attr:`pruned_at` says when. Takes a channel and member index, or an
    Optuna trial directly.
    """

    def __init__(self, channel: Any, monitor: str, member: int = 0):
        super().__init__()
        self.channel = channel if hasattr(channel, "started") or not hasattr(channel, "should_prune") \
            else _OneTrial(channel)
        self.monitor, self.member = monitor, member
        self.pruned_at: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        # gaps are in the logs already (cnnkeras.training.callbacks.EpochMeasures, first in the list)
        values = {k: float(v) for k, v in (logs or {}).items()}
        value = values.get(self.monitor)
        if value is None or not math.isfinite(value):
            return
        if self.channel.report(self.member, epoch + 1, value):
            self.pruned_at = epoch + 1
            self.model.stop_training = True


def gap_of(monitor: str) -> str:
    """The per-epoch gap that goes with a monitored measure (``val_mean_iou`` -> ``gap_mean_iou``)."""
    base = monitor.removeprefix("val_").removeprefix("gap_")
    return f"gap_{base}" if base in ("accuracy", "mean_iou", "mae") else "gap_loss"


class EpochProgress:
    """An epoch listener that tells the sweep process how a trial is doing (its live display): the
    epoch, the objective's per-epoch measure and its gap. Sent as the epoch ends, whatever the pruner
    decides later (a cohort's members report their epochs as they train)."""

    def __init__(self, channel: TrialChannel, member: int, *, epochs: int, monitor: str):
        self.channel, self.member, self.epochs = channel, member, epochs
        self.keys = {"value": monitor, "gap": gap_of(monitor)}

    def on_epoch(self, epoch: int, record: dict[str, float]) -> None:
        values = {name: float(record[key]) for name, key in self.keys.items()
                  if key in record and math.isfinite(record[key])}
        self.channel.epoch(self.member, epoch, self.epochs, values)


def trial_config(config: ExperimentConfig, overrides: list[str], *, number: int) -> ExperimentConfig:
    """The experiment config of one trial: the study's config with the trial's overrides."""
    raw = config.to_dict()
    search = raw.pop("search")
    raw.pop("report", None)  # a trial is a plain run: no sweep, nothing to report on
    keep = bool(search.get("log_models"))
    extra = [f"tracking.log_model={str(keep).lower()}", f"tracking.log_plots={str(keep).lower()}",
             f"tracking.run_name=trial-{number}"]
    return config_from_dict(raw, list(overrides) + extra)


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocation failure of any backend (host MemoryError, XLA or TensorFlow RESOURCE_EXHAUSTED, CUDA OOM)."""
    text = f"{type(exc).__name__}: {exc}"
    return isinstance(exc, MemoryError) or any(
        marker in text for marker in ("RESOURCE_EXHAUSTED", "ResourceExhausted", "out of memory", "Out of memory"))


class TrialHooks(MemberHooks):
    """A sweep's part in finishing each member: pruning decision, trial state, telling."""

    def __init__(self, config: ExperimentConfig, members: Sequence[Member], channel: TrialChannel,
                 pruners: Sequence[PruningCallback | None], *, replay: bool):
        assert config.search is not None
        self.search, self.members, self.channel = config.search, list(members), channel
        self.pruners, self.replay = list(pruners), replay

    def pruned_at(self, index: int, fit: Any) -> int | None:
        pruner = self.pruners[index]
        if pruner is None:
            return None
        if not self.replay:
            return pruner.pruned_at
        values = fit.history.get(pruner.monitor) or []
        return self.channel.replay(index, [v if math.isfinite(v) else None for v in values])

    def verdict(self, index: int, outcome: MemberOutcome) -> MemberOutcome:
        number = self.members[index].number
        if outcome.ending is Ending.PRUNED:
            outcome.tags = {STATE_TAG: "PRUNED", "cnnkeras.pruned_at_epoch": outcome.pruned_at,
                            "cnnkeras.pruned_reason": f"pruned by the {self.search.pruner.name} pruner at epoch "
                                                      f"{outcome.pruned_at}",
                            RUN_NAME_TAG: trial_run_name(number, "PRUNED", outcome.pruned_at)}
            return outcome
        if outcome.ending is Ending.FINISHED:
            assert outcome.result is not None
            values = {o.metric: outcome.result.summary.get(o.metric) for o in self.search.objectives}
            if any(v is None or not math.isfinite(v) for v in values.values()):
                outcome.ending = Ending.FAILED
                outcome.reason = f"objective metric missing or not finite: {values}"
            else:
                outcome.tags = {STATE_TAG: "COMPLETE"}
                return outcome
        outcome.tags = {STATE_TAG: "FAIL", RUN_NAME_TAG: trial_run_name(number, "FAIL")}
        return outcome

    def closed(self, index: int, outcome: MemberOutcome) -> None:
        self.channel.finished(index, trial_outcome(outcome, self.search))

    def failure_reason(self, exc: BaseException) -> str:
        if len(self.members) > 1 and is_out_of_memory(exc):
            return f"out of memory as a cohort of {len(self.members)}; retried in smaller cohorts"
        return one_line(exc)


def trial_outcome(outcome: MemberOutcome, search: Any) -> TrialOutcome:
    """A member's run ending as the trial's outcome for Optuna."""
    summary = outcome.result.summary if outcome.result is not None else {}
    if outcome.ending is Ending.PRUNED:
        return TrialOutcome(state=TrialState.PRUNED, summary=summary, run_id=outcome.run_id, reason=outcome.reason,
                            pruned_at=outcome.pruned_at)
    if outcome.ending is Ending.FINISHED:
        return TrialOutcome(state=TrialState.COMPLETE, values=[float(summary[o.metric]) for o in search.objectives],
                            summary=summary, run_id=outcome.run_id)
    return TrialOutcome(state=TrialState.FAIL, summary=summary, run_id=outcome.run_id, reason=outcome.reason,
                        traceback=outcome.traceback)


def run_trials(config: ExperimentConfig, members: Sequence[Member], channel: TrialChannel, *,
               parent_run_id: str | None, study_name: str, worker: int = 0,
               sampler_seed: int | None = None) -> None:
    """Train a group of trials (one, or a cohort) and send each one's outcome through ``channel``.

    Never raises for a failing trial: that trial's outcome is FAIL and the others go on. A
    failure of the whole group raises :class:`GroupFailed` (out of memory: ``smaller``)
    after the members' runs are closed; a stop signal raises ``KeyboardInterrupt`` after
    closing them KILLED.
    """
    search = config.search
    assert search is not None
    ready: list[tuple[int, Member, ExperimentConfig]] = []
    for index, member in enumerate(members):
        try:
            ready.append((index, member, trial_config(config, member.overrides, number=member.number)))
        except CnnkerasError as exc:  # a sampled combination the config refuses: this trial fails alone
            channel.finished(index, TrialOutcome.failed(one_line(exc), traceback=format_exception(exc)))
    if not ready:
        return
    k = len(ready)
    pruning = search.pruner.name != "none" and len(search.objectives) == 1
    monitor = OBJECTIVE_METRICS[search.objectives[0].metric]
    replay = pruning and k > 1
    pruners = [PruningCallback(_Renumbered(channel, index), monitor) if pruning else None for index, _, _ in ready]
    trackers = []
    try:
        for index, member, child in ready:
            tags: dict[str, Any] = {TRIAL_TAG: member.number, STUDY_TAG: study_name, STATE_TAG: "RUNNING",
                                    WORKER_TAG: worker, KIND_TAG: "trial"}
            if sampler_seed is not None:
                tags[SEED_TAG] = sampler_seed
            if k > 1:
                tags[COHORT_TAG] = k
            tracker = open_tracker(child, run_name=f"trial-{member.number}", parent_run_id=parent_run_id, tags=tags)
            trackers.append(tracker)
            channel.started(index, tracker.run_id)
    except BaseException as exc:
        for tracker in trackers:
            try:
                tracker.end("FAILED", "the trial's set-up failed")
            except Exception:  # noqa: BLE001 - the store that failed the set-up may refuse this too
                pass
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise SetupFailed(f"could not open the trials' MLflow runs: {one_line(exc)}") from exc
    hooks = TrialHooks(config, [m for _, m, _ in ready], _Renumbered.many(channel, [i for i, _, _ in ready]),
                       pruners, replay=replay)
    try:
        progress = [[EpochProgress(_Renumbered(channel, index), 0, epochs=child.train.epochs, monitor=monitor)]
                    for index, _, child in ready]
        run_members([c for _, _, c in ready], trackers=trackers,
                    callbacks=[[p] if p is not None and not replay else [] for p in pruners],
                    listeners=progress, hooks=hooks, live_epochs=not replay, progress=False)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - the whole group failed: its runs are closed, each trial fails
        raise GroupFailed(hooks.failure_reason(exc), smaller=k > 1 and is_out_of_memory(exc),
                          traceback=format_exception(exc)) from exc


class _Renumbered:
    """A channel for a subset of a group's members (those whose config was valid), in their own order."""

    def __init__(self, channel: TrialChannel, index: int | Sequence[int]):
        self.channel = channel
        self.indices = list(index) if isinstance(index, Sequence) else None
        self.index = index if isinstance(index, int) else None

    @classmethod
    def many(cls, channel: TrialChannel, indices: Sequence[int]) -> _Renumbered:
        return cls(channel, list(indices))

    def _at(self, member: int) -> int:
        return self.index if self.index is not None else self.indices[member]  # type: ignore[index]

    def started(self, member: int, run_id: str | None) -> None:
        self.channel.started(self._at(member), run_id)

    def report(self, member: int, step: int, value: float) -> bool:
        return self.channel.report(self._at(member), step, value)

    def replay(self, member: int, values: Sequence[float | None]) -> int | None:
        return self.channel.replay(self._at(member), values)

    def finished(self, member: int, outcome: TrialOutcome) -> None:
        self.channel.finished(self._at(member), outcome)

    def say(self, text: str) -> None:
        self.channel.say(text)

    def epoch(self, member: int, epoch: int, epochs: int, values: dict[str, float]) -> None:
        self.channel.epoch(self._at(member), epoch, epochs, values)
