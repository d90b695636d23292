"""Which experiments can train as one cohort (one compiled program, one MLflow run each).

:func:`run_cohort` is :func:`cnnkeras.runner.run_members` for K configs at once. The
configs must share what the members' common training loop is made of
(:func:`cohort_key`): the data, batch size, epochs, shuffling, seed, precision
and backend. Everything else may differ per member: optimizer and its values,
schedule, L1/L2, dropout, label smoothing (on for all or off for all), early
stopping, even the architecture, since each member is its own model in the
program (:mod:`cnnkeras.training.cohort`).

    configs -> data (once) -> K models, each seeded and built as a run builds it
            -> K MLflow runs (params, tags, config, environment)
            -> one fit (per-member epoch metrics, gaps, pruning, early stopping)
            -> test -> K sets of artifacts -> K runs FINISHED (or FAILED, one by one)

A member whose loss stops being finite is FAILED with its reason; the others go on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .config.schema import ExperimentConfig
from .errors import CnnkerasError
from .runner import RunResult, run_members
from .tracking import flatten

__all__ = ["cohort_key", "group_by_cohort", "run_cohort"]

# Key paths whose values may differ between the members of one cohort. Anything else
# is part of the shared training loop, and a difference there splits the cohort.
PER_MEMBER = ("model", "train.optimizer", "train.schedule", "train.l1", "train.l2", "train.label_smoothing",
              "train.early_stopping", "train.checkpoint", "train.monitor", "tracking.run_name", "tracking.tags",
              "name", "description")


def cohort_key(config: ExperimentConfig) -> str:
    """What members of one cohort must share, as a string (equal strings: one program).

    Label smoothing may differ, but whether it is on may not (it changes the labels' form).
    The model's input and head are shared through the data.
    """
    raw = config.to_dict()
    raw.pop("search", None)
    raw.pop("report", None)
    for path in PER_MEMBER:
        *parents, leaf = path.split(".")
        node = raw
        for part in parents:
            node = node.get(part, {})
        node.pop(leaf, None)
    raw["label_smoothing_on"] = config.train.label_smoothing > 0
    raw["head"] = config.model.head
    return json.dumps(raw, sort_keys=True, default=str)


def group_by_cohort(configs: Sequence[ExperimentConfig]) -> list[list[int]]:
    """Indices of ``configs`` grouped into cohorts (first-seen order), and what split them."""
    groups: dict[str, list[int]] = {}
    for index, config in enumerate(configs):
        groups.setdefault(cohort_key(config), []).append(index)
    return list(groups.values())


def split_reason(configs: Sequence[ExperimentConfig], groups: Sequence[Sequence[int]]) -> str:
    """The key paths whose values differ between the groups (``train.batch_size``), for people."""
    if len(groups) < 2:
        return ""
    firsts = [flatten(json.loads(cohort_key(configs[g[0]]))) for g in groups]
    keys = sorted({k for f in firsts for k in f if len({json.dumps(x.get(k), default=str) for x in firsts}) > 1})
    return ", ".join(keys)


def run_cohort(
    configs: Sequence[ExperimentConfig],
    *,
    progress: bool = True,
    callbacks: Sequence[Sequence[Any]] | None = None,
    trackers: Sequence[Any] | None = None,
    parent_run_id: str | None = None,
    title: str | None = None,
) -> list[RunResult | Exception]:
    """Train and evaluate K experiments as one program, each tracked in its own MLflow run.

    :func:`cnnkeras.runner.run_members` for configs that share one training loop.

    Args:
        configs: Validated configs with one :func:`cohort_key`.
        progress: Show one progress bar for the cohort.
        callbacks: Extra Keras callbacks per member.
        trackers: Already started trackers, one per member. Default: a run per member.
        parent_run_id: Nest the members' runs under this MLflow run.
        title: The progress bar's title.

    Returns:
        Per member, its :class:`~cnnkeras.runner.RunResult`, or the exception that ended
        it alone (:class:`~cnnkeras.errors.TrainingDiverged`, an artifact that could not
        be written). A failure of the whole program (out of memory, Ctrl-C) raises,
        after closing every member's run.
    """
    if not configs:
        raise CnnkerasError("a cohort needs at least one config")
    keys = {cohort_key(c) for c in configs}
    if len(keys) > 1:
        raise CnnkerasError("these configs cannot share one training loop: they differ in "
                            + split_reason(configs, group_by_cohort(configs)))
    outcomes = run_members(configs, trackers=trackers, callbacks=callbacks, progress=progress,
                           parent_run_id=parent_run_id, title=title or f"cohort of {len(configs)}")
    return [outcome.result if outcome.error is None else outcome.error for outcome in outcomes]
