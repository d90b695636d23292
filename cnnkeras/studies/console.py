"""What a sweep shows while it works.

On a terminal, :class:`SweepDisplay` draws a live panel (Rich): one row per running trial
(trial, epoch of epochs, the objective's per-epoch measure and the gap, its parameters),
then the trials finished and how they ended, the best value so far and an ETA; each trial
that ends also gets its line above the panel, so the history scrolls as usual. With ``-q``
or without a terminal (a log, CI) there is no panel: one line per trial
(:class:`TrialLine`), its objective and its gap included. Trials in worker processes
(``--jobs``, ``isolation: process``) report each epoch over the executor's pipe, cohort
members as they train, so the panel is the same whichever way trials run.

Lines fit the console's width (80 columns in a pipe): parameter keys are abbreviated
(:func:`short_keys`) and the parameters are the part cut, never the numbers.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..config.schema import OBJECTIVE_METRICS
from ..tracking.values import redact

__all__ = ["SweepDisplay", "TrialLine", "fit_line", "short_keys", "short_number"]

#: Abbreviations of the last part of a key path, for tables and lines at 80 columns.
ABBREVIATIONS = {"learning_rate": "lr", "batch_size": "batch", "weight_decay": "wd", "label_smoothing": "smooth",
                 "dropout": "drop", "momentum": "mom", "width_multiplier": "width", "validation_split": "val_split",
                 "base_width": "width", "bn_momentum": "bn_mom", "epochs": "epochs", "optimizer.name": "opt"}
COLOURS = {"COMPLETE": "green", "PRUNED": "yellow", "FAIL": "red"}


def short_number(value: Any) -> str:
    """A parameter value for people: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def short_keys(keys: Iterable[str]) -> dict[str, str]:
    """Each key path's short name: its last part, abbreviated (``train.optimizer.learning_rate`` -> ``lr``),
    with as many leading parts as it takes to keep two keys apart (``model.dropout``, ``data.dropout``)."""
    keys = list(dict.fromkeys(keys))

    def name(key: str, parts: int) -> str:
        tail = key.split(".")[-parts:]
        two = ".".join(key.split(".")[-2:])
        if parts == 1:
            return ABBREVIATIONS.get(two, ABBREVIATIONS.get(tail[-1], tail[-1]))
        return ".".join(tail[:-1] + [ABBREVIATIONS.get(tail[-1], tail[-1])])

    depth = {key: 1 for key in keys}
    for _ in range(8):
        shown = {key: name(key, depth[key]) for key in keys}
        clashes = [k for k in keys if list(shown.values()).count(shown[k]) > 1]
        if not clashes:
            return shown
        for key in clashes:
            if depth[key] < len(key.split(".")):
                depth[key] += 1
            else:
                shown[key] = key
    return {key: name(key, depth[key]) if list(shown.values()).count(shown[key]) == 1 else key for key in keys}


def fit_line(head: str, tail: str, width: int) -> str:
    """``head`` then as much of ``tail`` as fits in ``width`` columns (cut with an ellipsis): the
    numbers are in the head, the parameters in the tail."""
    if len(head) + len(tail) <= width:
        return head + tail
    room = width - len(head) - 1
    return head + (tail[:room] + "…" if room > 3 else "")


def _params_text(params: Mapping[str, Any], names: Mapping[str, str]) -> str:
    return " ".join(f"{names.get(k, k)}={short_number(v)}" for k, v in params.items())


def _value(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) and math.isfinite(value) else "-"


class TrialLine:
    """One line per told trial: ``trial   3 COMPLETE best_val_accuracy=0.9312 gap=0.0412  lr=0.001 batch=64``.

    ``gap`` is the gap that goes with the objective (``final_gap_accuracy``, or mean IoU's).
    With ``failures_only`` only failed trials print: a failure is never silent.
    """

    def __init__(self, console: Any, search: Any, *, failures_only: bool = False):
        self.console, self.search, self.failures_only = console, search, failures_only
        self.names = short_keys(search.parameters)

    def text(self, trial: Any, width: int) -> str:
        """The line (plain text), fitted to ``width`` columns."""
        state = trial.state.name
        metric = self.search.objectives[0].metric
        summary = trial.user_attrs.get("summary") or {}
        value, gap = summary.get(metric), summary.get(gap_summary_key(metric))
        if state in ("COMPLETE", "PRUNED") and isinstance(value, float) and math.isfinite(value):
            shown = f"{metric}={value:.4f}" + (f" gap={gap:.4f}" if isinstance(gap, float) and math.isfinite(gap)
                                               else "")
            if state == "PRUNED" and trial.user_attrs.get("reason"):
                shown += f" ({trial.user_attrs['reason']})"
        else:
            shown = redact(trial.user_attrs.get("reason", ""))
        head = f"trial {trial.number:3d} {state:8s} {shown}"
        if state == "FAIL":
            return head  # the reason, whole (it may wrap): never cut
        return fit_line(head + "  ", _params_text(trial.params, self.names), width)

    def __call__(self, trial: Any) -> None:
        state = trial.state.name
        if self.failures_only and state != "FAIL":
            return
        text = Text(self.text(trial, self.console.width))
        text.stylize(COLOURS.get(state, "dim"), 10, 18)
        # a failure's reason is never cut: wrapped on a terminal, whole on one line in a pipe or a log
        self.console.print(text, highlight=False, soft_wrap=state != "FAIL" or not self.console.is_terminal)


def gap_summary_key(metric: str) -> str:
    """The gap summary that goes with an objective: mean IoU's for mean IoU objectives, else accuracy's
    (loss's for a loss or MAE objective)."""
    if "mean_iou" in metric:
        return "final_gap_mean_iou"
    if "loss" in metric or "mae" in metric:
        return "final_gap_loss"
    return "final_gap_accuracy"


class SweepDisplay:
    """The live panel of a sweep on a terminal (see the module docstring); a
    :class:`~cnnkeras.studies.executor.TrialWatch`.

    Args:
        console: Where it draws (stderr); it must be a terminal.
        search: The config's search section (objective, parameters).
        study: The study's name.
        total: Trials this process is to finish (None: unbounded).
        done: Trials finished before this process started.
    """

    def __init__(self, console: Console, search: Any, *, study: str, total: int | None, done: int = 0,
                 best: tuple[float, int] | None = None):
        self.console, self.search, self.study = console, search, study
        self.total, self.done_before = total, done
        self.metric = search.objectives[0].metric
        self.maximize = search.objectives[0].direction == "maximize"
        self.line = TrialLine(console, search)
        self.names = self.line.names
        self.lock = threading.Lock()
        self.running: dict[int, dict[str, Any]] = {}
        self.counts = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0}
        self.best = best  # (value, trial number)
        self.durations: list[float] = []
        self.started_at = time.monotonic()
        self.live = Live(console=console, refresh_per_second=2, transient=True, get_renderable=self.render,
                         redirect_stdout=False, redirect_stderr=False)

    def __enter__(self) -> SweepDisplay:
        self.live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.stop()

    # --------------------------------------------------------------- TrialWatch

    def started(self, trial: Any) -> None:
        with self.lock:
            self.running[trial.number] = {"params": dict(trial.trial.params), "epoch": 0, "epochs": None,
                                          "values": {}, "since": time.monotonic()}

    def epoch(self, trial: Any, epoch: int, epochs: int, values: Mapping[str, float]) -> None:
        with self.lock:
            row = self.running.setdefault(trial.number, {"params": dict(trial.trial.params), "since": time.monotonic()})
            row.update(epoch=epoch, epochs=epochs, values=dict(values))
        if self.live.is_started:  # every epoch is drawn at least once, however fast the epochs come (a refresh
            self.live.refresh()   # at 2 Hz alone would skip the quick ones)

    def ended(self, trial: Any) -> None:
        with self.lock:
            row = self.running.pop(trial.number, None)
        if row is not None:
            self.durations.append(time.monotonic() - row["since"])

    # ------------------------------------------------------------ told trials

    def told(self, frozen: Any) -> None:
        """A trial was told: its line above the panel; counts and the best so far updated."""
        state = frozen.state.name
        with self.lock:
            self.running.pop(frozen.number, None)
            if state in self.counts:
                self.counts[state] += 1
            if state == "COMPLETE" and frozen.values:
                value = float(frozen.values[0])
                if self.best is None or (value > self.best[0] if self.maximize else value < self.best[0]):
                    self.best = (value, frozen.number)
        self.line(frozen)

    def say(self, text: str) -> None:
        self.console.print(text, style="cyan", highlight=False, markup=False)

    # ----------------------------------------------------------------- drawing

    def finished(self) -> int:
        return sum(self.counts.values())

    def eta_s(self) -> float | None:
        """Seconds left: the trials left times the wall time per finished trial (jobs overlap in it);
        before any trial finished, from the running trials' epochs."""
        if self.total is None:
            return None
        left = max(0, self.total - self.finished())
        if left == 0:
            return 0.0
        elapsed = time.monotonic() - self.started_at
        if self.finished():
            return left * elapsed / self.finished()
        rates = [(time.monotonic() - row["since"]) / row["epoch"] * row["epochs"]
                 for row in self.running.values() if row.get("epoch") and row.get("epochs")]
        if not rates:
            return None
        parallel = max(1, len(self.running))
        return left * (sum(rates) / len(rates)) / parallel

    def header(self) -> str:
        """``STUDY: 5/20 done (4 complete, 1 pruned, 0 failed) · best 0.9312 (trial 3) · ETA 2m10s``,
        shortened to fit the console (``4 ok``, ``#3``, then without the study's name)."""
        total = f"/{self.total}" if self.total is not None else ""
        c, p, f = self.counts["COMPLETE"], self.counts["PRUNED"], self.counts["FAIL"]
        eta = self.eta_s()
        eta_text = f"ETA {_duration(eta)}" if eta is not None else "ETA -"
        forms = []
        for name, complete, trial in ((f"{self.study}: ", "complete", "trial "), (f"{self.study}: ", "ok", "#"),
                                      ("", "ok", "#")):
            parts = [f"{name}{self.finished()}{total} done ({c} {complete}, {p} pruned, {f} failed)"]
            if self.best is not None:
                parts.append(f"best {self.best[0]:.4f} ({trial}{self.best[1]})")
            parts.append(eta_text)
            forms.append(" · ".join(parts))
        return next((form for form in forms if len(form) <= self.console.width), forms[-1])

    def render(self) -> Any:
        with self.lock:
            rows = sorted(self.running.items())
            header = self.header()
        monitor = self._monitor()
        table = Table(box=None, header_style="bold", pad_edge=False, show_edge=False, expand=False)
        label = monitor.replace("_", " ")
        table.add_column("trial", justify="right", no_wrap=True, min_width=5)
        table.add_column("epoch", justify="right", no_wrap=True, min_width=8)
        table.add_column(label, justify="right", no_wrap=True, min_width=max(6, len(label)))
        table.add_column("gap", justify="right", no_wrap=True, min_width=7)
        table.add_column("parameters", no_wrap=True, overflow="ellipsis")  # the part that gives way
        for number, row in rows:
            epochs = row.get("epochs")
            epoch = f"{row.get('epoch', 0)}/{epochs}" if epochs else "starting"
            values = row.get("values") or {}
            table.add_row(str(number), epoch, _value(values.get("value")), _value(values.get("gap")),
                          _params_text(row["params"], self.names))
        title = Text(header, style="bold")
        return Group(title, table) if rows else title

    def _monitor(self) -> str:
        return OBJECTIVE_METRICS.get(self.metric, self.metric)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def best_so_far(trials: Sequence[Any], maximize: bool) -> tuple[float, int] | None:
    """The best complete trial's first value and number (the panel starts from it when resuming)."""
    complete = [t for t in trials if t.state.name == "COMPLETE" and t.values]
    if not complete:
        return None
    chosen = (max if maximize else min)(complete, key=lambda t: t.values[0])
    return float(chosen.values[0]), chosen.number
