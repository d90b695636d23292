"""Plotly figures of one training run (a run artifact; the sweep report has its own in reporting/).

:func:`learning_curves` draws loss and accuracy (or mean IoU, or MAE) per epoch: the
training sample in inference mode, Keras' running training-mode average and validation,
with the best epoch marked; it is
logged with every run. Figures are written as self-contained HTML (plotly.js
inlined) so they open offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from ..lazy import lazy_import

go = lazy_import("plotly.graph_objects")
plotly_subplots = lazy_import("plotly.subplots")

__all__ = ["learning_curves", "write_html"]


def learning_curves(history: Mapping[str, Sequence[float]], *, best_epoch: int | None = None, title: str = ""):
    """A two-panel figure: loss, and accuracy (or mean IoU, or MAE), per epoch: the training sample in
    inference mode (``train_*``, the gap's training side), Keras' running training-mode average (dotted), and
    validation."""
    second = next((m for m in ("mean_iou", "accuracy", "mae") if m in history), "mae")
    fig = plotly_subplots.make_subplots(rows=1, cols=2, subplot_titles=("loss", second.replace("_", " ")))
    palette = {"train (sample, inference mode)": "#1f77b4", "train (running, training mode)": "#9ecae1",
               "validation": "#d62728"}
    for col, metric in ((1, "loss"), (2, second)):
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
