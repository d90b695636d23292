"""Run several experiments as one cohort: one compiled program, one MLflow run each.

:func:`run_cohort` is :func:`cnnkeras.runner.run` for K configs at once. The
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
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Sequence

from .backend import use_backend
from .config.schema import ExperimentConfig
from .errors import CnnkerasError
from .lazy import lazy_import
from .runner import RunResult, fresh_run_name, run_guards, finish, flushed, prepare, start_logging
from .tracking import BackgroundTracker, flatten
from .training.cohort import fit_cohort
from .training.reproducibility import environment

keras = lazy_import("keras")

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


@run_guards
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

    Args:
        configs: Validated configs with one :func:`cohort_key`.
        progress: Show one progress bar for the cohort.
        callbacks: Extra Keras callbacks per member (a sweep's pruning callbacks).
        trackers: Already started trackers, one per member; the caller closes them on
            success (as in :func:`cnnkeras.runner.run`). Default: a run per member.
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
    first = configs[0]
    k = len(configs)
    use_backend(first.backend)
    data, models = None, []
    for cfg in configs:  # each member seeded and built exactly as its own run would be
        data, model = prepare(cfg, data)
        models.append(model)
    source_file = first._source.file if first._source is not None else None
    env = environment(source_file)
    owns = trackers is None
    if trackers is None:
        trackers = [BackgroundTracker(uri=c.tracking.uri, experiment=c.tracking.experiment or c.name,
                                      run_name=c.tracking.run_name or fresh_run_name(c), parent_run_id=parent_run_id,
                                      tags={**c.tracking.tags, "cnnkeras.cohort_size": str(k)})
                    if c.tracking.enabled else None for c in configs]
    outcomes: list[RunResult | Exception] = []
    try:
        with ExitStack() as stack:
            folders = []
            for tracker, cfg, model in zip(trackers, configs, models):
                folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cnnkeras-")))
                stack.enter_context(flushed(tracker))
                folders.append(folder)
                if tracker is not None:
                    start_logging(tracker, cfg, data, model, env, folder,
                                  cfg._source.file if cfg._source is not None else None)
            results = _fit(models, data, configs, trackers, folders, callbacks, progress, title)
            for tracker, folder, cfg, model, result in zip(trackers, folders, configs, models, results):
                try:
                    summary = finish(tracker, folder, cfg, model, result, close=owns)
                except (CnnkerasError, OSError) as exc:  # this member only: diverged, or its artifacts
                    if tracker is not None:
                        tracker.end("FAILED", f"{type(exc).__name__}: {exc}")
                    outcomes.append(exc)
                    continue
                outcomes.append(RunResult(
                    config=cfg, run_id=tracker.run_id if tracker is not None else None, history=result.history,
                    epochs_run=result.epochs_run, best_epoch=result.best_epoch, summary=summary,
                    stopped_early=result.stopped_early, tracking_uri=tracker.uri if tracker is not None else None,
                    model=model))
    except KeyboardInterrupt:
        _end_open(trackers, outcomes, "KILLED", "interrupted (Ctrl-C)")
        raise
    except BaseException as exc:
        _end_open(trackers, outcomes, "FAILED", f"{type(exc).__name__}: {exc}")
        raise
    return outcomes


def _fit(models: list, data: Any, configs: Sequence[ExperimentConfig], trackers: Sequence[Any],
         folders: list[Path], callbacks: Sequence[Sequence[Any]] | None, progress: bool, title: str | None) -> list:
    listeners = [[t] if t is not None else [] for t in trackers]
    return fit_cohort(models, data, configs, listeners=listeners, callbacks=callbacks, checkpoint_dirs=folders,
                      progress=progress, title=title)


def _end_open(trackers: Sequence[Any], outcomes: list, status: str, reason: str) -> None:
    """Close the runs of the members not finished yet (the first ``len(outcomes)`` are)."""
    for tracker in list(trackers)[len(outcomes):]:
        if tracker is not None:
            tracker.end(status, reason)
