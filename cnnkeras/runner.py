"""Run one experiment end to end, and reproduce a logged run.

:func:`run` is the one code path for a single run and for a sweep's trial (a
trial is a run with overrides, a parent run and extra listeners):

    config -> seeds -> data -> model (+augmentation) -> compile
           -> MLflow run (params, tags, config, environment)
           -> fit (per-epoch metrics and gaps) -> test -> artifacts -> FINISHED

Everything that can be wrong with the config, the data or the model is found
before the MLflow run starts. A run that fails after that (non-finite loss,
exception, Ctrl-C) is closed as FAILED or KILLED with the reason as a tag.
"""

from __future__ import annotations

import functools
import json
import math
import os
import secrets
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import yaml

from .backend import use_backend
from .config import config_from_dict
from .config.schema import ExperimentConfig
from .data.augment import with_augmentation
from .data.dataset import load_dataset
from .errors import CnnkerasError, DataError, TrainingDiverged
from .interrupts import deferred_interrupts
from .lazy import lazy_import
from .measures import TIMING_KEYS, summarize
from .tracking import TAG_PREFIX, BackgroundTracker, default_tracking_uri, download_artifact, flatten, read_run
from .training.compile import compile_model, steps_per_epoch
from .training.fit import fit_and_evaluate
from .training.graph_release import release_traced_graphs
from .training.plots import learning_curves, write_html
from .training.reproducibility import environment, seed_everything
from .zoo.build import model_from_config

keras = lazy_import("keras")

__all__ = ["ReproduceResult", "RunResult", "TrainingDiverged", "check_labels", "reproduce", "run"]



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
        fig = learning_curves(result.history, best_epoch=result.best_epoch, title=config.name)
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


@run_guards
def run(
    config: ExperimentConfig,
    *,
    progress: bool = True,
    listeners: Sequence[Any] = (),
    callbacks: Sequence[Any] = (),
    parent_run_id: str | None = None,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    tracker: Any = None,
) -> RunResult:
    """Train and evaluate one experiment, tracked in MLflow.

    Args:
        config: A validated config (:func:`cnnkeras.load_config`; ``cnnkeras.run`` also takes a path).
        progress: Show Rich progress (a line per epoch when not on a terminal).
        listeners: Extra epoch listeners (``on_epoch(epoch, record)``).
        callbacks: Extra Keras callbacks (a sweep's pruning callback).
        parent_run_id: Log as a nested run of this MLflow run.
        run_name, tags: Override the run name and add tags.
        tracker: An already started :class:`~cnnkeras.tracking.Tracker` to log into.
            The caller then closes it on success (a sweep tags the trial's state
            first); on failure ``run`` still closes it as FAILED or KILLED.

    Returns:
        A :class:`RunResult`. Raises :class:`TrainingDiverged` when the loss
        stops being finite (the run is then FAILED in MLflow).
    """
    cfg = config
    source_file = cfg._source.file if cfg._source is not None else None

    # Everything that can fail on bad input happens before the MLflow run starts.
    use_backend(cfg.backend)  # Keras is loaded by now: this only refuses a config asking for another backend
    data, model = prepare(cfg)
    env = environment(source_file)

    owns_tracker = tracker is None
    if tracker is None and cfg.tracking.enabled:  # the run is created while training starts
        tracker = BackgroundTracker(
            uri=cfg.tracking.uri, experiment=cfg.tracking.experiment or cfg.name,
            run_name=run_name or cfg.tracking.run_name or fresh_run_name(cfg), parent_run_id=parent_run_id,
            tags={**cfg.tracking.tags, **(tags or {})},
        )
    all_listeners = ([tracker] if tracker is not None else []) + list(listeners)
    try:
        with tempfile.TemporaryDirectory(prefix="cnnkeras-") as tmp, flushed(tracker):
            folder = Path(tmp)
            if tracker is not None:
                start_logging(tracker, cfg, data, model, env, folder, source_file)
            result = fit_and_evaluate(model, data, cfg, listeners=all_listeners, callbacks=callbacks,
                                      checkpoint_dir=folder, progress=progress)
            summary = finish(tracker, folder, cfg, model, result, close=owns_tracker)
    except KeyboardInterrupt:
        if tracker is not None:
            tracker.end("KILLED", "interrupted (Ctrl-C)")
        raise
    except BaseException as exc:
        if tracker is not None:
            tracker.end("FAILED", f"{type(exc).__name__}: {exc}")
        raise
    return RunResult(
        config=cfg, run_id=tracker.run_id if tracker is not None else None, history=result.history,
        epochs_run=result.epochs_run, best_epoch=result.best_epoch, summary=summary,
        stopped_early=result.stopped_early, tracking_uri=tracker.uri if tracker is not None else None, model=model,
    )


def prepare(cfg: ExperimentConfig, data: Any = None) -> tuple[Any, Any]:
    """Seed, load and check the data (unless given), build and compile the model: ``(data, model)``.

    The same steps in the same order for a run and for each member of a cohort
    (:mod:`cnnkeras.cohort`), so both draw the same initial weights for a seed.
    """
    keras.backend.clear_session()
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


def finish(tracker: Any, folder: Path, cfg: ExperimentConfig, model: Any, result: Any, *, close: bool) -> dict:
    """A trained model's summary metrics, logged with its artifacts; the run closed FINISHED when ``close``.

    Raises :class:`TrainingDiverged` (after logging the summary) when the loss stopped being finite.
    """
    summary = summarize(result.history, result.best_epoch, result.test)
    summary["train_time_s"] = result.train_time_s
    if tracker is not None:
        tracker.log_metrics(summary)
    if result.diverged is not None:
        where = f" (MLflow run {tracker.run_id}, closed FAILED)" if tracker is not None else ""
        raise TrainingDiverged(f"training diverged: {result.diverged}{where}",
                               tracker.run_id if tracker is not None else None)
    if tracker is not None:
        _log_artifacts(tracker, folder, cfg, model, result)
        if close:
            tracker.end("FINISHED")
    return summary


@contextmanager
def flushed(tracker: Any) -> Iterator[None]:
    """On every way out, the tracker's queued calls are done before the files they log are deleted."""
    try:
        yield
    finally:
        if tracker is not None:
            tracker.flush()


def _log_artifacts(tracker: Any, folder: Path, cfg: ExperimentConfig, model: Any, result: Any) -> None:
    """The trained model first (nothing after it can lose it), then the records and plots.

    A full disk or a file-size limit becomes one clear error that says the model is safe.
    """
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


def start_logging(tracker: Any, cfg: ExperimentConfig, data: Any, model: Any, env: dict[str, Any],
                   folder: Path, source_file: str | None) -> None:
    """Params, tags, resolved config and environment: logged before training starts."""
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
    result = run(cfg, progress=progress, tags={f"{TAG_PREFIX}reproduces": run_id},
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
