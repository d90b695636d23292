"""Worker process for one trial or one cohort: ``python -m cnnkeras.studies.worker PAYLOAD.json``.

The parent sweep writes the payload (config, storage, trial id or a cohort's members,
overrides, parent run), this process attaches to the same Optuna trials through the
shared storage (so it can report intermediate values and be pruned), runs them, and
writes the outcome JSON. If this process dies (SIGKILL, OOM), the parent records the
trials as failed and the sweep goes on. A payload with ``probe`` measures cohort sizes
instead (:mod:`cnnkeras.cohort_probe`) and writes the chosen size.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import optuna

from ..cohort_probe import measure_cohort_sizes
from ..config import config_from_dict
from ..lazy import lazy_import
from .objective import run_cohort_trials, run_trial
from .storage import open_storage, quiet_optuna

keras = lazy_import("keras")


def _probe(payload: dict[str, Any]) -> dict[str, Any]:
    configs = [config_from_dict(raw) for raw in payload["probe"]]
    result = measure_cohort_sizes(configs, payload["largest"])
    return {"size": result.size, "line": result.line(keras.backend.backend())}


def main(path: str) -> int:
    payload = json.loads(open(path, encoding="utf-8").read())
    quiet_optuna()
    if "probe" in payload:
        answer: Any = _probe(payload)
    else:
        config = config_from_dict(payload["config"])
        study = optuna.load_study(study_name=payload["study"], storage=open_storage(
            payload["storage"], wait_s=config.search.storage_wait_s, heartbeat_s=None))
        common = dict(parent_run_id=payload["parent_run_id"], study_name=payload["study"], worker=payload["worker"],
                      sampler_seed=payload["sampler_seed"])
        if "members" in payload:
            members = payload["members"]
            trials = [optuna.trial.Trial(study, m["trial_id"]) for m in members]
            if len(trials) == 1:
                answer = [dict(run_trial(config, trials[0], overrides=members[0]["overrides"], **common))]
            else:
                answer = [dict(o) for o in run_cohort_trials(config, trials, overrides=[m["overrides"] for m in members],
                                                             say=_say, **common)]
        else:
            trial = optuna.trial.Trial(study, payload["trial_id"])
            answer = dict(run_trial(config, trial, overrides=payload["overrides"], **common))
    with open(payload["result"], "w", encoding="utf-8") as handle:
        json.dump(answer, handle)
    return 0


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
