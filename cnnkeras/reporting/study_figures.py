"""The plotly figures of a sweep report, built from the runs and curves frames.

Every figure takes plain frames (see :mod:`cnnkeras.analysis.frames`) and returns
a ``plotly.graph_objects.Figure``. Text that comes from users (run names,
parameter values) goes through :func:`label`, which escapes ``<``, ``>`` and
``&``: plotly renders a small HTML subset in labels, and a run named
``<script>`` must show as text.

- :func:`learning_curves_by` — train and validation loss and accuracy per epoch,
  one line per run, coloured by a parameter chosen from a drop-down;
- :func:`gap_by_parameter` — final gap and validation accuracy against each swept
  parameter, runs as dots and mean ± CI over seeds as bars;
- :func:`lr_batch_heatmap` — mean final gap and validation accuracy on a
  learning rate x batch size grid;
- :func:`importances_side_by_side` — fANOVA importances for accuracy and for the gap;
- :func:`claim_figure` — the measure a claim is about, against its parameter.
"""

from __future__ import annotations

import html
import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..analysis.claims import ParamScale, finished, in_range
from ..analysis.stats import mean_ci
from ..lazy import lazy_import

go = lazy_import("plotly.graph_objects")
plotly_colors = lazy_import("plotly.colors")
plotly_subplots = lazy_import("plotly.subplots")

__all__ = ["claim_figure", "gap_by_parameter", "importances_side_by_side", "label", "learning_curves_by",
           "lr_batch_heatmap"]

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]
MEASURE_TITLES = {
    "final_gap_accuracy": "final gap (train − val accuracy)", "final_gap_loss": "final gap (val − train loss)",
    "best_val_accuracy": "best validation accuracy", "final_val_accuracy": "final validation accuracy",
    "final_accuracy": "final train accuracy", "test_accuracy": "test accuracy",
    "final_gap_mean_iou": "final gap (train − val mean IoU)", "best_val_mean_iou": "best validation mean IoU",
    "final_mean_iou": "final train mean IoU", "test_mean_iou": "test mean IoU",
}


def label(value: Any) -> str:
    """A user-provided value as text that plotly shows literally (``<`` stays ``<``, never markup)."""
    if isinstance(value, float):
        value = f"{value:.4g}"
    return html.escape(str(value), quote=False)


def short(path: str) -> str:
    """``train.optimizer.learning_rate`` -> ``learning_rate`` (for axis titles)."""
    return path.split(".")[-1]


def _template(fig: Any, title: str, height: int) -> Any:
    fig.update_layout(title=title, template="plotly_white", height=height, margin={"t": 70, "b": 40})
    return fig


def _colours(values: Sequence[Any], scale: ParamScale) -> dict[str, str]:
    """A colour per distinct value: a palette for few values, a colour scale for many."""
    distinct = sorted({v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))},
                      key=lambda v: (not isinstance(v, (int, float)), v if isinstance(v, (int, float)) else str(v)))
    if len(distinct) <= len(PALETTE):
        return {str(v): PALETTE[i] for i, v in enumerate(distinct)}
    x = scale.transform(pd.Series(distinct))
    lo, hi = np.nanmin(x), np.nanmax(x)
    where = [(float(v) - lo) / (hi - lo) if hi > lo and math.isfinite(v) else 0.5 for v in x]
    return {str(v): c for v, c in zip(distinct, plotly_colors.sample_colorscale("Viridis", where))}


def _metric_pair(curves: pd.DataFrame) -> str:
    for metric in ("mean_iou", "accuracy"):  # segmentation runs: mean IoU rather than pixel accuracy
        if (curves["metric"] == metric).any():
            return metric
    return "mae"


def learning_curves_by(runs: pd.DataFrame, curves: pd.DataFrame, scales: Mapping[str, ParamScale],
                       color_by: str) -> Any:
    """Loss and accuracy per epoch (train | validation), one line per run, coloured by a parameter.

    A drop-down switches the colouring between the swept parameters (``color_by`` first).
    """
    second = _metric_pair(curves) if not curves.empty else "accuracy"
    panels = [("loss", 1, 1), ("val_loss", 1, 2), (second, 2, 1), (f"val_{second}", 2, 2)]
    fig = plotly_subplots.make_subplots(rows=2, cols=2, shared_xaxes=True, horizontal_spacing=0.08, vertical_spacing=0.1,
                        subplot_titles=("train loss", "validation loss", f"train {second}",
                                        f"validation {second}"))
    params = [color_by] + [p for p in scales if p != color_by and f"param.{p}" in runs]
    by_run = {run_id: group for run_id, group in curves.groupby("run_id")}
    buttons, visibility = [], []
    for index, param in enumerate(params):
        column = f"param.{param}"
        if column not in runs:
            continue
        colours = _colours(runs[column].tolist(), scales[param])
        shown: set[str] = set()
        start = len(fig.data)
        ordered = runs.assign(_x=scales[param].transform(runs[column])).sort_values("_x")
        for _, run in ordered.iterrows():
            group = by_run.get(run["run_id"])
            if group is None:
                continue
            value = str(run[column])
            name = f"{short(param)}={label(run[column])}"
            for metric, row, col in panels:
                series = group[group["metric"] == metric].sort_values("epoch")
                if series.empty:
                    continue
                first = value not in shown
                shown.add(value)
                fig.add_trace(go.Scatter(
                    x=series["epoch"], y=series["value"], mode="lines", name=name, legendgroup=f"{param}={value}",
                    showlegend=first, visible=index == 0, opacity=0.75,
                    line={"color": colours.get(value, "#888"), "width": 1.5},
                    hovertemplate=f"{label(run['run_name'])}<br>{name}<br>epoch %{{x}}: %{{y:.4f}}<extra></extra>",
                ), row=row, col=col)
        visibility.append((param, start, len(fig.data)))
    total = len(fig.data)
    for param, start, stop in visibility:
        mask = [start <= i < stop for i in range(total)]
        buttons.append({"label": f"colour by {short(param)}", "method": "update",
                        "args": [{"visible": mask}, {"title": f"Learning curves by {short(param)}"}]})
    fig.update_xaxes(title_text="epoch", row=2)
    fig.update_yaxes(type="log", row=1)  # one diverging run must not flatten every other loss curve
    fig.update_yaxes(matches="y", row=1)
    fig.update_yaxes(matches="y3", row=2)
    if len(buttons) > 1:
        fig.update_layout(updatemenus=[{"buttons": buttons, "x": 1.0, "xanchor": "right", "y": 1.13,
                                        "yanchor": "top", "direction": "down"}])
    return _template(fig, f"Learning curves by {short(color_by)}", 720)


def _axis_type(scale: ParamScale) -> str:
    return {"log": "log", "linear": "linear"}.get(scale.kind, "category")


def _mean_ci_trace(runs: pd.DataFrame, param: str, measure: str, confidence: float, colour: str,
                   name: str, showlegend: bool) -> Any:
    """Mean ± CI of ``measure`` per distinct value of ``param`` (None when values do not repeat)."""
    column = f"param.{param}"
    groups = [(value, mean_ci(pd.to_numeric(group[measure], errors="coerce").tolist(), confidence))
              for value, group in runs.groupby(column, sort=True)]
    if not groups or all(ci.n < 2 for _, ci in groups):
        return None
    x = [str(v) if not isinstance(v, (int, float)) or isinstance(v, bool) else v for v, _ in groups]
    return go.Scatter(
        x=x, y=[ci.mean for _, ci in groups], mode="lines+markers", name=name, showlegend=showlegend,
        legendgroup=name, marker={"size": 9, "color": colour, "symbol": "diamond"}, line={"color": colour},
        error_y={"type": "data", "symmetric": False,
                 "array": [ci.high - ci.mean if ci.n > 1 else 0 for _, ci in groups],
                 "arrayminus": [ci.mean - ci.low if ci.n > 1 else 0 for _, ci in groups]},
        customdata=[[ci.n, ci.low, ci.high] for _, ci in groups],
        hovertemplate="mean %{y:.4f}<br>CI %{customdata[1]:.4f} to %{customdata[2]:.4f}"
                      "<br>n=%{customdata[0]}<extra></extra>",
    )


def gap_by_parameter(runs: pd.DataFrame, scales: Mapping[str, ParamScale], *,
                     measures: Sequence[str] = ("final_gap_accuracy", "best_val_accuracy"),
                     confidence: float = 0.95) -> Any:
    """Each measure (rows) against each swept parameter (columns): runs as dots, mean ± CI as bars."""
    runs = finished(runs)
    params = [p for p in scales if f"param.{p}" in runs]
    measures = [m for m in measures if m in runs]
    fig = plotly_subplots.make_subplots(rows=max(1, len(measures)), cols=max(1, len(params)), shared_yaxes=True,
                        horizontal_spacing=0.04, vertical_spacing=0.12,
                        column_titles=[short(p) for p in params] or None)
    pct = int(round(confidence * 100))
    for col, param in enumerate(params, start=1):
        column = f"param.{param}"
        for row, measure in enumerate(measures, start=1):
            x = runs[column] if scales[param].kind != "levels" else runs[column].astype(str)
            fig.add_trace(go.Scatter(
                x=x, y=runs[measure], mode="markers", name="run", legendgroup="run",
                showlegend=row == col == 1, marker={"color": "#9aa5b1", "size": 6, "opacity": 0.7},
                text=[label(n) for n in runs["run_name"]],
                hovertemplate="%{text}<br>%{x}: %{y:.4f}<extra></extra>",
            ), row=row, col=col)
            trace = _mean_ci_trace(runs, param, measure, confidence, PALETTE[row - 1],
                                   f"mean ± {pct}% CI", showlegend=col == 1 and row == 1)
            if trace is not None:
                fig.add_trace(trace, row=row, col=col)
            fig.update_xaxes(type=_axis_type(scales[param]), title_text=short(param) if row == len(measures)
                             else None, row=row, col=col)
            if scales[param].kind == "levels":
                fig.update_xaxes(categoryorder="array", categoryarray=[str(v) for v in scales[param].order],
                                 row=row, col=col)
            if col == 1:
                fig.update_yaxes(title_text=MEASURE_TITLES.get(measure, measure), row=row, col=col)
    score = "validation mean IoU" if any("mean_iou" in m for m in measures) else "validation accuracy"
    return _template(fig, f"Generalization gap and {score} against each swept parameter",
                     330 * max(1, len(measures)) + 60)


def _grid_values(values: pd.Series, scale: ParamScale, bins: int = 6) -> pd.Series:
    """The values themselves when few, else log (or linear) bins labelled by their range."""
    if values.nunique() <= 8 or scale.kind == "levels":
        return values
    x = pd.Series(scale.transform(values), index=values.index)
    cut = pd.cut(x, bins=bins)
    inverse = (lambda v: 2 ** v) if scale.kind == "log" else (lambda v: v)
    return cut.map(lambda interval: f"{inverse(interval.left):.2g}–{inverse(interval.right):.2g}")


def find_param(scales: Mapping[str, ParamScale], suffix: str) -> str | None:
    """The swept key path ending in ``suffix`` (``learning_rate``, ``batch_size``), if any."""
    return next((p for p in scales if p.endswith(suffix)), None)


def lr_batch_heatmap(runs: pd.DataFrame, scales: Mapping[str, ParamScale], lr: str, batch: str,
                     measures: Sequence[str] = ("final_gap_accuracy", "best_val_accuracy")) -> Any:
    """Mean final gap and mean best validation score (``measures``) on the learning rate x batch size grid."""
    runs = finished(runs).copy()
    runs["_lr"] = _grid_values(runs[f"param.{lr}"], scales[lr])
    runs["_batch"] = _grid_values(runs[f"param.{batch}"], scales[batch])
    fig = plotly_subplots.make_subplots(rows=1, cols=2, horizontal_spacing=0.14,
                        subplot_titles=tuple(f"mean {MEASURE_TITLES.get(m, m)}" for m in measures))
    for col, (measure, colours) in enumerate(zip(measures, ("RdBu_r", "Viridis")), start=1):
        if measure not in runs:
            continue
        grid = runs.pivot_table(index="_batch", columns="_lr", values=measure, aggfunc="mean", observed=True)
        counts = runs.pivot_table(index="_batch", columns="_lr", values=measure, aggfunc="count", observed=True)
        fig.add_trace(go.Heatmap(
            z=grid.values, x=[label(v) for v in grid.columns], y=[label(v) for v in grid.index],
            colorscale=colours, texttemplate="%{z:.3f}", customdata=counts.reindex_like(grid).values,
            hovertemplate="lr %{x}, batch %{y}<br>%{z:.4f} (n=%{customdata})<extra></extra>",
            colorbar={"x": 0.43 if col == 1 else 1.0, "len": 0.9},
            zmid=0 if measure.startswith("final_gap") else None,
        ), row=1, col=col)
        fig.update_xaxes(title_text=short(lr), type="category", row=1, col=col)
        fig.update_yaxes(title_text=short(batch), type="category", row=1, col=col)
    return _template(fig, "Learning rate x batch size", 460)


def importances_side_by_side(importances: Mapping[str, Mapping[str, float]]) -> Any:
    """fANOVA importances of each parameter, for each target (validation accuracy, gap), as grouped bars."""
    fig = go.Figure()
    params = sorted({p for values in importances.values() for p in values})
    for i, (target, values) in enumerate(importances.items()):
        fig.add_trace(go.Bar(y=[short(p) for p in params], x=[values.get(p, 0.0) for p in params], name=target,
                             orientation="h", marker={"color": PALETTE[i % len(PALETTE)]},
                             hovertemplate="%{y}: %{x:.3f}<extra>" + label(target) + "</extra>"))
    fig.update_layout(barmode="group", xaxis_title="importance (fANOVA, sums to 1 per target)")
    score = "validation mean IoU" if any("mean IoU" in target for target in importances) else "validation accuracy"
    return _template(fig, f"Parameter importances: {score} and gap", 140 + 60 * max(1, len(params)))


def claim_figure(runs: pd.DataFrame, result: Any, scale: ParamScale, confidence: float = 0.95) -> Any:
    """The claim's measure against its parameter: every run, and mean ± CI per value.

    A claim limited to a ``range`` of its parameter is judged on the runs inside it
    only: those are drawn as usual with the mean ± CI; the runs outside are drawn
    faded, as context, with no mean.
    """
    runs = finished(runs)
    column = f"param.{result.parameter}"
    fig = go.Figure()
    if column in runs and result.measure in runs:
        inside = in_range(runs, result.parameter, result.within)
        for part, name, opacity in ((runs[inside], "run", 1.0), (runs[~inside], "run outside the claim's range", 0.35)):
            if part.empty:
                continue
            x = part[column] if scale.kind != "levels" else part[column].astype(str)
            fig.add_trace(go.Scatter(x=x, y=part[result.measure], mode="markers", name=name,
                                     marker={"color": "#9aa5b1", "size": 7, "opacity": opacity},
                                     text=[label(n) for n in part["run_name"]],
                                     hovertemplate="%{text}<br>%{x}: %{y:.4f}<extra></extra>"))
        trace = _mean_ci_trace(runs[inside], result.parameter, result.measure, confidence, PALETTE[0],
                               f"mean ± {int(round(confidence * 100))}% CI", True)
        if trace is not None:
            fig.add_trace(trace)
    fig.update_xaxes(title_text=short(result.parameter), type=_axis_type(scale))
    if scale.kind == "levels":
        fig.update_xaxes(categoryorder="array", categoryarray=[str(v) for v in scale.order])
    fig.update_yaxes(title_text=MEASURE_TITLES.get(result.measure, result.measure))
    return _template(fig, label(result.claim), 380)
