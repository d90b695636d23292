"""Plotly figures of one training run (a run artifact; the sweep report has its own in reporting/).

:func:`learning_curves` draws loss and every other measure the run recorded
(accuracy, mean IoU for segmentation, MAE) and the one it monitors, per epoch: the training
sample in inference mode (``train_*``, the gap's training side), Keras' running training-mode
average (dotted) and validation, with the best epoch marked; it is logged with every run.
Figures are written as self-contained HTML (plotly.js
inlined) so they open offline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ..lazy import lazy_import

go = lazy_import("plotly.graph_objects")
plotly_subplots = lazy_import("plotly.subplots")

__all__ = ["curve_metrics", "learning_curves", "write_html"]


def curve_metrics(history: Mapping[str, Sequence[float]], monitor: str | None = None) -> list[str]:
    """The measures a run's learning curves show: loss, each of accuracy, mean IoU and MAE the run
    recorded, and the measure of its monitor (``val_mean_iou`` -> ``mean_iou``) when not among them."""
    shown = ["loss"] + [m for m in ("accuracy", "mean_iou", "mae")
                        if m in history or f"val_{m}" in history or f"train_{m}" in history]
    if monitor:
        base = monitor
        for prefix in ("val_", "gap_", "train_"):
            base = base.removeprefix(prefix)
        if base not in shown and (base in history or f"val_{base}" in history):
            shown.append(base)
    return shown


def learning_curves(history: Mapping[str, Sequence[float]], *, best_epoch: int | None = None, title: str = "",
                    monitor: str | None = None):
    """One panel per measure (:func:`curve_metrics`: loss, accuracy or MAE, mean IoU for segmentation), per
    epoch: the training sample in inference mode (``train_*``, the gap's training side), Keras' running
    training-mode average (dotted) and validation, the best epoch marked."""
    shown = curve_metrics(history, monitor)
    fig = plotly_subplots.make_subplots(rows=1, cols=len(shown), subplot_titles=[m.replace("_", " ") for m in shown])
    palette = {"train (sample, inference mode)": "#1f77b4", "train (running, training mode)": "#9ecae1",
               "validation": "#d62728"}
    for col, metric in enumerate(shown, start=1):
        for split, key in (("train (sample, inference mode)", f"train_{metric}"),
                           ("train (running, training mode)", metric), ("validation", f"val_{metric}")):
            values = list(history.get(key, []))
            if not values:
                continue
            fig.add_trace(
                go.Scatter(x=list(range(1, len(values) + 1)), y=values, mode="lines+markers", name=split,
                           legendgroup=split, showlegend=col == 1,
                           line={"color": palette[split], "dash": "dot" if "running" in split else "solid"}),
                row=1, col=col,
            )
        if best_epoch:
            fig.add_vline(x=best_epoch, line_dash="dot", line_color="grey", row=1, col=col)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(title=title + (f" (best epoch {best_epoch})" if best_epoch else ""), template="plotly_white",
                      height=420, legend={"orientation": "h", "y": -0.2})
    return fig


def write_html(fig, path: str | Path) -> Path:
    """Write ``fig`` as one self-contained HTML file and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(path), include_plotlyjs=True, full_html=True)
    return path
