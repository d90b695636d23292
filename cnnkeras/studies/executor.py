"""Run one group of trials, in the sweep process or in a worker process, and see every member told.

:class:`Executor.run` is the only way a sweep trains trials. The group (one trial, or a
cohort) runs through :func:`cnnkeras.studies.objective.run_trials` either here, with a
:class:`LedgerChannel` that turns each member's messages into Optuna writes, or in a fresh
worker process (``isolation: process``, implied by ``--jobs``), whose messages arrive over
a pipe and go to the same channel (:class:`WorkerProcess`). Either way:

- every member ends told: COMPLETE, PRUNED or FAIL with its reason;
- a group that failed as a whole (out of memory, a worker that died: the OOM killer's
  SIGKILL, an aborted allocation) is retried as two halves when it had several members
  (saying so in one line), and otherwise fails its members with the reason; a dead
  worker's MLflow runs are closed FAILED with it;
- a stop signal (Ctrl-C, SIGTERM, SIGHUP) reaches a worker once (workers run in their own
  session, so a terminal's Ctrl-C is forwarded, not doubled); its members are FAIL, not
  counted, and queued again, and the interrupt goes on up.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import interrupts
from ..config.schema import ExperimentConfig
from ..interrupts import Interrupted, interrupt_reason
from .ledger import AskedTrial, Ledger
from .objective import GroupFailed, Member, SetupFailed, run_trials
from .outcome import TrialOutcome
from .recovery import DeadTrials

__all__ = ["Executor", "LedgerChannel", "TrialWatch", "death", "gpu_for"]

#: Called once per told trial: (the asked trial, its outcome, the frozen trial after telling).
Told = Callable[[AskedTrial, TrialOutcome, Any], None]


class TrialWatchLike(Protocol):
    """The methods of :class:`TrialWatch`, which :class:`~cnnkeras.studies.console.SweepDisplay` has too
    without subclassing it (console.py stays free of this module's imports)."""

    def started(self, trial: AskedTrial) -> None:
        ...

    def epoch(self, trial: AskedTrial, epoch: int, epochs: int, values: dict[str, float]) -> None:
        ...

    def ended(self, trial: AskedTrial) -> None:
        ...


class TrialWatch:
    """What a sweep's display learns of its running trials (:class:`~cnnkeras.studies.console.SweepDisplay`
    implements it; the default ignores everything)."""

    def started(self, trial: AskedTrial) -> None:
        pass

    def epoch(self, trial: AskedTrial, epoch: int, epochs: int, values: dict[str, float]) -> None:
        pass

    def ended(self, trial: AskedTrial) -> None:
        pass


class LedgerChannel:
    """The sweep process's side of a group: members' messages become Optuna writes (the ledger)."""

    def __init__(self, ledger: Ledger, group: Sequence[AskedTrial], told: Told, say: Callable[[str], None],
                 dead: DeadTrials | None = None, watch: TrialWatchLike | None = None):
        self.ledger, self.group, self._told, self._say, self.dead = ledger, list(group), told, say, dead
        self.watch = watch or TrialWatch()
        self.done: set[int] = set()

    def started(self, member: int, run_id: str | None) -> None:
        self.ledger.record_run(self.group[member], run_id)
        self.watch.started(self.group[member])

    def epoch(self, member: int, epoch: int, epochs: int, values: dict[str, float]) -> None:
        self.watch.epoch(self.group[member], epoch, epochs, values)

    def report(self, member: int, step: int, value: float) -> bool:
        return self.ledger.report(self.group[member], step, value)

    def replay(self, member: int, values: Sequence[float | None]) -> int | None:
        return self.ledger.replay(self.group[member], values)

    def finished(self, member: int, outcome: TrialOutcome) -> None:
        asked = self.group[member]
        frozen = self.ledger.tell(asked, outcome)
        self.done.add(member)
        self.watch.ended(asked)
        if asked.number in self.ledger.superseded:  # taken as dead meanwhile: its retry is the trial now
            reason = (f"its heartbeats stalled and another sweep process took it as dead; its retry stands "
                      f"for it ({frozen.user_attrs.get('reason', '')})")
            if self.dead is not None:
                self.dead.close_run(outcome.run_id or asked.run_id, reason, force=True)
            self._say(f"trial {asked.number}: {reason}")
            return
        self._told(asked, outcome, frozen)

    def say(self, text: str) -> None:
        self._say(text)

    def pending(self) -> list[int]:
        return [i for i in range(len(self.group)) if i not in self.done]


def gpu_for(job: int) -> str | None:
    """The GPU job ``job`` trains on: ``CNNKERAS_GPUS`` (``0,1,2``) taken in turn, one job per GPU while there
    are as many GPUs as jobs; None without the variable."""
    gpus = [g.strip() for g in os.environ.get("CNNKERAS_GPUS", "").split(",") if g.strip()]
    return gpus[job % len(gpus)] if gpus else None


def death(code: int) -> str:
    """How a worker process ended, in words: "killed by SIGKILL", "exit code 1"."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"exit code {code}"


@dataclass
class Executor:
    """Trains groups of a sweep's trials (see the module docstring)."""

    config: ExperimentConfig
    ledger: Ledger
    dead: DeadTrials
    isolation: str
    parent_run_id: str | None
    study_name: str
    told: Told
    say: Callable[[str], None]
    watch: TrialWatchLike = field(default_factory=TrialWatch)

    def run(self, group: Sequence[AskedTrial], *, slot: int = 0) -> None:
        """Train ``group`` until every member is told (or raise an interrupt, the members queued again)."""
        channel = LedgerChannel(self.ledger, group, self.told, self.say, self.dead, self.watch)
        members = [Member(a.number, a.overrides) for a in group]
        try:
            if self.isolation == "process":
                WorkerProcess(self, members, channel, slot).run()
            else:
                run_trials(self.config, members, channel, parent_run_id=self.parent_run_id,
                           study_name=self.study_name, worker=self.ledger.worker, sampler_seed=self.ledger.seed)
        except GroupFailed as failed:
            pending = [group[i] for i in channel.pending()]
            if failed.smaller and len(pending) > 1:
                half = len(pending) // 2
                self.say(failed.split_line(len(pending), half))
                self.run(pending[:half], slot=slot)
                self.run(pending[half:], slot=slot)
                return
            for i in channel.pending():
                channel.finished(i, TrialOutcome.failed(str(failed), group[i].run_id, failed.traceback))
        except KeyboardInterrupt as exc:
            for i in channel.pending():
                self.ledger.interrupted(group[i], interrupt_reason(exc))
                self.watch.ended(group[i])
            raise
        except SetupFailed as exc:  # the store, not the trials: set them aside, and stop
            for i in channel.pending():
                self.ledger.interrupted(group[i], f"set aside: {exc}")
                self.watch.ended(group[i])
            raise


class WorkerProcess:
    """One group trained in ``python -m cnnkeras.studies.worker``, talking over two pipes.

    The worker sends one JSON line per message (``started``, ``epoch``, ``report``, ``replay``,
    ``finished``, ``say``, and ``failed`` or ``interrupted`` for the group); ``report`` and
    ``replay`` wait for the answer line. The worker never opens the study storage.
    """

    def __init__(self, executor: Executor, members: list[Member], channel: LedgerChannel, slot: int):
        self.executor, self.members, self.channel, self.slot = executor, members, channel, slot
        self.ending: dict[str, Any] | None = None

    def run(self) -> None:
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        env = dict(os.environ)
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX would claim 75% of a GPU per process
        gpu = gpu_for(self.slot)
        if gpu is not None:  # each job on its own GPU
            env["CUDA_VISIBLE_DEVICES"] = gpu
        process = subprocess.Popen(
            [sys.executable, "-m", "cnnkeras.studies.worker", str(to_worker_r), str(from_worker_w)],
            pass_fds=(to_worker_r, from_worker_w), env=env, start_new_session=True)
        os.close(to_worker_r)
        os.close(from_worker_w)
        executor = self.executor
        writer = os.fdopen(to_worker_w, "w", encoding="utf-8", buffering=1)
        forwarded = False
        try:
            writer.write(json.dumps({
                "config": executor.config.to_dict(), "parent_run_id": executor.parent_run_id,
                "study": executor.study_name, "worker": executor.ledger.worker,
                "sampler_seed": executor.ledger.seed,
                "members": [{"number": m.number, "overrides": m.overrides} for m in self.members]}) + "\n")
            buffer = b""
            while True:
                if interrupts.requested() and not forwarded:  # a stop signal: the worker gets it once
                    forwarded = _forward(process)
                ready, _, _ = select.select([from_worker_r], [], [], 0.5)
                if not ready:
                    continue
                chunk = os.read(from_worker_r, 1 << 16)
                if not chunk:
                    break
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    answer = self._dispatch(json.loads(line))
                    if answer is not None:
                        writer.write(json.dumps(answer) + "\n")
        except BrokenPipeError:
            pass  # the worker died while we answered: its exit code says how
        finally:
            os.close(from_worker_r)
            try:
                writer.close()
            except BrokenPipeError:
                pass
            code = process.wait()
        self._ended(code)

    def _dispatch(self, message: dict[str, Any]) -> Any:
        op, member = message["op"], message.get("member", 0)
        if op == "started":
            self.channel.started(member, message["run_id"])
        elif op == "report":
            return {"prune": self.channel.report(member, message["step"], message["value"])}
        elif op == "replay":
            return {"pruned_at": self.channel.replay(member, message["values"])}
        elif op == "finished":
            self.channel.finished(member, TrialOutcome.from_json(message["outcome"]))
        elif op == "say":
            self.channel.say(message["text"])
        elif op == "epoch":
            self.channel.epoch(member, message["epoch"], message["epochs"], message["values"])
        elif op in ("failed", "interrupted", "setup_failed"):
            self.ending = message
        return None

    def _ended(self, code: int) -> None:
        ending = self.ending or {}
        if ending.get("op") == "interrupted":
            raise Interrupted(ending.get("signum", signal.SIGINT))
        if ending.get("op") == "setup_failed":
            raise SetupFailed(ending["reason"])
        if ending.get("op") == "failed":
            raise GroupFailed(ending["reason"], smaller=ending.get("smaller", False), traceback=ending.get("traceback"))
        pending = self.channel.pending()
        if not pending:
            return
        if interrupts.requested():
            raise Interrupted(signal.SIGINT)
        k = len(self.members)
        how = death(code)
        reason = f"worker process died ({how})" + (f" while training a cohort of {k}" if k > 1 else "")
        for i in pending:  # its runs were left RUNNING
            self.executor.dead.close_run(self.channel.group[i].run_id, reason)
        raise GroupFailed(reason, smaller=k > 1, died=how)


def _forward(process: subprocess.Popen) -> bool:
    """Send the pending stop signal to a worker (in its own session, it did not get a terminal's)."""
    signum = interrupts.pending_signal() or signal.SIGINT
    try:
        os.kill(process.pid, signum)
    except ProcessLookupError:
        pass
    return True
