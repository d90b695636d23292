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

Plots are right by construction (:mod:`cnnkeras.analysis.values`): a parameter's values
are canonical (``0`` and ``0.0`` are one value) and labelled to three significant digits;
a parameter with a few values (a categorical, numbers included) is drawn on a category
axis in the order of its values; a continuous one on a linear axis, or a log axis with
ticks at 1, 2 and 5 times powers of ten; the heat map bins continuous values into ranges
(and says so) and gives a categorical value its own cell. Means are grouped by the same
canonical values the axis shows, so a mean always sits above its own label.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..analysis.claims import ParamScale, finished, in_range
from ..analysis.stats import mean_ci
from ..analysis.values import canonical, is_number, ordered_values, value_label
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
    "final_accuracy": "final running train accuracy (training mode)", "test_accuracy": "test accuracy",
    "final_gap_mean_iou": "final gap (train − val mean IoU)", "best_val_mean_iou": "best validation mean IoU",
    "final_mean_iou": "final running train mean IoU (training mode)", "test_mean_iou": "test mean IoU",
    "final_train_accuracy": "final train accuracy (sample, inference mode)",
    "final_train_mean_iou": "final train mean IoU (sample, inference mode)",
    "epochs_to_fit": "epochs to fit (train accuracy ≥ 0.95)",
}


def label(value: Any) -> str:
    """A user-provided value as text that plotly shows literally (``<`` stays ``<``, never markup);
    numbers as :func:`~cnnkeras.analysis.values.value_label` writes them (three significant digits)."""
    return html.escape(value_label(value), quote=False)


def category_order(values: Sequence[Any], scale: ParamScale | None) -> list[str]:
    """The labels of a categorical parameter's values, in the order of its values.

    A claim's ``levels`` (or a text parameter's choices) keep their given order; numbers go by
    value; values seen in the runs but not in ``scale.order`` come after, by value.
    """
    given = list(scale.order) if scale is not None else []
    if scale is not None and scale.kind != "levels":
        given = ordered_values(given)
    labels = [label(v) for v in given]
    extra = [label(v) for v in ordered_values(values) if label(v) not in labels]
    return list(dict.fromkeys(labels + extra))


def log_ticks(low: float, high: float) -> tuple[list[float], list[str]]:
    """Tick values and labels for a log axis over [low, high]: 1, 2 and 5 times powers of ten
    (only powers of ten over a wide range), at least the two ends, labelled to 3 significant digits."""
    if not (low > 0 and high > 0 and math.isfinite(low) and math.isfinite(high)):
        return [], []
    low, high = min(low, high), max(low, high)
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    ticks: list[float] = []
    for multiples, every in [((1, 2, 5), 1), ((1,), 1)] + [((1,), k) for k in range(2, 10)]:
        ticks = [float(f"{m * 10.0 ** k:.3g}") for k in decades if k % every == 0 for m in multiples
                 if low <= m * 10.0 ** k * (1 + 1e-9) and m * 10.0 ** k <= high * (1 + 1e-9)]
        if len(ticks) <= 8:
            break
    if len(ticks) < 2:  # a narrow range: its ends too, rounded inwards to 3 significant digits
        ticks = sorted({_round3(low, math.ceil), *ticks, _round3(high, math.floor)})
    return ticks, [value_label(t) for t in ticks]


def _round3(value: float, direction: Any) -> float:
    """``value`` to 3 significant digits, rounded with ``direction`` (math.ceil or math.floor)."""
    step = 10.0 ** (math.floor(math.log10(value)) - 2)
    return float(f"{direction(value / step - 1e-9 if direction is math.ceil else value / step + 1e-9) * step:.3g}")


def _axis(fig: Any, scale: ParamScale, values: Sequence[Any], **where: Any) -> None:
    """Set an x axis for a parameter: categories in value order, or log/linear with readable ticks."""
    if scale.categorical:
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=category_order(values, scale), **where)
        return
    numbers = [float(v) for v in (canonical(v) for v in values) if is_number(v)]
    if scale.kind == "log" and numbers and min(numbers) > 0:
        ticks, text = log_ticks(min(numbers), max(numbers))
        fig.update_xaxes(type="log", tickvals=ticks, ticktext=text, **where)
    else:
        fig.update_xaxes(type="linear", tickformat=".3~g", **where)


def _x(values: pd.Series, scale: ParamScale) -> list[Any]:
    """x coordinates of a parameter's values: their labels on a category axis, else the numbers."""
    if scale.categorical:
        return [label(v) for v in values]
    return [float(canonical(v)) if is_number(canonical(v)) else math.nan for v in values]


def short(path: str) -> str:
    """``train.optimizer.learning_rate`` -> ``learning_rate`` (for axis titles)."""
    return path.split(".")[-1]


def _template(fig: Any, title: str, height: int) -> Any:
    fig.update_layout(title=title, template="plotly_white", height=height, margin={"t": 70, "b": 40})
    return fig


def _colours(values: Sequence[Any], scale: ParamScale) -> dict[str, str]:
    """A colour per distinct value: a palette for few values, a colour scale for many."""
    distinct = ordered_values(values)
    if len(distinct) <= len(PALETTE):
        return {label(v): PALETTE[i] for i, v in enumerate(distinct)}
    x = scale.transform(pd.Series(distinct, dtype=object))
    lo, hi = np.nanmin(x), np.nanmax(x)
    where = [(float(v) - lo) / (hi - lo) if hi > lo and math.isfinite(v) else 0.5 for v in x]
    return {label(v): c for v, c in zip(distinct, plotly_colors.sample_colorscale("Viridis", where))}


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
    # The training side is the fixed training sample in inference mode (train_*), as in every gap; runs
    # logged before it existed have only Keras' running training-mode averages, drawn (and titled) as such.
    clean = not curves.empty and (curves["metric"] == "train_loss").any()
    train, what = ("train_", "train (sample, inference mode)") if clean else ("", "train (running, training mode)")
    panels = [(f"{train}loss", 1, 1), ("val_loss", 1, 2), (f"{train}{second}", 2, 1), (f"val_{second}", 2, 2)]
    fig = plotly_subplots.make_subplots(rows=2, cols=2, shared_xaxes=True, horizontal_spacing=0.08, vertical_spacing=0.1,
                        subplot_titles=(f"{what} loss", "validation loss", f"{what} {second}",
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
            value = label(run[column])
            name = f"{short(param)}={value}"
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


def _groups(runs: pd.DataFrame, param: str, measure: str, scale: ParamScale) -> list[tuple[Any, list[float]]]:
    """The measure's values per canonical parameter value, in the order of the values (a claim's levels first)."""
    column = f"param.{param}"
    by_label: dict[str, list[float]] = {}
    first: dict[str, Any] = {}
    for value, y in zip(runs[column], pd.to_numeric(runs[measure], errors="coerce")):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        key = label(value)
        by_label.setdefault(key, []).append(float(y))
        first.setdefault(key, canonical(value))
    order = category_order(list(first.values()), scale) if scale.categorical else [
        label(v) for v in ordered_values(first.values())]
    return [(first[key], by_label[key]) for key in order if key in by_label]


def _mean_ci_trace(runs: pd.DataFrame, param: str, measure: str, confidence: float, colour: str,
                   name: str, showlegend: bool, scale: ParamScale | None = None) -> Any:
    """Mean ± CI of ``measure`` per distinct value of ``param`` (None when values do not repeat)."""
    scale = scale or ParamScale("linear")
    groups = [(value, mean_ci(values, confidence)) for value, values in _groups(runs, param, measure, scale)]
    if not groups or all(ci.n < 2 for _, ci in groups):
        return None
    x = _x(pd.Series([v for v, _ in groups], dtype=object), scale)
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
                     confidence: float = 0.95, counted: Any = finished, budget: str = "") -> Any:
    """Each measure (rows) against each swept parameter (columns): runs as dots, mean ± CI as bars.

    ``counted`` picks the runs compared (finished ones; at a budget, every run that reached it).
    """
    runs = counted(runs)
    params = [p for p in scales if f"param.{p}" in runs]
    measures = [m for m in measures if m in runs]
    fig = plotly_subplots.make_subplots(rows=max(1, len(measures)), cols=max(1, len(params)), shared_yaxes=True,
                        horizontal_spacing=0.04, vertical_spacing=0.12,
                        column_titles=[short(p) for p in params] or None)
    pct = int(round(confidence * 100))
    for col, param in enumerate(params, start=1):
        column = f"param.{param}"
        for row, measure in enumerate(measures, start=1):
            fig.add_trace(go.Scatter(
                x=_x(runs[column], scales[param]), y=runs[measure], mode="markers", name="run", legendgroup="run",
                showlegend=row == col == 1, marker={"color": "#9aa5b1", "size": 6, "opacity": 0.7},
                text=[label(n) for n in runs["run_name"]],
                hovertemplate="%{text}<br>%{x}: %{y:.4f}<extra></extra>",
            ), row=row, col=col)
            trace = _mean_ci_trace(runs, param, measure, confidence, PALETTE[row - 1],
                                   f"mean ± {pct}% CI", showlegend=col == 1 and row == 1, scale=scales[param])
            if trace is not None:
                fig.add_trace(trace, row=row, col=col)
            _axis(fig, scales[param], runs[column].tolist(), row=row, col=col,
                  title_text=short(param) if row == len(measures) else None)
            if col == 1:
                fig.update_yaxes(title_text=MEASURE_TITLES.get(measure, measure), row=row, col=col)
    score = "validation mean IoU" if any("mean_iou" in m for m in measures) else "validation accuracy"
    if budget:
        fig.add_annotation(text=f"at {budget}", showarrow=False, xref="paper", yref="paper", x=1, y=1.08,
                           xanchor="right", font={"color": "#616e7c"})
    return _template(fig, f"Generalization gap and {score} against each swept parameter",
                     330 * max(1, len(measures)) + 60)


#: Most cells per heat-map axis for a continuous parameter (its values are binned into ranges).
HEATMAP_BINS = 6


def grid_cells(values: pd.Series, scale: ParamScale, bins: int = HEATMAP_BINS) -> tuple[pd.Series, list[str]]:
    """Heat-map cells of a parameter's values, and their order.

    A categorical parameter: a cell per value, labelled by it, in value order. A continuous
    one: ``min(bins, distinct values)`` equal bins (of log2 for a log scale) labelled by the
    range they hold ("0.0001–0.000316"), even when few values were sampled: sampled rates
    never each get a column of their own.
    """
    if scale.categorical:
        order = category_order(values.tolist(), scale)
        return values.map(label), order
    x = pd.Series(scale.transform(values), index=values.index)
    n = max(1, min(bins, int(x.nunique())))
    if n == 1:
        text = label(values.iloc[0])
        return pd.Series(text, index=values.index), [text]
    low, high = float(x.min()), float(x.max())
    edges = [low + (high - low) * i / n for i in range(n)] + [high]  # equal bins over exactly the values' range
    cut = pd.cut(x, bins=edges, include_lowest=True)
    inverse = (lambda v: 2 ** v) if scale.kind == "log" else (lambda v: v)
    names = {interval: f"{label(inverse(max(interval.left, low)))}–{label(inverse(interval.right))}"
             for interval in cut.cat.categories}
    cells = cut.map(names).astype(object)
    return cells, [names[i] for i in cut.cat.categories if names[i] in set(cells)]


def find_param(scales: Mapping[str, ParamScale], suffix: str) -> str | None:
    """The swept key path ending in ``suffix`` (``learning_rate``, ``batch_size``), if any."""
    return next((p for p in scales if p.endswith(suffix)), None)


def lr_batch_heatmap(runs: pd.DataFrame, scales: Mapping[str, ParamScale], lr: str, batch: str,
                     measures: Sequence[str] = ("final_gap_accuracy", "best_val_accuracy"), *,
                     counted: Any = finished, budget: str = "") -> Any:
    """Mean final gap and mean best validation score (``measures``) on the learning rate x batch size grid."""
    runs = counted(runs).copy()
    runs["_lr"], lr_order = grid_cells(runs[f"param.{lr}"], scales[lr])
    runs["_batch"], batch_order = grid_cells(runs[f"param.{batch}"], scales[batch])
    fig = plotly_subplots.make_subplots(rows=1, cols=2, horizontal_spacing=0.14,
                        subplot_titles=tuple(f"mean {MEASURE_TITLES.get(m, m)}" for m in measures))
    for col, (measure, colours) in enumerate(zip(measures, ("RdBu_r", "Viridis")), start=1):
        if measure not in runs:
            continue
        grid = runs.pivot_table(index="_batch", columns="_lr", values=measure, aggfunc="mean", observed=True)
        counts = runs.pivot_table(index="_batch", columns="_lr", values=measure, aggfunc="count", observed=True)
        grid = grid.reindex(index=[b for b in batch_order if b in grid.index],
                            columns=[c for c in lr_order if c in grid.columns])
        fig.add_trace(go.Heatmap(
            z=grid.values, x=list(grid.columns), y=list(grid.index),
            colorscale=colours, texttemplate="%{z:.3f}", customdata=counts.reindex_like(grid).values,
            hovertemplate="lr %{x}, batch %{y}<br>%{z:.4f} (n=%{customdata})<extra></extra>",
            colorbar={"x": 0.43 if col == 1 else 1.0, "len": 0.9},
            zmid=0 if measure.startswith("final_gap") else None,
        ), row=1, col=col)
        fig.update_xaxes(title_text=short(lr) + ("" if scales[lr].categorical else " (binned)"), type="category",
                         categoryorder="array", categoryarray=list(grid.columns), row=1, col=col)
        fig.update_yaxes(title_text=short(batch) + ("" if scales[batch].categorical else " (binned)"),
                         type="category", categoryorder="array", categoryarray=list(grid.index), row=1, col=col)
    if budget:
        fig.add_annotation(text=f"at {budget}", showarrow=False, xref="paper", yref="paper", x=1, y=1.12,
                           xanchor="right", font={"color": "#616e7c"})
    return _template(fig, "Learning rate x batch size", 460)


def importances_side_by_side(importances: Mapping[str, Any]) -> Any:
    """fANOVA importances of each parameter, for each target (validation accuracy, gap), as grouped bars.

    Each target's legend entry says how many trials its ranking rests on; a target with too few trials
    (an empty ranking) has no bars, and the figure says why.
    """
    fig = go.Figure()
    ranked = {target: values for target, values in importances.items() if values}
    params = sorted({p for values in ranked.values() for p in values})
    for i, (target, values) in enumerate(ranked.items()):
        n = getattr(values, "n_trials", None)
        name = f"{target} ({n} trials)" if n else target
        fig.add_trace(go.Bar(y=[short(p) for p in params], x=[values.get(p, 0.0) for p in params], name=name,
                             orientation="h", marker={"color": PALETTE[i % len(PALETTE)]},
                             hovertemplate="%{y}: %{x:.3f}<extra>" + label(name) + "</extra>"))
    fig.update_layout(barmode="group", xaxis_title="importance (fANOVA, sums to 1 per target)")
    unranked = [f"{label(target)}: {label(values.reason)}" for target, values in importances.items()
                if not values and getattr(values, "reason", None)]
    if unranked:  # said where the bars would be, not left blank
        fig.add_annotation(text="<br>".join(unranked), showarrow=False, xref="paper", yref="paper", x=0.5,
                           y=0.5 if not ranked else -0.35, font={"size": 14, "color": "#616e7c"})
    score = "validation mean IoU" if any("mean IoU" in target for target in importances) else "validation accuracy"
    return _template(fig, f"Parameter importances: {score} and gap", 140 + 60 * max(1, len(params)))


def claim_figure(runs: pd.DataFrame, result: Any, scale: ParamScale, confidence: float = 0.95, *,
                 counted: Any = finished, optimum_scale: ParamScale | None = None) -> Any:
    """The claim's measure against its parameter: every run, and mean ± CI per value.

    A claim limited to a ``range`` of its parameter is judged on the runs inside it
    only: those are drawn as usual with the mean ± CI; the runs outside are drawn
    faded, as context, with no mean. A level claim draws its level (and a near claim's
    band) and marks the value it is judged at; an optimum claim draws, for each value of
    the parameter, the best value of the other parameter per seed.
    """
    runs = counted(runs)
    if getattr(result, "kind", "trend") == "optimum":
        return _optimum_figure(result, scale, optimum_scale or ParamScale("log"))
    column = f"param.{result.parameter}"
    fig = go.Figure()
    if column in runs and result.measure in runs:
        inside = in_range(runs, result.parameter, result.within)
        for part, name, opacity in ((runs[inside], "run", 1.0), (runs[~inside], "run outside the claim's range", 0.35)):
            if part.empty:
                continue
            fig.add_trace(go.Scatter(x=_x(part[column], scale), y=part[result.measure], mode="markers", name=name,
                                     marker={"color": "#9aa5b1", "size": 7, "opacity": opacity},
                                     text=[label(n) for n in part["run_name"]],
                                     hovertemplate="%{text}<br>%{x}: %{y:.4f}<extra></extra>"))
        trace = _mean_ci_trace(runs[inside], result.parameter, result.measure, confidence, PALETTE[0],
                               f"mean ± {int(round(confidence * 100))}% CI", True, scale=scale)
        if trace is not None:
            fig.add_trace(trace)
        _axis(fig, scale, runs[column].tolist(), title_text=short(result.parameter))
    else:
        fig.update_xaxes(title_text=short(result.parameter))
    if getattr(result, "kind", "trend") == "level" and result.value is not None:
        fig.add_hline(y=result.value, line_dash="dash", line_color="#c92a2a",
                      annotation_text=f"{result.expect} {result.value:g} at {short(result.parameter)}="
                                      f"{label(result.at)}")
        if result.tolerance:
            fig.add_hrect(y0=result.value - result.tolerance, y1=result.value + result.tolerance,
                          fillcolor="#c92a2a", opacity=0.08, line_width=0)
    fig.update_yaxes(title_text=MEASURE_TITLES.get(result.measure, result.measure)
                     + (f" at {result.budget}" if getattr(result, "budget", "") else ""))
    return _template(fig, label(result.claim), 380)


def _optimum_figure(result: Any, scale: ParamScale, optimum_scale: ParamScale) -> Any:
    """An optimum claim: the best ``optimum_of`` per value of the parameter and seed, with their geometric mean."""
    fig = go.Figure()
    points = list(result.optima)
    if points:
        xs = pd.Series([p[0] for p in points], dtype=object)
        ys = [float(canonical(p[1])) if is_number(canonical(p[1])) else math.nan for p in points]
        fig.add_trace(go.Scatter(x=_x(xs, scale), y=ys, mode="markers", name="best, per seed",
                                 marker={"color": "#9aa5b1", "size": 9}))
        by_value: dict[str, list[float]] = {}
        firsts: dict[str, Any] = {}
        for x_value, y_value in zip(xs, ys):
            by_value.setdefault(label(x_value), []).append(y_value)
            firsts.setdefault(label(x_value), x_value)
        order = [label(v) for v in ordered_values(firsts.values())]
        log = optimum_scale.kind == "log"
        centre = [float(np.exp(np.mean(np.log(by_value[k])))) if log else float(np.mean(by_value[k])) for k in order]
        fig.add_trace(go.Scatter(x=_x(pd.Series([firsts[k] for k in order], dtype=object), scale), y=centre,
                                 mode="lines+markers", name="geometric mean" if log else "mean",
                                 marker={"color": PALETTE[0], "size": 9, "symbol": "diamond"},
                                 line={"color": PALETTE[0]}))
        _axis(fig, scale, list(xs), title_text=short(result.parameter))
        if log and all(y > 0 for y in ys if math.isfinite(y)):
            finite = [y for y in ys if math.isfinite(y)]
            ticks, text = log_ticks(min(finite), max(finite))
            fig.update_yaxes(type="log", tickvals=ticks, ticktext=text)
    fig.update_yaxes(title_text=f"best {short(result.optimum_of)} (by {result.measure})")
    return _template(fig, label(result.claim), 380)
