"""A worker process for one group of trials: ``python -m cnnkeras.studies.worker READ_FD WRITE_FD``.

The sweep process (:class:`cnnkeras.studies.executor.WorkerProcess`) writes the group's
payload (config, members with their overrides, parent run) as the first line on
``READ_FD``; this process trains the group through the same
:func:`~cnnkeras.studies.objective.run_trials` as an in-process sweep, with a
:class:`PipeChannel`: each member's run id, pruning reports and outcome go back as JSON
lines on ``WRITE_FD``, and the pruner's answers come back on ``READ_FD``. It never opens
the study storage: Optuna is written by the sweep process alone, and no storage password
reaches this process.

A stop signal (forwarded by the sweep process) stops training at the epoch boundary and
closes the runs KILLED. If the sweep process dies, this one is sent SIGTERM by the kernel
(Linux) and ends the same way, so it never trains on as an orphan. If this process dies,
the sweep process closes the group's runs FAILED and retries or fails its trials.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from ..config import config_from_dict
from ..interrupts import deferred_interrupts, exit_code
from ..lazy import lazy_import
from ..process import quiet_process
from .outcome import TrialOutcome

# Keras, TensorFlow and MLflow load after quiet_process(), so the worker's stderr stays as quiet as the CLI's.
objective = lazy_import("cnnkeras.studies.objective")

__all__ = ["PipeChannel", "main"]


class PipeChannel:
    """The worker's side of a group: messages to the sweep process, answers from it."""

    def __init__(self, read_fd: int, write_fd: int):
        self.reader = os.fdopen(read_fd, "r", encoding="utf-8")
        self.writer = os.fdopen(write_fd, "w", encoding="utf-8", buffering=1)

    def receive(self) -> Any:
        line = self.reader.readline()
        if not line:
            raise EOFError("the sweep process closed the pipe")
        return json.loads(line)

    def send(self, message: dict[str, Any]) -> None:
        self.writer.write(json.dumps(message) + "\n")

    def started(self, member: int, run_id: str | None) -> None:
        self.send({"op": "started", "member": member, "run_id": run_id})

    def report(self, member: int, step: int, value: float) -> bool:
        self.send({"op": "report", "member": member, "step": step, "value": value})
        return bool(self.receive()["prune"])

    def replay(self, member: int, values: Sequence[float | None]) -> int | None:
        self.send({"op": "replay", "member": member, "values": list(values)})
        return self.receive()["pruned_at"]

    def finished(self, member: int, outcome: TrialOutcome) -> None:
        self.send({"op": "finished", "member": member, "outcome": outcome.to_json()})

    def say(self, text: str) -> None:
        self.send({"op": "say", "text": text})

    def epoch(self, member: int, epoch: int, epochs: int, values: dict[str, float]) -> None:
        self.send({"op": "epoch", "member": member, "epoch": epoch, "epochs": epochs, "values": values})


def _die_with_parent() -> None:
    """Ask the kernel for SIGTERM when the sweep process dies (Linux), and check it has not already."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent or parent == 1:
        sys.exit(128 + signal.SIGTERM)


def main(argv: Sequence[str]) -> int:
    read_fd, write_fd = int(argv[0]), int(argv[1])
    _die_with_parent()
    quiet_process()
    channel = PipeChannel(read_fd, write_fd)
    with deferred_interrupts():
        payload = channel.receive()
        config = config_from_dict(payload["config"])
        members = [objective.Member(m["number"], m["overrides"]) for m in payload["members"]]
        try:
            objective.run_trials(config, members, channel, parent_run_id=payload["parent_run_id"], study_name=payload["study"],
                       worker=payload["worker"], sampler_seed=payload["sampler_seed"])
        except objective.SetupFailed as exc:
            channel.send({"op": "setup_failed", "reason": str(exc)})
            return 2
        except objective.GroupFailed as exc:
            channel.send({"op": "failed", "reason": str(exc), "smaller": exc.smaller, "traceback": exc.traceback})
            return 1
        except KeyboardInterrupt as exc:
            channel.send({"op": "interrupted", "signum": int(getattr(exc, "signum", signal.SIGINT))})
            return exit_code(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
