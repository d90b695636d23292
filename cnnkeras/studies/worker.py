"""Worker process for one trial: ``python -m cnnkeras.studies.worker PAYLOAD.json``.

The parent sweep writes the trial's payload (config, storage, trial id, overrides,
parent run), this process attaches to the same Optuna trial through the shared
storage (so it can report intermediate values and be pruned), runs it, and writes
the outcome JSON. If this process dies (SIGKILL, OOM), the parent records the
trial as failed and the sweep goes on.
"""

from __future__ import annotations

import json
import sys

import optuna

from ..config import config_from_dict
from .objective import run_trial
from .storage import open_storage, quiet_optuna


def main(path: str) -> int:
    payload = json.loads(open(path, encoding="utf-8").read())
    quiet_optuna()
    config = config_from_dict(payload["config"])
    study = optuna.load_study(study_name=payload["study"], storage=open_storage(
        payload["storage"], wait_s=config.search.storage_wait_s, heartbeat_s=None))
    trial = optuna.trial.Trial(study, payload["trial_id"])
    outcome = run_trial(config, trial, parent_run_id=payload["parent_run_id"], study_name=payload["study"],
                        overrides=payload["overrides"], worker=payload["worker"], sampler_seed=payload["sampler_seed"])
    with open(payload["result"], "w", encoding="utf-8") as handle:
        json.dump(dict(outcome), handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
