"""How a trial ended: the typed outcome every process sends back to the sweep process.

Kept apart from :mod:`cnnkeras.studies.ledger` so that trial workers, which never talk to
Optuna, do not import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = ["RUN_NAME_TAG", "TrialOutcome", "TrialState", "trial_run_name"]

#: Setting this tag renames an MLflow run (every store does it; the runs table shows the name).
RUN_NAME_TAG = "mlflow.runName"


def trial_run_name(number: int, state: str, pruned_at: int | None = None) -> str:
    """A trial's run name, saying how it ended when it did not complete: MLflow has no PRUNED status
    (a pruned run is FINISHED), so the name, like the tag ``cnnkeras.trial_state``, says it."""
    if state == "PRUNED":
        return f"trial-{number} (pruned at epoch {pruned_at})" if pruned_at else f"trial-{number} (pruned)"
    if state == "FAIL":
        return f"trial-{number} (failed)"
    return f"trial-{number}"


class TrialState(str, Enum):
    """How a trial ended, as Optuna records it."""

    COMPLETE = "COMPLETE"
    PRUNED = "PRUNED"
    FAIL = "FAIL"


@dataclass
class TrialOutcome:
    """One trial's ending, from whichever process trained it (sent back as JSON by a worker)."""

    state: TrialState
    values: list[float] | None = None
    summary: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    reason: str | None = None
    pruned_at: int | None = None
    traceback: str | None = None  # a failure's whole traceback (also the run's failure/traceback.txt)

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state.value, "values": self.values, "summary": self.summary, "run_id": self.run_id,
                "reason": self.reason, "pruned_at": self.pruned_at, "traceback": self.traceback}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrialOutcome:
        return cls(state=TrialState(data["state"]), values=data.get("values"), summary=dict(data.get("summary") or {}),
                   run_id=data.get("run_id"), reason=data.get("reason"), pruned_at=data.get("pruned_at"),
                   traceback=data.get("traceback"))

    @classmethod
    def failed(cls, reason: str, run_id: str | None = None, traceback: str | None = None) -> TrialOutcome:
        return cls(state=TrialState.FAIL, reason=reason, run_id=run_id, traceback=traceback)
