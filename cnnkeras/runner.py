"""One run lifecycle: a single run, a sweep's trial and a cohort member all go through it.

:func:`run_members` is the one path, for K >= 1 experiments (K > 1: a cohort trained as
one program, :mod:`cnnkeras.training.cohort`)::

    prepare   configs -> seeds -> data (once) -> K models, compiled     (bad input fails here,
              -> K tracked runs (params, tags, config, environment)      before any run exists)
    fit       one fit for all K: per-epoch metrics and gaps, callbacks, test
    finish    per member, in order: pruning decision, summary, artifacts,
              the run closed (FINISHED, or FAILED with its reason and traceback)

Every ending lands in ``finish`` or in the one ``except`` around the fit: done, pruned,
diverged, failed, Ctrl-C, SIGTERM/SIGHUP (KILLED). :func:`run` is ``run_members`` for one
config; :func:`cnnkeras.cohort.run_cohort` for several; a sweep's trial
(:mod:`cnnkeras.studies.objective`) adds its hooks (:class:`MemberHooks`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import secrets
import tempfile
import time
import traceback as traceback_module
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .backend import use_backend
from .config import config_from_dict
from .config.schema import ExperimentConfig
from .data.augment import with_augmentation
from .data.dataset import load_dataset
from .errors import CnnkerasError, DataError, TrainingDiverged
from .interrupts import closing as closing_runs
from .interrupts import deferred_interrupts, interrupt_reason
from .lazy import lazy_import
from .measures import TIMING_KEYS, best_epoch_of, summarize
from .tracking import (
    TAG_PREFIX,
    BackgroundTracker,
    NullTracker,
    RunTracker,
    default_tracking_uri,
    download_artifact,
    flatten,
    read_run,
    redact,
)
from .training.cohort import fit_cohort
from .training.compile import compile_model, steps_per_epoch
from .training.fit import FitResult, fit_and_evaluate
from .training.graph_release import release_traced_graphs
from .training.plots import learning_curves, write_html
from .training.predictions import BestEpochPredictions, picture_sample
from .training.predictions import pictures as prediction_pictures
from .training.reproducibility import environment, seed_everything
from .zoo.build import model_from_config

keras = lazy_import("keras")

__all__ = ["Ending", "MemberHooks", "MemberOutcome", "ReproduceResult", "RunResult", "TrainingDiverged", "check_labels",
           "open_tracker", "prepare", "reproduce", "run", "run_members", "truncated"]



@dataclass
class RunResult:
    """What a run produced, as logged to MLflow (``model`` is the trained Keras model)."""

    config: ExperimentConfig
    run_id: str | None
    history: dict[str, list[float]]
    epochs_run: int
    best_epoch: int
    summary: dict[str, float]
    stopped_early: bool = False
    tracking_uri: str | None = None
    model: Any = field(default=None, repr=False)

    @property
    def test(self) -> dict[str, float]:
        return {k: v for k, v in self.summary.items() if k.startswith("test_")}


def check_labels(y: np.ndarray, *, head: str, num_outputs: int) -> None:
    """Refuse labels the head cannot learn (binary needs 0/1; multiclass needs < classes; masks need
    head segmentation, and it needs masks)."""
    if (y.ndim == 3) != (head == "segmentation"):
        raise DataError("data: the labels are masks (a class per pixel): set model.head: segmentation"
                        if y.ndim == 3 else
                        "data: head segmentation needs masks (N, H, W), but the labels are one class per image")
    if head == "binary" and not set(np.unique(y).tolist()) <= {0, 1}:
        raise DataError(
            f"data: the binary head needs labels 0 and 1, found {sorted(np.unique(y).tolist())[:12]}; "
            "pick two classes with data.classes: [a, b]"
        )
    if head == "multiclass" and len(y) and (y.min() < 0 or y.max() >= num_outputs):
        raise DataError(f"data: labels out of range for a {num_outputs}-class head: {int(y.min())}..{int(y.max())}")


def _save_model(folder: Path, model: Any, result: Any, *, log_model: bool) -> None:
    """model/model.keras and checkpoints/best.keras: written (and logged) before anything else."""
    if log_model:
        (folder / "model").mkdir(exist_ok=True)
        model.save(folder / "model" / "model.keras")
    if result.checkpoint is not None:
        (folder / "checkpoints").mkdir(exist_ok=True)
        os.replace(result.checkpoint, folder / "checkpoints" / "best.keras")


def _write_records(folder: Path, config: ExperimentConfig, model: Any, result: Any, *, log_plots: bool) -> None:
    """history.json, model_summary.txt and plots/learning_curves.html (about 4 MB)."""
    (folder / "history.json").write_text(json.dumps(result.history, indent=1))
    lines: list[str] = []
    model.summary(print_fn=lambda text, line_break=True: lines.append(text), expand_nested=True)
    (folder / "model_summary.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if log_plots:
        fig = learning_curves(result.history, best_epoch=result.best_epoch, title=config.name,
                              monitor=config.train.monitor)
        write_html(fig, folder / "plots" / "learning_curves.html")


@contextmanager
def _dtype_policy_restored() -> Iterator[None]:
    """The run sets the global dtype policy (mixed precision or not); put back the caller's after."""
    previous = keras.config.dtype_policy()
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def run_guards(fn: Any) -> Any:
    """Wrap a run: Ctrl-C stops at an epoch boundary, never inside an MLflow write
    (:mod:`cnnkeras.interrupts`), TensorFlow drops the graphs the run traced
    (:mod:`cnnkeras.training.graph_release`), and the dtype policy is restored."""

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        with deferred_interrupts(), release_traced_graphs(), _dtype_policy_restored():
            return fn(*args, **kwargs)

    return guarded


class Ending(str, Enum):
    """How one member's run ended (its MLflow status follows: FINISHED for the first two)."""

    FINISHED = "finished"
    PRUNED = "pruned"
    DIVERGED = "diverged"
    FAILED = "failed"


@dataclass
class MemberOutcome:
    """One member's ending: its result (finished or pruned), or the error that ended it alone.

    ``status`` and ``tags`` are what its MLflow run is closed with; a hook may change them
    (a sweep closes a run FAILED when the objective is missing).
    """

    config: ExperimentConfig
    ending: Ending
    run_id: str | None
    result: RunResult | None = None
    error: BaseException | None = None
    reason: str | None = None
    traceback: str | None = None
    pruned_at: int | None = None
    tags: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "FINISHED" if self.ending in (Ending.FINISHED, Ending.PRUNED) else "FAILED"


class MemberHooks:
    """How a caller takes part in finishing each member (a sweep's trial overrides these).

    Called in member order, one member at a time: :meth:`pruned_at` decides whether the
    member was pruned (and at which epoch), :meth:`verdict` may change the outcome before
    its run is closed, :meth:`closed` learns the final outcome after.
    """

    def pruned_at(self, index: int, fit: FitResult) -> int | None:
        return None

    def verdict(self, index: int, outcome: MemberOutcome) -> MemberOutcome:
        return outcome

    def closed(self, index: int, outcome: MemberOutcome) -> None:
        pass

    def failure_reason(self, exc: BaseException) -> str:
        """The reason the runs are closed with when the whole program fails (not an interrupt)."""
        return one_line(exc)


def open_tracker(cfg: ExperimentConfig, *, run_name: str | None = None, parent_run_id: str | None = None,
                 tags: Mapping[str, Any] | None = None) -> RunTracker:
    """The run's tracker: an MLflow run created from a worker thread, or nothing when tracking is off."""
    if not cfg.tracking.enabled:
        return NullTracker()
    return BackgroundTracker(uri=cfg.tracking.uri, experiment=cfg.tracking.experiment or cfg.name,
                             run_name=run_name or cfg.tracking.run_name or fresh_run_name(cfg),
                             parent_run_id=parent_run_id, tags={**cfg.tracking.tags, **(tags or {})},
                             wait_s=cfg.tracking.wait_s)


@run_guards
def run_members(
    configs: Sequence[ExperimentConfig],
    *,
    trackers: Sequence[RunTracker] | None = None,
    callbacks: Sequence[Sequence[Any]] | None = None,
    listeners: Sequence[Sequence[Any]] | None = None,
    hooks: MemberHooks | None = None,
    live_epochs: bool = True,
    progress: bool = True,
    parent_run_id: str | None = None,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    title: str | None = None,
) -> list[MemberOutcome]:
    """Train and evaluate K >= 1 experiments (K > 1: one program), each in its own tracked run.

    Args:
        configs: Validated configs; for K > 1 they share one training loop
            (:func:`cnnkeras.cohort.cohort_key`).
        trackers: Started trackers, one per member (a sweep's trials create theirs first, to
            record the run ids); default: one new run per member (``run_name``, ``tags``,
            ``parent_run_id``).
        callbacks, listeners: Extra Keras callbacks and epoch listeners per member.
        hooks: Pruning decision and verdict per member (:class:`MemberHooks`).
        live_epochs: Log each epoch to MLflow as it ends; False logs the epochs at finish,
            after the pruning decision (a cohort replaying its pruning in member order).
        progress: Show a progress bar (a line per epoch off a terminal).
        title: The progress bar's title.

    Returns:
        One :class:`MemberOutcome` per member. A failure of the whole program (out of
        memory, Ctrl-C, SIGTERM) raises instead, after closing every member's run
        (KILLED or FAILED, with the reason and the traceback).
    """
    k = len(configs)
    if k == 0:
        raise CnnkerasError("run_members needs at least one config")
    hooks = hooks or MemberHooks()
    first = configs[0]
    opened: list[RunTracker] = list(trackers) if trackers is not None else []
    outcomes: list[MemberOutcome] = []
    try:
        use_backend(first.backend)  # Keras is loaded by now: this only refuses a config asking for another backend
        # Everything that can fail on bad input happens before any run of ours is created.
        data, models = None, []
        for cfg in configs:  # each member seeded and built exactly as its own run would be
            data, model = prepare(cfg, data)
            models.append(model)
        assert data is not None
        source_file = first._source.file if first._source is not None else None
        env = environment(source_file)
        if trackers is None:
            extra = {**(tags or {}), **({f"{TAG_PREFIX}cohort_size": str(k)} if k > 1 else {})}
            for cfg in configs:
                opened.append(open_tracker(cfg, run_name=run_name, parent_run_id=parent_run_id, tags=extra))
        buffers: list[list[tuple[int, dict[str, float]]]] = [[] for _ in configs]
        epoch_listeners = [[tracker if live_epochs else _Buffer(buffer), *own]
                           for tracker, buffer, own in zip(opened, buffers, listeners or [()] * k)]
        with ExitStack() as stack:
            folders = []
            for tracker, cfg, model in zip(opened, configs, models):
                folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cnnkeras-")))
                stack.enter_context(flushed(tracker))
                folders.append(folder)
                start_logging(tracker, cfg, data, model, env, folder,
                              cfg._source.file if cfg._source is not None else None)
            per_member: list[Sequence[Any]] = list(callbacks) if callbacks is not None else [()] * k
            pictures = [_pictures_callback(cfg, data, tracker) for cfg, tracker in zip(configs, opened)]
            per_member = [[*own, *([p] if p is not None else [])] for own, p in zip(per_member, pictures)]
            if k == 1:
                fits = [fit_and_evaluate(models[0], data, first, listeners=epoch_listeners[0],
                                         callbacks=per_member[0], checkpoint_dir=folders[0], progress=progress,
                                         title=title)]
            else:
                fits = fit_cohort(models, data, configs, listeners=epoch_listeners, callbacks=per_member,
                                  checkpoint_dirs=folders, progress=progress, title=title)
            for index in range(k):
                outcome = _finish_member(index, configs[index], opened[index], models[index], fits[index],
                                         folders[index], buffers[index], hooks, live_epochs, pictures[index],
                                         data.class_names)
                outcomes.append(outcome)
                hooks.closed(index, outcome)
    except BaseException as exc:
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        reason = interrupt_reason(exc) if isinstance(exc, KeyboardInterrupt) else hooks.failure_reason(exc)
        for tracker in opened[len(outcomes):]:
            try:
                _close(tracker, status, reason, None if status == "KILLED" else format_exception(exc))
            except Exception:  # noqa: BLE001 - the store is failing too; the error that ended the runs goes on
                pass
        raise
    return outcomes


class _Buffer:
    """An epoch listener that keeps the records, for runs whose epochs are logged at finish."""

    def __init__(self, records: list[tuple[int, dict[str, float]]]):
        self.records = records

    def on_epoch(self, epoch: int, record: dict[str, float]) -> None:
        self.records.append((epoch, dict(record)))


def _pictures_callback(cfg: ExperimentConfig, data: Any, tracker: RunTracker) -> BestEpochPredictions | None:
    """The callback that keeps the best epoch's predictions of the run's picture sample (tracked runs only)."""
    if isinstance(tracker, NullTracker) or not cfg.tracking.log_predictions:
        return None
    sample = picture_sample(data, segmentation=cfg.model.head == "segmentation", seed=cfg.seed)
    if sample is None:
        return None
    return BestEpochPredictions(sample, cfg.train.monitor, batch_size=max(cfg.train.batch_size, 256))


def _log_pictures(tracker: RunTracker, cfg: ExperimentConfig, fit: FitResult, callback: BestEpochPredictions | None,
                  class_names: Sequence[str]) -> None:
    """The pictures of the run's best epoch (:mod:`cnnkeras.training.predictions`) as MLflow images."""
    found = callback.best_until(fit.epochs_run) if callback is not None else None
    if found is None:
        return
    epoch, outputs = found
    assert callback is not None  # found came from it
    drawn = prediction_pictures(callback.sample, outputs, head=cfg.model.head, epoch=epoch, class_names=class_names)
    for name, image in drawn.items():
        tracker.log_image(image, f"predictions/{name}", step=epoch)


def _finish_member(index: int, cfg: ExperimentConfig, tracker: RunTracker, model: Any, fit: FitResult,
                   folder: Path, buffered: list[tuple[int, dict[str, float]]], hooks: MemberHooks,
                   live_epochs: bool, pictures: BestEpochPredictions | None = None,
                   class_names: Sequence[str] = ()) -> MemberOutcome:
    """One member's ending: pruning decision, summary, artifacts, verdict, the run closed."""
    outcome = MemberOutcome(config=cfg, ending=Ending.FINISHED, run_id=tracker.run_id)
    try:
        pruned_at = hooks.pruned_at(index, fit)
        if pruned_at is not None:
            fit = truncated(fit, pruned_at, monitor=cfg.train.monitor)
            outcome.ending, outcome.pruned_at = Ending.PRUNED, pruned_at
            outcome.reason = f"pruned at epoch {pruned_at}"
        if not live_epochs:
            for epoch, record in buffered[: fit.epochs_run]:
                tracker.on_epoch(epoch, record)
        summary = summarize(fit.history, fit.best_epoch, fit.test)
        summary["train_time_s"] = fit.train_time_s
        tracker.log_metrics(summary)
        outcome.result = RunResult(
            config=cfg, run_id=tracker.run_id, history=fit.history, epochs_run=fit.epochs_run,
            best_epoch=fit.best_epoch, summary=summary, stopped_early=fit.stopped_early,
            tracking_uri=tracker.uri, model=model)
        if fit.diverged is not None:
            where = f" (MLflow run {tracker.run_id}, closed FAILED)" if tracker.run_id else ""
            raise TrainingDiverged(f"training diverged: {fit.diverged}{where}", tracker.run_id)
        _log_artifacts(tracker, folder, cfg, model, fit)
        _log_pictures(tracker, cfg, fit, pictures, class_names)
    except (CnnkerasError, OSError) as exc:  # this member only: diverged, or its artifacts
        outcome.ending = Ending.DIVERGED if isinstance(exc, TrainingDiverged) else Ending.FAILED
        outcome.error, outcome.reason = exc, one_line(exc)
        outcome.traceback = None if isinstance(exc, TrainingDiverged) else format_exception(exc)
    outcome = hooks.verdict(index, outcome)
    try:
        if outcome.tags:
            tracker.set_tags(outcome.tags)
        _close(tracker, outcome.status, None if outcome.status == "FINISHED" else outcome.reason, outcome.traceback)
    except CnnkerasError as exc:  # tracking itself failed (the tracker closed the run FAILED): this member fails
        outcome.ending, outcome.error, outcome.reason = Ending.FAILED, exc, one_line(exc)
    return outcome


def _close(tracker: RunTracker, status: str, reason: str | None, traceback: str | None) -> None:
    """Close a run; a failure's traceback is kept with it (``failure/traceback.txt``). A second stop signal
    does not abort the closing (:func:`~cnnkeras.interrupts.closing`)."""
    with closing_runs():
        if traceback:
            try:
                tracker.log_text(traceback, "failure/traceback.txt")
            except CnnkerasError:
                pass  # the run could not take it; the reason tag still says what happened
        tracker.end(status, reason)


def truncated(fit: FitResult, epochs: int, *, monitor: str) -> FitResult:
    """``fit`` as it stood after ``epochs`` epochs (a pruned member): later epochs, test and checkpoint dropped."""
    history = {key: values[:epochs] for key, values in fit.history.items()}
    return dataclasses.replace(fit, history=history, epochs_run=min(epochs, fit.epochs_run),
                               best_epoch=best_epoch_of(history, monitor), test={}, checkpoint=None,
                               diverged=fit.diverged if fit.epochs_run <= epochs else None, stopped_early=False)


def one_line(exc: BaseException) -> str:
    """An exception for people: ``Type: first line`` (500 characters at most), passwords masked."""
    text = (str(exc).strip().splitlines() or [""])[0]
    return redact(f"{type(exc).__name__}: {text}"[:500])


def format_exception(exc: BaseException) -> str:
    """The whole traceback of ``exc``, passwords masked (kept as the failed run's artifact)."""
    return redact("".join(traceback_module.format_exception(type(exc), exc, exc.__traceback__)))


def run(
    config: ExperimentConfig,
    *,
    progress: bool = True,
    listeners: Sequence[Any] = (),
    callbacks: Sequence[Any] = (),
    parent_run_id: str | None = None,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    tracker: RunTracker | None = None,
) -> RunResult:
    """Train and evaluate one experiment, tracked in MLflow (:func:`run_members` for one config).

    Args:
        config: A validated config (:func:`cnnkeras.load_config`; ``cnnkeras.run`` also takes a path).
        progress: Show Rich progress (a line per epoch when not on a terminal).
        listeners: Extra epoch listeners (``on_epoch(epoch, record)``).
        callbacks: Extra Keras callbacks.
        parent_run_id: Log as a nested run of this MLflow run.
        run_name, tags: Override the run name and add tags.
        tracker: An already started :class:`~cnnkeras.tracking.RunTracker` to log into.

    Returns:
        A :class:`RunResult`. Raises :class:`TrainingDiverged` when the loss stops being
        finite, and the error that ended the run otherwise (the run is then FAILED in MLflow,
        KILLED for Ctrl-C and SIGTERM).
    """
    [outcome] = run_members([config], trackers=None if tracker is None else [tracker], callbacks=[callbacks],
                            listeners=[listeners], progress=progress, parent_run_id=parent_run_id,
                            run_name=run_name, tags=tags)
    if outcome.error is not None:
        raise outcome.error
    assert outcome.result is not None
    return outcome.result


_models_prepared = 0  # models built by prepare() in this process


def prepare(cfg: ExperimentConfig, data: Any = None) -> tuple[Any, Any]:
    """Seed, load and check the data (unless given), build and compile the model: ``(data, model)``.

    The same steps in the same order for a run and for each member of a cohort, so both
    draw the same initial weights for a seed.
    """
    global _models_prepared
    # Keras' names and state start afresh for every model; the garbage collection that frees the
    # previous models' memory is skipped for a process's first model (0.3-0.7 CPU s with nothing to free)
    keras.backend.clear_session(free_memory=_models_prepared > 0)
    _models_prepared += 1
    keras.config.set_dtype_policy("mixed_float16" if cfg.train.mixed_precision else "float32")
    seed_everything(cfg.seed, deterministic=cfg.deterministic)
    if data is None:
        data = load_dataset(cfg.data, seed=cfg.seed)
        check_labels(data.y_train, head=cfg.model.head, num_outputs=data.num_classes)
    classes = data.num_classes
    if cfg.model.head == "segmentation" and classes == 2:  # one foreground class: a sigmoid
        classes = 1
    model = model_from_config(cfg.model, input_shape=data.input_shape, num_classes=classes)
    if cfg.model.head != "segmentation":  # (segmentation: the batches are augmented, masks with images)
        model = with_augmentation(model, cfg.data.augmentation, seed=cfg.seed)
    compile_model(model, cfg.train, head=cfg.model.head, loss=cfg.model.loss,
                  steps_per_epoch=steps_per_epoch(len(data.x_train), cfg.train.batch_size))
    return data, model


@contextmanager
def flushed(tracker: RunTracker) -> Iterator[None]:
    """On every way out, the tracker's queued calls are done before the files they log are deleted."""
    try:
        yield
    finally:
        tracker.flush()


def _log_artifacts(tracker: RunTracker, folder: Path, cfg: ExperimentConfig, model: Any, result: Any) -> None:
    """The trained model first (nothing after it can lose it), then the records and plots.

    A full disk or a file-size limit becomes one clear error that says the model is safe.
    """
    if isinstance(tracker, NullTracker):
        return
    for name, write in (("model", lambda out: _save_model(out, model, result, log_model=cfg.tracking.log_model)),
                        ("records", lambda out: _write_records(out, cfg, model, result,
                                                               log_plots=cfg.tracking.log_plots))):
        out = folder / name
        out.mkdir()
        try:
            write(out)
            tracker.log_artifacts(out)
        except OSError as exc:
            saved = "; the trained model was logged first" if name != "model" else ""
            raise CnnkerasError(f"could not write the run's {name} ({exc.strerror or exc}){saved} "
                                f"(MLflow run {tracker.run_id}, closed FAILED)") from None


def fresh_run_name(config: ExperimentConfig) -> str:
    """``<name>-<month><day>-<time>-<4 hex>``: MLflow's own names come from ``random``, which the
    run has just seeded, so every run of one seed would get the same name."""
    return f"{config.name}-{time.strftime('%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def start_logging(tracker: RunTracker, cfg: ExperimentConfig, data: Any, model: Any, env: dict[str, Any],
                  folder: Path, source_file: str | None) -> None:
    """Params, tags, resolved config and environment: logged before training starts."""
    if isinstance(tracker, NullTracker):
        return
    params = flatten(cfg.to_dict())
    params.update({f"data.{k}": v for k, v in flatten(data.summary()).items()})
    params["model.params"] = str(model.count_params())
    tracker.log_params(params)
    git = (env["git"] or {}).get("experiment") or (env["git"] or {}).get("cnnkeras") or {}
    tags = {
        f"{TAG_PREFIX}arch": cfg.model.arch,
        f"{TAG_PREFIX}backend": env["backend"],
        f"{TAG_PREFIX}seed": cfg.seed,
        f"{TAG_PREFIX}version": env["packages"].get("cnnkeras", "dev"),
    }
    if source_file:
        tags[f"{TAG_PREFIX}config_file"] = str(Path(source_file).resolve())
    if git:
        tags["mlflow.source.git.commit"] = git["commit"]
        tags[f"{TAG_PREFIX}git_dirty"] = git["dirty"]
    if cfg.description:
        tags["mlflow.note.content"] = cfg.description
    tracker.set_tags(tags)
    meta = folder / "meta"
    meta.mkdir()
    (meta / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    (meta / "environment.json").write_text(json.dumps(env, indent=1), encoding="utf-8")
    tracker.log_artifacts(meta)


# ----------------------------------------------------------------- reproduce


@dataclass
class ReproduceResult:
    """A re-run of a logged run and how its metrics compare."""

    original_run_id: str
    new_run_id: str | None
    differences: dict[str, float]  # metric -> largest absolute difference
    compared: int
    tolerance: float

    @property
    def matches(self) -> bool:
        return all(d <= self.tolerance for d in self.differences.values())


def _largest_difference(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) != len(b):
        return math.inf
    diffs = [0.0 if (x == y or (math.isnan(x) and math.isnan(y))) else abs(x - y) for x, y in zip(a, b)]
    return max(diffs, default=0.0)


def reproduce(run_id: str, *, uri: str | None = None, tolerance: float = 0.0, progress: bool = True,
              original: Mapping[str, Any] | None = None) -> ReproduceResult:
    """Re-run a logged run from its saved config and compare every metric, epoch by epoch.

    ``original`` is the run as :func:`~cnnkeras.tracking.read_run` returned it, when the
    caller has read it already (``cnnkeras.reproduce``, to choose its backend).
    """
    uri = default_tracking_uri(uri)
    original = original if original is not None else read_run(run_id, uri=uri)
    if original["status"] != "FINISHED":
        raise CnnkerasError(f"run {run_id} is {original['status']}, not FINISHED: only a finished run has "
                            "every epoch and the test metrics to compare against")
    with tempfile.TemporaryDirectory() as tmp:
        raw = yaml.safe_load(download_artifact(run_id, "config.yaml", tmp, uri=uri).read_text(encoding="utf-8"))
    raw.setdefault("tracking", {})["uri"] = uri
    cfg = config_from_dict(raw)
    # Nested under the run it re-runs (never a top-level run among a sweep's), and tagged as such.
    tags = {f"{TAG_PREFIX}reproduces": run_id, f"{TAG_PREFIX}kind": "reproduce",
            "mlflow.note.content": f"Re-run of MLflow run {run_id} ({original['run_name']}) from its saved config, "
                                   "to compare every metric epoch by epoch (cnnkeras reproduce)."}
    result = run(cfg, progress=progress, tags=tags, parent_run_id=run_id,
                 run_name=f"reproduce-{original['run_name'] or run_id[:8]}")
    differences: dict[str, float] = {}
    for key, values in original["histories"].items():
        if key in TIMING_KEYS:
            continue
        if key in result.history:
            differences[key] = _largest_difference(values, result.history[key])
        elif key in result.summary:
            differences[key] = _largest_difference(values[-1:], [result.summary[key]])
        else:
            differences[key] = math.inf
    return ReproduceResult(run_id, result.run_id, differences, len(differences), tolerance)
