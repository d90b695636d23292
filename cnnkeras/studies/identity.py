"""A study is one experiment: a sweep that joins a study must be running the same one.

The first sweep of a study saves its resolved config on the study (passwords masked). A
later sweep process (a resume, a worker on another machine) is compared with it on what
makes its trials comparable with the study's others: the data, the model, the training,
the search space, the objectives, sampler and pruner. A difference refuses to join, in one
line naming the keys; ``search.join: any`` (``--join-anyway``) joins anyway, says so, and
records the differences on the trials this process runs.

Not compared, because they do not change what a trial is: where things are tracked and
stored (``tracking.uri``, ``search.storage``...), how much and how fast the sweep runs
(``n_trials``, ``jobs``, ``isolation``, ``cohort``, timeouts, retries), the backend, the
report and the description; ``data.path`` by its file name only (workers on other machines
keep the data in another folder).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from ..config.schema import ExperimentConfig
from ..errors import CnnkerasError
from ..tracking import flatten
from ..tracking.values import redact_data

__all__ = ["IGNORED", "StudyMismatch", "differences", "identity"]

#: Key paths (and prefixes) that do not change what a trial is.
IGNORED = ("description", "backend", "report", "tracking.uri", "tracking.run_name", "tracking.tags",
           "tracking.log_model", "tracking.log_plots", "tracking.wait_s", "search.n_trials", "search.timeout_s",
           "search.storage", "search.storage_wait_s", "search.heartbeat_s", "search.stale_after_s",
           "search.study_name", "search.isolation", "search.jobs", "search.log_models", "search.cohort",
           "search.cohort_probe", "search.max_retries", "search.max_consecutive_failures", "search.join")


class StudyMismatch(CnnkerasError):
    """A sweep asked to join a study that another experiment made."""


def identity(raw: Mapping[str, Any]) -> dict[str, str]:
    """The key paths of a config (as saved on a study) that define its trials, flattened to strings."""
    data = json.loads(json.dumps(redact_data(dict(raw)), default=str))
    path = (data.get("data") or {}).get("path")
    if path:
        data["data"]["path"] = os.path.basename(str(path))
    flat = flatten(data)
    return {key: value for key, value in flat.items()
            if not any(key == ignored or key.startswith(ignored + ".") for ignored in IGNORED)}


def differences(saved: Mapping[str, Any], config: ExperimentConfig) -> list[str]:
    """``key (study: a, this sweep: b)`` for each identity key that differs; empty when the same."""
    before, now = identity(saved), identity(config.to_dict())
    out = []
    for key in sorted(set(before) | set(now)):
        if before.get(key) != now.get(key):
            out.append(f"{key} (study: {before.get(key, 'unset')}, this sweep: {now.get(key, 'unset')})")
    return out


def check_same_experiment(study: Any, config: ExperimentConfig) -> list[str]:
    """Refuse a sweep that is not the study's experiment (unless ``search.join: any``); the differences."""
    saved = study.user_attrs.get("config")
    if not saved:
        return []
    found = differences(saved, config)
    assert config.search is not None
    if found and config.search.join != "any":
        shown = "; ".join(found[:6]) + (f"; and {len(found) - 6} more" if len(found) > 6 else "")
        raise StudyMismatch(f"study {study.study_name} was made by another experiment: {shown}. Use another "
                            "search.study_name, or join anyway with --join-anyway (search.join: any)")
    return found
