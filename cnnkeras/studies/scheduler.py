"""The one sweep loop: ask, group, train, tell; a plain trial is a cohort of one.

Each round of :func:`run_loop`:

1. ask Optuna for as many trials as the cohort size (queued ones first: a retry keeps its
   parameters); a retry whose predecessor's run had finished is told that run's result;
2. group them by what their training loop shares (:func:`cnnkeras.cohort.group_by_cohort`;
   groups that differ are trained apart, and one line says which keys split them);
3. train each group (:class:`~cnnkeras.studies.executor.Executor`: in this process or a
   worker process), every member told as its run closes;
4. stop at the study's total (counted over every process), the timeout, an exhausted grid,
   ``search.max_consecutive_failures`` failed trials in a row, or a stop signal.

With ``search.cohort: K > 1`` the cohort size is chosen by :class:`SizeChooser` from whole
trials timed as they run (steps, evaluation, tracking and saving together): sizes 1, 2,
4, ... are tried on real trials while the time per trial keeps falling by more than 10%,
and the fastest is kept. A size slower than one at a time is never kept. ``jobs`` threads
run the loop side by side, each with its own worker processes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna

from ..cohort import group_by_cohort, split_reason
from ..config.schema import ExperimentConfig
from ..errors import CnnkerasError
from ..interrupts import raise_if_requested
from .executor import Executor
from .ledger import AskedTrial, Ledger
from .objective import trial_config
from .outcome import TrialOutcome, TrialState
from .recovery import adopted_outcome
from .summary import count_done

__all__ = ["Budget", "SizeChooser", "SweepStopped", "run_loop"]

#: Doubling the cohort size must cut the time per trial below this fraction to try the next size.
GAIN = 0.9


class SweepStopped(CnnkerasError):
    """The sweep stopped before its total: too many trials failed in a row (exit code 1)."""

    exit_code = 1


class Budget:
    """How many more trials this process may ask for, shared by its job threads.

    The total counts every trial that is finished or running, in any process. A trial asked
    here counts from when it is asked until it is told (then the study counts it), so job
    threads never ask past the total between the two. Another process's RUNNING trial holds
    its place too: it either finishes (counted) or its process dies and its parameters are
    queued again, and that retry takes the same place. So a process whose remaining places
    are all held by other processes' trials waits (:data:`WAIT`) instead of asking fresh
    trials the retries would then exceed, or leaving the retries unrun.
    """

    def __init__(self, study: Any, total: int | None, timeout_s: float | None):
        self.study, self.total = study, total
        self.deadline = (time.time() + timeout_s) if timeout_s else None
        self.lock = threading.Lock()
        self.outstanding: set[int] = set()  # asked by this process and not told yet
        self.stopped = False
        self.held_elsewhere = 0  # other processes' running trials at the last WAIT

    def ask(self, want: int, ask: Callable[[int], list[AskedTrial]]) -> list[AskedTrial] | None:
        """Ask for up to ``want`` trials with ``ask(n)``, counted from now until told: [] when the sweep
        is over here, None (:data:`WAIT`) when the remaining places are held by other processes'
        running trials. Job threads ask one at a time, so none counts another's trials twice."""
        with self.lock:
            n = self._free(want)
            if n is WAIT or n == 0:
                return WAIT if n is WAIT else []
            asked = ask(n)
            self.outstanding.update(a.number for a in asked)
            return asked

    def _free(self, want: int) -> int | None:
        if self.stopped or (self.deadline is not None and time.time() >= self.deadline):
            return 0
        if _grid_exhausted(self.study):
            return 0
        if self.total is None:
            return want
        trials = self.study.get_trials(deepcopy=False)
        done = count_done(trials)
        finished = {t.number for t in trials if t.state.is_finished()}
        running = {t.number for t in trials if t.state == optuna.trial.TrialState.RUNNING}
        mine = self.outstanding - finished
        elsewhere = len(running - mine)
        free = self.total - done - len(mine | running)
        if free <= 0 and elsewhere and done < self.total:
            self.held_elsewhere = elsewhere
            return WAIT
        return max(0, min(want, free))

    def settle(self, number: int) -> None:
        """Trial ``number`` was told: the study counts it now."""
        with self.lock:
            self.outstanding.discard(number)


#: :meth:`Budget.ask`'s answer when other processes' running trials hold the remaining places.
WAIT = None


def _grid_exhausted(study: Any) -> bool:
    sampler = study.sampler
    return isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study)


@dataclass
class SizeChooser:
    """The cohort size, chosen from whole trials timed as they run (see the module docstring).

    Args:
        largest: ``search.cohort``.
        measure: False (``search.cohort_probe: false``) uses ``largest`` as it is.
        say: Prints the choice and the figures behind it, once.
    """

    largest: int
    measure: bool
    backend: str
    say: Callable[[str], None]
    on_choice: Callable[[int], None] = lambda size: None
    per_trial: dict[int, list[float]] = field(default_factory=dict)
    chosen: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.largest == 1 or not self.measure:
            self.chosen = self.largest

    def sizes(self) -> list[int]:
        sizes, k = [], 1
        while k < self.largest:
            sizes.append(k)
            k *= 2
        return sizes + [self.largest]

    def next_size(self) -> int:
        with self.lock:
            if self.chosen is not None:
                return self.chosen
            for size in self.sizes():
                if size not in self.per_trial:
                    return size
            return self._choose()

    def record(self, size: int, seconds: float) -> None:
        """A group of ``size`` trials took ``seconds`` from start to the last member told."""
        if size < 1:
            return
        with self.lock:
            self.per_trial.setdefault(size, []).append(seconds / size)
            if self.chosen is not None or size not in self.sizes():
                return
            tried = [s for s in self.sizes() if s in self.per_trial]
            if len(tried) >= 2 and self._median(tried[-1]) > GAIN * self._median(tried[-2]):
                self._choose()  # (nearly) no better than half the size: larger ones only cost more to try
            elif tried == self.sizes():
                self._choose()

    def _median(self, size: int) -> float:
        values = sorted(self.per_trial[size])
        return values[len(values) // 2]

    def _choose(self) -> int:
        tried = {s: self._median(s) for s in self.per_trial if s in self.sizes()}
        best = min(tried, key=tried.get)  # type: ignore[arg-type]
        if 1 in tried and tried[best] >= tried[1]:
            best = 1  # never a size that measured slower than one at a time
        self.chosen = best
        self.say(self.line())
        self.on_choice(best)
        return best

    def line(self) -> str:
        """One line for people: the choice and the figures behind it."""
        tried = {s: self._median(s) for s in sorted(self.per_trial) if s in self.sizes()}
        figures = ", ".join(f"{k}: {v:.1f} s" for k, v in tried.items())
        if self.chosen == 1:
            others = [k for k in tried if k > 1]
            best = min(others, key=tried.get) if others else None  # type: ignore[arg-type]
            ratio = (f"; a cohort of {best} took {tried[best] / tried[1]:.2f}x as long per trial"
                     if best is not None and 1 in tried else "")
            return f"cohorts: one trial at a time on {self.backend}{ratio} (measured per trial: {figures})"
        return f"cohorts of {self.chosen} on {self.backend} (measured per trial: {figures})"


@dataclass
class _Waiting:
    """Says once per wait that the remaining trials are running in other sweep processes."""

    say: Callable[[str], None]
    said: bool = False

    def say_once(self, held: int) -> None:
        if not self.said:
            self.said = True
            self.say(f"waiting for {held} trial(s) other sweep processes run (retried here if one dies)")


@dataclass
class FailureStreak:
    """Counts trials failed in a row (this process); too many stops the sweep."""

    limit: int | None
    count: int = 0
    last: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: TrialOutcome) -> None:
        with self.lock:
            if outcome.state is TrialState.FAIL:
                self.count += 1
                self.last = outcome.reason or ""
            else:
                self.count = 0

    @property
    def exceeded(self) -> bool:
        return self.limit is not None and self.count >= self.limit


def run_loop(cfg: ExperimentConfig, ledger: Ledger, executor: Executor, *, total: int | None, jobs: int,
             chooser: SizeChooser, streak: FailureStreak, say: Callable[[str], None],
             resume: str) -> None:
    """Ask, group, train and tell until the total, the timeout, a failure streak or a stop signal."""
    search = cfg.search
    assert search is not None
    budget = Budget(ledger.study, total, search.timeout_s)
    waiting = _Waiting(say)
    tell_sweep = executor.told

    def told(asked: AskedTrial, outcome: TrialOutcome, frozen: Any) -> None:
        budget.settle(asked.number)
        tell_sweep(asked, outcome, frozen)

    executor.told = told
    errors: list[BaseException] = []

    def one_round(job: int) -> bool:
        """One ask-train-tell round of job ``job`` (its GPU slot: CNNKERAS_GPUS[job], never shared)."""
        raise_if_requested()
        if streak.exceeded:
            return False
        asked = budget.ask(chooser.next_size(), lambda n: ledger.ask(n, search.parameters))
        if asked is WAIT:
            waiting.say_once(budget.held_elsewhere)
            time.sleep(min(float(search.heartbeat_s), 2.0))  # until those trials finish, or die and are queued
            return True
        waiting.said = False
        if not asked:
            return False
        try:
            pending = _adopt(asked)
            for group in _groups(pending):
                started = time.perf_counter()
                executor.run(group, slot=job)
                chooser.record(len(group), time.perf_counter() - started)
                if streak.exceeded:
                    break
        finally:
            for trial in asked:  # told ones are settled already; interrupted ones are queued again
                budget.settle(trial.number)
        raise_if_requested()
        return True

    def _adopt(asked: list[AskedTrial]) -> list[AskedTrial]:
        pending = []
        for trial in asked:
            if trial.adopt_run_id:
                outcome = adopted_outcome(trial.adopt_run_id, [o.metric for o in search.objectives],
                                          executor.dead.tracking_uri, number=trial.number)
                ledger.record_run(trial, trial.adopt_run_id)
                frozen = ledger.tell(trial, outcome)
                executor.told(trial, outcome, frozen)
            else:
                pending.append(trial)
        return pending

    def _groups(pending: list[AskedTrial]) -> list[list[AskedTrial]]:
        if len(pending) <= 1:
            return [pending] if pending else []
        configs, valid, invalid = [], [], []
        for trial in pending:
            try:
                configs.append(trial_config(cfg, trial.overrides, number=trial.number))
                valid.append(trial)
            except CnnkerasError:
                invalid.append(trial)  # fails alone, with its reason, when its group runs
        indices = group_by_cohort(configs)
        if len(indices) > 1:
            numbers = ", ".join(str(len(g)) for g in indices)
            say(f"trials {pending[0].number}-{pending[-1].number}: {len(indices)} cohorts ({numbers} trials), "
                f"since they differ in {split_reason(configs, indices)}")
        return [[valid[i] for i in g] for g in indices] + [[t] for t in invalid]

    def loop(job: int) -> None:
        try:
            while one_round(job):
                pass
        except BaseException as exc:  # handed to the main thread
            budget.stopped = True
            errors.append(exc)

    if jobs <= 1:
        while one_round(0):
            pass
    else:
        threads = [threading.Thread(target=loop, args=(i,), name=f"cnnkeras-job-{i}", daemon=True)
                   for i in range(jobs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
        if errors:
            raise errors[0]
    if streak.exceeded:
        raise SweepStopped(f"stopped the sweep: {streak.count} trials in a row failed (last: {streak.last}); fix "
                           f"the cause, then resume with: {resume} (search.max_consecutive_failures: "
                           f"{streak.limit})")
