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

from ..analysis.claims import (CONTRADICTED, NOISE, SUPPORTED, ClaimResult, ParamScale, evaluate_claim, finished,
                               infer_scales, param_scales, setting_summary)
from ..analysis.frames import curves_frame, runs_frame
from ..analysis.source import RunSource, resolve
from ..dashboards import figure_json, number_text, plotly_js, render
from ..errors import CnnkerasError
from ..studies.importance import frame_importances
from ..tracking import Tracker
from ..version import __version__
from . import study_figures as figs
from .predictions import best_trials_pictures

__all__ = ["ReportResult", "report"]

#: Parameters that vary between runs but are bookkeeping, not treatments.
NOT_TREATMENTS = ("tracking.", "data.n_", "data.source_", "name", "description")
IMPORTANCE_TARGETS = {"validation accuracy": "best_val_accuracy", "gap (train − val accuracy)": "final_gap_accuracy"}
#: Segmentation sweeps are judged on mean IoU (pixel accuracy stays in the runs table).
IOU_IMPORTANCE_TARGETS = {"validation mean IoU": "best_val_mean_iou", "gap (train − val mean IoU)": "final_gap_mean_iou"}
RUN_COLUMNS = ["final_accuracy", "final_val_accuracy", "best_val_accuracy", "final_gap_accuracy", "final_gap_loss",
               "final_mean_iou", "best_val_mean_iou", "final_gap_mean_iou", "best_epoch", "epochs", "onset_epoch",
               "test_accuracy", "test_mean_iou", "test_minus_val_accuracy"]


def headline_measures(runs: pd.DataFrame) -> tuple[str, str, str]:
    """(gap, best validation, final train) columns the report leads with: mean IoU for segmentation runs."""
    if "final_gap_mean_iou" in runs and runs["final_gap_mean_iou"].notna().any():
        return "final_gap_mean_iou", "best_val_mean_iou", "final_mean_iou"
    return "final_gap_accuracy", "best_val_accuracy", "final_accuracy"
CSS = {SUPPORTED: "supported", CONTRADICTED: "contradicted", NOISE: "noise"}


@dataclass
class ReportResult:
    """The written page, and what it concluded."""

    path: Path
    runs: int
    claims: list[ClaimResult] = field(default_factory=list)
    importances: dict[str, dict[str, float]] = field(default_factory=dict)
    parent_run_id: str | None = None


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
    scales = param_scales(source.config) if source.swept else infer_scales(runs, swept)
    config = source.config
    report_cfg = config.report if config is not None else None
    replicate = report_cfg.replicate_key if report_cfg else "seed"
    if replicate in scales:  # repeats are categories, never a numeric axis
        scales[replicate] = ParamScale("levels", tuple(sorted(runs[f"param.{replicate}"].dropna().unique(), key=str)))
    confidence = report_cfg.confidence if report_cfg else 0.95
    color_by = color_by or (report_cfg.color_by if report_cfg else None) or next(
        (p for p in swept if p != replicate), swept[0] if swept else None)
    if color_by is not None and color_by not in swept:
        raise CnnkerasError(f"--color-by {color_by!r} is not a swept parameter; choose one of {swept}")

    done = finished(runs)
    claims = [evaluate_claim(runs, claim, scales, replicate_key=replicate, confidence=confidence)
              for claim in (report_cfg.claims if report_cfg else [])]
    headline = headline_measures(runs)
    targets = IOU_IMPORTANCE_TARGETS if headline[0] == "final_gap_mean_iou" else IMPORTANCE_TARGETS
    importances = frame_importances(done, scales, targets, seed=config.seed if config else 0)
    page = _render(source, runs, curves, swept, scales, color_by, claims, importances, replicate, confidence, headline,
                   _mlflow_url(source, mlflow_url))
    path = Path(out) if out else Path("reports") / f"{_slug(source.label)}.html"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise CnnkerasError(f"cannot write the report to {path}: {exc.strerror or exc}") from None
    if log_to_parent and source.parent_run_id:
        tracker = Tracker(uri=source.uri, experiment=source.experiment, run_id=source.parent_run_id)
        tracker.log_artifact(path, "reports")
        tracker.client.log_dict(tracker.run_id, [c.to_dict() for c in claims], "reports/claims.json")
    return ReportResult(path, len(runs), claims, importances, source.parent_run_id)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-") or "report"


def _render(source: RunSource, runs: pd.DataFrame, curves: pd.DataFrame, swept: list[str], scales: dict,
            color_by: str | None, claims: list[ClaimResult], importances: dict, replicate: str, confidence: float,
            headline: tuple[str, str, str], mlflow_url: str | None) -> str:
    figures: list[dict[str, str]] = []

    def add(fig: Any) -> str:
        figures.append({"id": f"f{len(figures)}", "json": figure_json(fig)})
        return figures[-1]["id"]

    claim_items = []
    for result in claims:
        scale = scales.get(result.parameter)
        claim_items.append({"claim": result.claim, "verdict": result.verdict, "css": CSS.get(result.verdict, "too-few"),
                            "sentence": result.sentence,
                            "figure": add(figs.claim_figure(runs, result, _claim_scale(source, result, scale),
                                                            confidence))})
    treatments = {p: s for p, s in scales.items()}
    sections = []
    if color_by is not None and not curves.empty:
        sections.append({"id": "curves", "nav": "Learning curves", "title": "Learning curves",
                         "hint": "One line per run; the menu at the top right colours them by another parameter. "
                                 "Train on the left, validation on the right.",
                         "figure": add(figs.learning_curves_by(runs, curves, treatments, color_by))})
    if swept:
        sections.append({"id": "gap", "nav": "Gap", "title": "Gap against each swept parameter",
                         "hint": "Dots are finished runs; diamonds are means over repeats with their "
                                 f"{int(round(confidence * 100))}% confidence interval.",
                         "figure": add(figs.gap_by_parameter(runs, treatments, measures=headline[:2],
                                                             confidence=confidence))})
    lr, batch = figs.find_param(scales, "learning_rate"), figs.find_param(scales, "batch_size")
    if lr and batch and not finished(runs).empty:
        sections.append({"id": "heatmap", "nav": "LR x batch", "title": "Learning rate x batch size",
                         "hint": "Means over the runs in each cell (many sampled values are binned).",
                         "figure": add(figs.lr_batch_heatmap(runs, scales, lr, batch, headline[:2]))})
    if importances:
        sections.append({"id": "importances", "nav": "Importances", "title": "Parameter importances",
                         "hint": f"fANOVA (Optuna) over the finished runs, for {' and for '.join(importances)}. "
                                 f"A large share for {replicate} means the differences are mostly noise.",
                         "figure": add(figs.importances_side_by_side(importances))})
    notes = _notes(runs, source)
    command = "cnnkeras report " + str(source.label)
    return render(
        "report.html.j2", version=__version__, title=f"Overfitting report: {source.label}",
        source_line=_source_line(source), generated_at=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        command=command, counts=_counts(runs), swept=swept, replicate_key=replicate, notes=notes,
        claims=claim_items, sections=sections, confidence_pct=int(round(confidence * 100)),
        settings=_settings_table(runs, swept, replicate, confidence, headline), runs_table=_runs_table(runs, swept, mlflow_url),
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


def _notes(runs: pd.DataFrame, source: RunSource) -> list[str]:
    notes = []
    left = len(runs) - len(finished(runs))
    if left:
        notes.append(f"{left} pruned, failed or unfinished run(s) are listed below but left out of the claims, "
                     "importances and averages: their final values are not comparable.")
    if source.study is not None and source.config is not None and source.config.search.pruner.name != "none":
        notes.append("This sweep prunes: pruned trials stop early, so its surviving runs are a biased sample. "
                     "Claims are best tested with pruner: none and a grid over seeds (see experiments/findings).")
    return notes


def _cell(value: Any, *, href: str | None = None, css: str | None = None) -> dict[str, Any]:
    if isinstance(value, float) and math.isnan(value):
        value = None
    sort = "" if value is None else (repr(float(value)) if isinstance(value, (int, float)) and not isinstance(
        value, bool) else str(value))
    return {"text": number_text(value) if not isinstance(value, str) else value, "sort": sort, "href": href, "css": css}


def _settings_table(runs: pd.DataFrame, swept: list[str], replicate: str, confidence: float,
                    headline: tuple[str, str, str]) -> dict[str, Any]:
    measures = list(headline)
    table = setting_summary(runs, swept, measures, replicate_key=replicate, confidence=confidence)
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
