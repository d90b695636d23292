"""``cnnkeras report``: one self-contained HTML page about a sweep's overfitting.

Data flow (one way): target -> :func:`~cnnkeras.analysis.source.resolve` -> runs
and curves frames -> claims (:mod:`cnnkeras.analysis.claims`), importances
(:mod:`cnnkeras.studies.importance`), seed summaries -> figures
(:mod:`cnnkeras.reporting.study_figures`) -> the Jinja2 template in
``dashboards/templates/report.html.j2`` -> one HTML file with plotly.js inlined.

The page holds: the claims with their verdicts and plots, learning curves
coloured by a chosen parameter, the gap against each swept parameter, a learning
rate x batch size heat map, importances for accuracy and gap side by side, a
table of settings with mean ± CI over seeds, and a sortable table of runs that
links to the MLflow UI when its address is known. When the target is a study
with a parent run, the report is also logged there as ``reports/report.html``.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..analysis.budget import Budget, comparable, frame_at_budget, resolve_budget
from ..analysis.claims import (
    CONTRADICTED,
    NOISE,
    SUPPORTED,
    ClaimResult,
    ParamScale,
    SweepContext,
    evaluate_claim,
    finished,
    infer_scales,
    param_scales,
    setting_summary,
)
from ..analysis.frames import curves_frame, runs_frame
from ..analysis.source import RunSource, resolve
from ..analysis.values import ordered_values
from ..dashboards import figure_json, number_text, plotly_js, render
from ..errors import CnnkerasError
from ..outputs import output_path
from ..studies.importance import Ranking, frame_importances, importance_columns
from ..tracking import Tracker
from ..version import __version__
from . import study_figures as figs
from .predictions import best_trials_pictures

__all__ = ["ReportResult", "report"]

#: Parameters that vary between runs but are bookkeeping, not treatments.
NOT_TREATMENTS = ("tracking.", "data.n_", "data.source_", "name", "description")
#: How the report names the measures it ranks parameters for (the console prints the column names).
IMPORTANCE_LABELS = {"best_val_accuracy": "validation accuracy", "final_gap_accuracy": "gap (train − val accuracy)",
                     "best_val_mean_iou": "validation mean IoU", "final_gap_mean_iou": "gap (train − val mean IoU)"}
RUN_COLUMNS = ["final_accuracy", "final_train_accuracy", "final_val_accuracy", "best_val_accuracy",
               "final_gap_accuracy", "final_gap_loss",
               "final_mean_iou", "best_val_mean_iou", "final_gap_mean_iou", "best_epoch", "epochs", "onset_epoch",
               "test_accuracy", "test_mean_iou", "test_minus_val_accuracy"]


def headline_measures(runs: pd.DataFrame) -> tuple[str, str, str]:
    """(gap, best validation, final train) columns the report leads with: mean IoU for segmentation runs; the
    training side is the inference-mode training sample (``final_train_*``)."""
    if "final_gap_mean_iou" in runs and runs["final_gap_mean_iou"].notna().any():
        return "final_gap_mean_iou", "best_val_mean_iou", "final_train_mean_iou"
    return "final_gap_accuracy", "best_val_accuracy", "final_train_accuracy"
CSS = {SUPPORTED: "supported", CONTRADICTED: "contradicted", NOISE: "noise"}


@dataclass
class ReportResult:
    """The written page, and what it concluded."""

    path: Path
    runs: int
    claims: list[ClaimResult] = field(default_factory=list)
    importances: dict[str, Ranking] = field(default_factory=dict)
    parent_run_id: str | None = None
    budget: Budget | None = None


def _swept(source: RunSource, runs: pd.DataFrame) -> list[str]:
    if source.swept:
        return source.swept
    varying = [c.removeprefix("param.") for c in runs if c.startswith("param.") and runs[c].nunique() > 1]
    return [p for p in varying if not p.startswith(NOT_TREATMENTS)]


def _mlflow_url(source: RunSource, given: str | None) -> str | None:
    if given:
        return given.rstrip("/")
    uri = source.uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else None


def report(target: str | os.PathLike[str], *, out: str | os.PathLike[str] | None = None, uri: str | None = None,
           storage: str | None = None, color_by: str | None = None, mlflow_url: str | None = None, k: int = 3,
           log_to_parent: bool = True) -> ReportResult:
    """Write the overfitting report of ``target`` (experiment file, study name or MLflow experiment).

    Args:
        target: what to report on (see :func:`cnnkeras.analysis.source.resolve`).
        out: the HTML file; default ``reports/<study or experiment>.html``.
        uri: MLflow tracking URI (default: the config's, or ``$MLFLOW_TRACKING_URI``, or ./mlflow.db).
        storage: Optuna storage of a named study.
        color_by: swept key path that colours the learning curves first.
        mlflow_url: address of a running MLflow UI, for links from the runs table.
        k: rising epochs that mark the onset of overfitting.
        log_to_parent: also log the page on the sweep's parent run.
    """
    source = resolve(target, uri=uri, storage=storage)
    runs = runs_frame(source, k=k)
    curves = curves_frame(source)
    swept = _swept(source, runs)
    scales = param_scales(source.config) if source.config is not None and source.swept else infer_scales(runs, swept)
    config = source.config
    report_cfg = config.report if config is not None else None
    replicate = report_cfg.replicate_key if report_cfg else "seed"
    if replicate in scales:  # repeats are categories, never a numeric axis
        scales[replicate] = ParamScale("levels", tuple(ordered_values(runs[f"param.{replicate}"].dropna())))
    confidence = report_cfg.confidence if report_cfg else 0.95
    color_by = color_by or (report_cfg.color_by if report_cfg else None) or next(
        (p for p in swept if p != replicate), swept[0] if swept else None)
    if color_by is not None and color_by not in swept:
        raise CnnkerasError(f"--color-by {color_by!r} is not a swept parameter; choose one of {swept}")

    done = finished(runs)
    budget = resolve_budget(report_cfg.budget if report_cfg else "auto", runs)
    at_budget = frame_at_budget(runs, curves, budget)
    context = SweepContext.of(config, replicate)
    claims = [evaluate_claim(at_budget, claim, scales, replicate_key=replicate, confidence=confidence, budget=budget,
                             context=context)
              for claim in (report_cfg.claims if report_cfg else [])]
    headline = headline_measures(runs)
    # The same ranking as `cnnkeras sweep` prints: the same function over the same finished trials' final values.
    objectives = [o.metric for o in config.search.objectives] if config is not None and config.search else [headline[1]]
    columns = importance_columns(objectives, segmentation=headline[0] == "final_gap_mean_iou")
    targets = {IMPORTANCE_LABELS.get(c, c): c for c in columns}
    importances = frame_importances(done, scales, targets, seed=config.seed if config else 0)
    page = _render(source, runs, curves, swept, scales, color_by, claims, importances, replicate, confidence, headline,
                   _mlflow_url(source, mlflow_url), at_budget=at_budget, budget=budget,
                   seed=config.seed if config else 0)
    path = output_path(out, what="the report") if out else output_path(
        Path("reports") / f"{_slug(source.label)}.html", what="the report", create_parent=True)
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise CnnkerasError(f"cannot write the report to {path}: {exc.strerror or exc}") from None
    if log_to_parent and source.parent_run_id:
        tracker = Tracker(uri=source.uri, experiment=source.experiment, run_id=source.parent_run_id)
        tracker.log_artifact(path, "reports")
        tracker.client.log_dict(tracker.run_id, [c.to_dict() for c in claims], "reports/claims.json")
    return ReportResult(path, len(runs), claims, importances, source.parent_run_id, budget)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-") or "report"


def _render(source: RunSource, runs: pd.DataFrame, curves: pd.DataFrame, swept: list[str], scales: dict,
            color_by: str | None, claims: list[ClaimResult], importances: dict, replicate: str, confidence: float,
            headline: tuple[str, str, str], mlflow_url: str | None, *, at_budget: pd.DataFrame, budget: Budget,
            seed: int) -> str:
    counted = lambda frame: comparable(frame, budget)  # noqa: E731  (the runs every comparison counts)
    figures: list[dict[str, str]] = []

    def add(fig: Any) -> str:
        figures.append({"id": f"f{len(figures)}", "json": figure_json(fig)})
        return figures[-1]["id"]

    claim_items = []
    for result in claims:
        scale = scales.get(result.parameter)
        claim_items.append({"claim": result.claim, "verdict": result.verdict, "css": CSS.get(result.verdict, "too-few"),
                            "sentence": result.sentence,
                            "figure": add(figs.claim_figure(at_budget, result, _claim_scale(source, result, scale),
                                                            confidence, counted=counted,
                                                            optimum_scale=scales.get(result.optimum_of or "")))})
    treatments = {p: s for p, s in scales.items()}
    sections = []
    if color_by is not None and not curves.empty:
        sections.append({"id": "curves", "nav": "Learning curves", "title": "Learning curves",
                         "hint": "One line per run; the menu at the top right colours them by another parameter. "
                                 "Train on the left, validation on the right.",
                         "figure": add(figs.learning_curves_by(runs, curves, treatments, color_by))})
    if swept:
        sections.append({"id": "gap", "nav": "Gap", "title": "Gap against each swept parameter",
                         "hint": f"At {budget.label}. Dots are runs; diamonds are means over repeats with their "
                                 f"{int(round(confidence * 100))}% confidence interval. The gap's training side is a "
                                 "fixed sample of the training split in inference mode (docs/measures.md).",
                         "figure": add(figs.gap_by_parameter(at_budget, treatments, measures=headline[:2],
                                                             confidence=confidence, counted=counted,
                                                             budget=budget.label))})
    lr, batch = figs.find_param(scales, "learning_rate"), figs.find_param(scales, "batch_size")
    if lr and batch and not counted(at_budget).empty:
        binned = [figs.short(p) for p in (lr, batch) if not scales[p].categorical]
        sections.append({"id": "heatmap", "nav": "LR x batch", "title": "Learning rate x batch size",
                         "hint": f"At {budget.label}: means over the runs in each cell; "
                                 + (f"{' and '.join(binned)} sampled from a range, so binned into up to "
                                    f"{figs.HEATMAP_BINS} ranges" if binned else "one cell per swept value") + ".",
                         "figure": add(figs.lr_batch_heatmap(at_budget, scales, lr, batch, headline[:2],
                                                             counted=counted, budget=budget.label))})
    if importances:
        reasons = [f"{label}: {r.reason}" for label, r in importances.items() if not r and r.reason]
        trials = {r.n_trials for r in importances.values()}
        hint = (f"fANOVA (Optuna, seed {seed}) over the {'/'.join(str(n) for n in sorted(trials))} finished trials' "
                f"final values: the same ranking `cnnkeras sweep` prints. A large share for {replicate} means the "
                "differences are mostly noise. optuna-dashboard computes its own importances (its own evaluator "
                "and settings), which can differ.")
        if reasons:
            hint += " " + "; ".join(reasons) + "."
        sections.append({"id": "importances", "nav": "Importances", "title": "Parameter importances", "hint": hint,
                         "figure": add(figs.importances_side_by_side(importances))})
    notes = _notes(runs, source, budget, at_budget)
    command = "cnnkeras report " + str(source.label)
    return render(
        "report.html.j2", version=__version__, title=f"Overfitting report: {source.label}",
        source_line=_source_line(source), generated_at=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        command=command, counts=_counts(runs), swept=swept, replicate_key=replicate, notes=notes,
        budget=f"{budget.label}" + (f" ({budget.reason})" if budget.reason else ""),
        claims=claim_items, sections=sections, confidence_pct=int(round(confidence * 100)),
        settings=_settings_table(at_budget, swept, replicate, confidence, headline, budget),
        runs_table=_runs_table(runs, swept, mlflow_url),
        mlflow_url=mlflow_url, figures=figures, plotly_js=plotly_js(),
        predictions=best_trials_pictures(runs, headline[1], uri=source.uri, mlflow_url=mlflow_url),
    )


def _claim_scale(source: RunSource, result: ClaimResult, scale: Any) -> Any:
    if source.config is not None:
        for claim in source.config.report.claims:
            if claim.claim == result.claim and claim.levels:
                return ParamScale("levels", tuple(claim.levels))
    return scale or ParamScale("linear")


def _source_line(source: RunSource) -> str:
    parts = [f"MLflow experiment {source.experiment}"]
    if source.study is not None:
        parts.insert(0, f"study {source.study.study_name} ({source.storage})")
    if source.parent_run_id:
        parts.append(f"parent run {source.parent_run_id}")
    return " · ".join(parts)


def _counts(runs: pd.DataFrame) -> dict[str, int]:
    states = runs["trial_state"].fillna(runs["status"]) if "trial_state" in runs else runs["status"]
    states = states.replace({"FINISHED": "COMPLETE"})
    return {str(k): int(v) for k, v in states.value_counts().items()}


def _notes(runs: pd.DataFrame, source: RunSource, budget: Budget, at_budget: pd.DataFrame) -> list[str]:
    notes = []
    counted = comparable(at_budget, budget)
    left = len(runs) - len(counted)
    if left:
        why = ("failed, pruned or unfinished" if budget.kind == "final"
               else f"failed, or stopped before {budget.label}")
        notes.append(f"{left} run(s) ({why}) are listed below but left out of the claims, plots and averages: "
                     "they have no values at the budget compared.")
    pruned = int(runs.get("trial_state", pd.Series(dtype=object)).eq("PRUNED").sum()) if "trial_state" in runs else 0
    if pruned and budget.kind != "final":
        reached = int(counted.get("trial_state", pd.Series(dtype=object)).eq("PRUNED").sum())
        notes.append(f"{reached} of {pruned} pruned trial(s) reached {budget.label} and count, with their values "
                     "there; set report.budget to an earlier epoch to count more of them.")
    if "clean_gap" in runs and not runs["clean_gap"].all():
        old = int((~runs["clean_gap"].astype(bool)).sum())
        notes.append(f"{old} run(s) were logged before the clean gap (no train_* metrics): their gaps are left "
                     "out. The gap_accuracy those runs logged is Keras' training-mode running accuracy minus "
                     "validation accuracy, a different quantity (docs/measures.md); rerun them to compare gaps.")
    if (source.study is not None and source.config is not None and source.config.search is not None
            and source.config.search.pruner.name != "none"):
        notes.append(f"This sweep prunes: trials are compared at {budget.label}, so a pruned trial counts when it "
                     "reached it. For claims, pruner: none and a grid over seeds compare every run "
                     "(see experiments/findings).")
    return notes


def _cell(value: Any, *, href: str | None = None, css: str | None = None) -> dict[str, Any]:
    if isinstance(value, float) and math.isnan(value):
        value = None
    sort = "" if value is None else (repr(float(value)) if isinstance(value, (int, float)) and not isinstance(
        value, bool) else str(value))
    return {"text": number_text(value) if not isinstance(value, str) else value, "sort": sort, "href": href, "css": css}


def _settings_table(runs: pd.DataFrame, swept: list[str], replicate: str, confidence: float,
                    headline: tuple[str, str, str], budget: Budget | None = None) -> dict[str, Any]:
    measures = list(headline)
    table = setting_summary(runs, swept, measures, replicate_key=replicate, confidence=confidence, budget=budget)
    if table.empty or replicate not in swept:
        return {"columns": [], "rows": []}
    keys = [p for p in swept if p != replicate]
    columns = [figs_short(p) for p in keys] + ["runs"] + [f"{m} (mean ± CI)" for m in measures if f"{m}_mean" in table]
    rows = []
    for _, row in table.iterrows():
        cells = [_cell(row[p]) for p in keys] + [_cell(int(row["n"]))]
        for m in measures:
            if f"{m}_mean" not in table:
                continue
            mean, low, high = row[f"{m}_mean"], row[f"{m}_low"], row[f"{m}_high"]
            text = f"{mean:.4f}" + (f" ± {(high - low) / 2:.4f}" if math.isfinite(low) else "")
            cells.append({"text": text, "sort": repr(float(mean)), "href": None, "css": None})
        rows.append(cells)
    return {"columns": columns, "rows": rows}


def figs_short(path: str) -> str:
    return path.split(".")[-1]


def _runs_table(runs: pd.DataFrame, swept: list[str], mlflow_url: str | None) -> dict[str, Any]:
    metrics = [c for c in RUN_COLUMNS if c in runs]
    columns = ["run", "state"] + [figs_short(p) for p in swept] + [c.replace("_", " ") for c in metrics]
    rows = []
    ordered = runs.sort_values("run_name", kind="stable") if "run_name" in runs else runs
    for _, run in ordered.iterrows():
        state = run.get("trial_state") if isinstance(run.get("trial_state"), str) else run["status"]
        href = (f"{mlflow_url}/#/experiments/{run['experiment_id']}/runs/{run['run_id']}" if mlflow_url else None)
        cells = [_cell(str(run["run_name"]), href=href), _cell(str(state), css=f"state-{state}")]
        cells += [_cell(run.get(f"param.{p}")) for p in swept]
        cells += [_cell(run.get(c)) for c in metrics]
        rows.append(cells)
    return {"columns": columns, "rows": rows}
