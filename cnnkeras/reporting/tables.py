"""Terminal tables that fit the console whole: ``runs``, ``zoo`` and ``inspect``.

A table is given its columns with what each may give up to fit the width (80 columns in a
pipe, the terminal's otherwise, ``COLUMNS`` when set): :func:`fitted_table` tries, in turn,

1. shorter headers (each column lists its names, longest first: ``best val accuracy``,
   ``val acc``);
2. leaving out optional columns (least important first);
3. shorter spellings of text where a column has them (``BatchNormalization`` -> ``BatchNorm``);
4. shortening names in the middle, as long as they stay distinct (``conv4_block…_2_conv``:
   172 rows of ResNet-50 must not look alike), down to :data:`NAME_FLOOR` characters;
5. cutting free text at its end (a paper's citation).

Numbers are never cut: a column of numbers keeps its whole width, or the table is left
wider than the console (Rich then folds it). :func:`runs_table` chooses what a table of
runs shows: trial, state, the swept parameters (keys abbreviated), the objective and its
gap, sorted by the objective.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from rich import box
from rich.console import Console, JustifyMethod
from rich.table import Table

from ..studies.console import gap_summary_key, short_keys, short_number

__all__ = ["Column", "NAME_FLOOR", "elide_middle", "fitted_table", "layer_type", "number_cell", "runs_table"]

#: Shorter spellings of the words in Keras layer class names.
LAYER_WORDS = (("InputLayer", "Input"), ("Normalization", "Norm"), ("Activation", "Act"), ("Average", "Avg"),
               ("Pooling", "Pool"), ("Global", "G"), ("Depthwise", "DW"), ("Separable", "Sep"),
               ("Transpose", "T"), ("Concatenate", "Concat"), ("ZeroPadding", "ZeroPad"), ("UpSampling", "Up"),
               ("Convolution", "Conv"), ("Multiply", "Mul"), ("Reshape", "Reshape"), ("Dropout", "Drop"))


def layer_type(name: str) -> str:
    """A Keras layer's class name, shorter (``GlobalAveragePooling2D`` -> ``GAvgPool2D``)."""
    for word, short in LAYER_WORDS:
        name = name.replace(word, short)
    return name

#: The fewest characters a shortened name keeps.
NAME_FLOOR = 8


@dataclass
class Column:
    """One column: its headers (longest first), how its cells may shrink, and whether it may go.

    ``kind``: ``"number"`` (never cut), ``"name"`` (shortened in the middle, kept distinct) or
    ``"text"`` (cut at the end). ``drop``: 0 for a column that always stays, else the order in
    which optional columns are left out (1 first).
    """

    headers: Sequence[str]
    kind: str = "number"
    justify: JustifyMethod = "right"
    drop: int = 0
    shorten: Callable[[str], str] | None = None  # text: a shorter spelling, tried before cutting
    header_index: int = field(default=0, repr=False)

    @property
    def header(self) -> str:
        return self.headers[self.header_index]


def elide_middle(text: str, width: int, head: int | None = None) -> str:
    """``text`` in ``width`` characters: its first ``head`` characters (default: about half), an
    ellipsis, and its end."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    head = (width - 1) - (width - 1) // 2 if head is None else min(head, width - 1)
    tail = width - 1 - head
    return text[:head] + "…" + (text[-tail:] if tail else "")


def _distinct_cut(names: Sequence[str], floor: int) -> tuple[int, int | None]:
    """The narrowest width (at least ``floor``), and where the ellipsis goes, at which shortened
    names stay as distinct as they were (``stage2_block1_conv1_act`` -> ``stage2…1_conv1_act``)."""
    longest = max((len(n) for n in names), default=0)
    wanted = len(set(names))
    for width in range(min(floor, longest), longest):
        for head in range(1, width - 1):
            if len({elide_middle(n, width, head) for n in names}) == wanted:
                return width, head
    return longest, None


def _measure(table: Table) -> int:
    buffer = io.StringIO()
    console = Console(file=buffer, width=10_000, color_system=None, legacy_windows=False)
    console.print(table)
    return max((len(line) for line in buffer.getvalue().splitlines()), default=0)


def fitted_table(title: str | None, columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int, *,
                 total_row: bool = False, caption: str | None = None) -> Table:
    """A Rich table of ``rows`` that fits ``width`` columns (see the module docstring)."""
    columns = list(columns)
    grid = [list(row) for row in rows]  # a copy whose cells step 3 may rewrite
    shown = list(range(len(columns)))
    limits: dict[int, int] = {}  # shortened column -> width
    heads: dict[int, int | None] = {}  # name column -> where its ellipsis goes

    def cell(i: int, text: str) -> str:
        if i not in limits:
            return text
        return elide_middle(text, limits[i], heads.get(i)) if columns[i].kind == "name" else (
            text if len(text) <= limits[i] else text[: max(limits[i] - 1, 0)] + "…")

    def build() -> Table:
        table = Table(title=title, caption=caption, header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
                      show_edge=False, collapse_padding=True, title_justify="left", caption_justify="left")
        for i in shown:
            column = columns[i]
            whole = max([len(column.header)] + [len(r[i]) for r in grid]) if column.kind == "number" else None
            table.add_column(column.header, justify=column.justify, no_wrap=True, min_width=whole,
                             overflow="fold" if column.kind == "number" else "ellipsis")
        for n, row in enumerate(grid):
            if total_row and n == len(grid) - 1:
                table.add_section()
            table.add_row(*(cell(i, row[i]) for i in shown))
        return table

    def fits() -> bool:
        return _measure(build()) <= width

    for column in columns:  # 1. shorter headers, never shorter than the column's values
        while not fits() and column.header_index < len(column.headers) - 1:
            column.header_index += 1
    if not fits():
        for i in sorted((i for i, c in enumerate(columns) if c.drop), key=lambda i: columns[i].drop):  # 2.
            shown.remove(i)
            if fits():
                break
    for i in shown:  # 3. shorter spellings of text (BatchNormalization -> BatchNorm)
        shorten = columns[i].shorten
        if shorten is not None and not fits():
            for row in grid:
                row[i] = shorten(row[i])
    for kind in ("name", "text"):  # 4. names in the middle (kept distinct), 5. free text at its end
        shrinkable = [i for i in shown if columns[i].kind == kind]
        current = {i: max([len(columns[i].header)] + [len(r[i]) for r in grid]) for i in shrinkable}
        floor = {i: max(6 if kind == "text" else NAME_FLOOR, len(columns[i].header)) for i in shrinkable}
        while not fits():
            candidates = [i for i in shrinkable if current[i] > floor[i]]
            if not candidates:
                break
            widest = max(candidates, key=lambda i: current[i])
            target = max(floor[widest], current[widest] - (_measure(build()) - width))
            if kind == "name":  # as narrow as asked, or as narrow as the names stay distinct
                names = [r[widest] for r in grid]
                distinct, head = _distinct_cut(names, target)
                if distinct >= current[widest]:
                    floor[widest] = current[widest]  # cannot be shortened without two names alike
                    continue
                target, heads[widest] = distinct, head
            current[widest] = limits[widest] = target
    return build()


def number_cell(value: Any, key: str = "") -> str:
    """A number for a table: '-' when missing, counts as integers, measurements to 4 decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and ("epoch" in key or key.endswith(("_count", "epochs"))) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.4f}"
    return short_number(value)


#: Summary measures: their headers from longest to shortest.
HEADERS = {
    "best_val_accuracy": ("best val accuracy", "val acc"), "best_val_mean_iou": ("best val mean IoU", "val IoU"),
    "best_val_loss": ("best val loss", "val loss"), "best_val_mae": ("best val MAE", "val MAE"),
    "final_gap_accuracy": ("final gap accuracy", "gap acc", "gap"), "final_gap_mean_iou": ("final gap mean IoU",
                                                                                            "gap IoU", "gap"),
    "final_gap_loss": ("final gap loss", "gap loss", "gap"), "test_accuracy": ("test accuracy", "test acc"),
    "test_mean_iou": ("test mean IoU", "test IoU"), "epochs": ("epochs",), "best_epoch": ("best epoch", "best"),
}
#: Parameters that vary between runs but are bookkeeping, not something swept.
NOT_SWEPT = ("tracking.", "data.n_", "data.source_", "name", "description", "model.params", "data.input_shape")


def headers_of(key: str) -> tuple[str, ...]:
    return HEADERS.get(key, (key.replace("_", " "),))


def runs_table(frame: pd.DataFrame, *, title: str, width: int, swept: Sequence[str] = (),
               objective: str | None = None, maximize: bool | None = None) -> Table:
    """The runs of ``frame`` (a runs frame) as a table that fits ``width``: trial, state, swept
    parameters, the objective and its gap, then epochs and the test score when there is room;
    sorted by the objective (best first, unfinished runs last).

    ``swept``: the swept key paths (a study's), else the parameters that vary between runs.
    ``objective``: the study's objective, else best validation mean IoU, accuracy or loss.
    """
    if not swept:
        swept = [c.removeprefix("param.") for c in frame if c.startswith("param.") and frame[c].nunique() > 1
                 and not c.removeprefix("param.").startswith(NOT_SWEPT)]
    objective = objective or next((k for k in ("best_val_mean_iou", "best_val_accuracy", "best_val_loss",
                                               "best_val_mae") if k in frame and frame[k].notna().any()), None)
    if maximize is None:
        maximize = objective is not None and not any(w in objective for w in ("loss", "mae", "gap"))
    ordered = frame
    if objective is not None and objective in frame:
        ordered = frame.assign(_key=pd.to_numeric(frame[objective], errors="coerce")).sort_values(
            "_key", ascending=not maximize, na_position="last", kind="stable")
    gap = gap_summary_key(objective or "")
    names = short_keys(swept)
    columns = [Column(("run",), kind="name", justify="left"), Column(("state",), kind="text", justify="left")]
    # each called with a row; ``...`` because the lambdas below bind their key as a default argument, which
    # mypy cannot infer against Callable[[Any], str]
    getters: list[Callable[..., str]] = [_run_name, _state]
    for key in swept:
        columns.append(Column((names[key],), kind="number"))
        getters.append(lambda row, k=f"param.{key}": _param(row.get(k)))
    measures = [(k, 0) for k in (objective, gap) if k and k in frame]
    measures += [(k, d) for k, d in (("epochs", 2), ("test_accuracy", 1), ("test_mean_iou", 1)) if k in frame
                 and frame[k].notna().any()]
    for key, drop in dict(measures).items():
        columns.append(Column(headers_of(key), kind="number", drop=drop))
        getters.append(lambda row, k=key: number_cell(row.get(k), k))
    rows = [[get(row) for get in getters] for row in ordered.to_dict("records")]
    return fitted_table(title, columns, rows, width)


def _param(value: Any) -> str:
    """A parameter's value: 4 significant digits (a learning rate of 1e-05 stays 1e-05)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return short_number(value)


def _run_name(row: Any) -> str:
    """The run's name without the ending its state column says (``trial-3 (pruned at epoch 2)``)."""
    name = str(row.get("run_name") or row.get("run_id") or "")
    return name.split(" (")[0] if name.startswith("trial-") else name


def _state(row: Any) -> str:
    state = row.get("trial_state")
    return str(state if isinstance(state, str) else row.get("status") or "-")
