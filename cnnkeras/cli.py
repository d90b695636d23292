"""The ``cnnkeras`` command line: parse, call the library, print.

Each command is a thin wrapper over the function of the same name in
:mod:`cnnkeras` (``cnnkeras run`` -> :func:`cnnkeras.run`). User errors
(:class:`~cnnkeras.errors.CnnkerasError`) print without a traceback and exit 2;
a run whose loss diverged exits 1.
"""

from __future__ import annotations

import atexit
import contextlib
import faulthandler
import functools
import gc
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, Optional

import typer
import yaml
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

import cnnkeras

from . import interrupts
from .config.docs import schema_markdown
from .errors import CnnkerasError, SweepInterrupted, TrainingDiverged
from .lazy import lazy_import
from .process import quiet_process

# Heavy modules (Keras, Optuna, pandas), imported by the commands that need them.
frames = lazy_import("cnnkeras.analysis.frames")
run_source = lazy_import("cnnkeras.analysis.source")
tables = lazy_import("cnnkeras.reporting.tables")
layer_blocks = lazy_import("cnnkeras.layers.blocks")
layer_registry = lazy_import("cnnkeras.layers.registry")
console_lines = lazy_import("cnnkeras.studies.console")

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="rich",
                  help="Declarative CNN experiments on Keras 3, tracked in MLflow, swept with Optuna.")
out = Console()
err = Console(stderr=True)

ConfigArg = typer.Argument(..., exists=False, help="Experiment YAML file.")
OverridesArg = typer.Argument(None, help="Overrides like train.batch_size=64 model.dropout=0.3")
StorageOpt = typer.Option(None, "--storage", help="Optuna storage of a named study (default .cnnkeras/NAME.journal).")
BackendOpt = typer.Option(None, "--backend", help="Keras backend: tensorflow, jax or torch (overrides the "
                          "config's backend key).")
UriOpt = typer.Option(None, "--uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db).")
TrackingUriOpt = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (sets tracking.uri; default: the "
                              "config's, else $MLFLOW_TRACKING_URI, else ./mlflow.db).")


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Print cnnkeras' own errors as one line (a traceback with ``--verbose``) and exit with their code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt as exc:  # a stop signal ended the command (its runs are closed KILLED)
            if _state["verbose"]:
                err.print_exception(show_locals=False)
            err.print(f"[bold yellow]interrupted:[/] {interrupts.interrupt_reason(exc)}", highlight=False)
            raise typer.Exit(interrupts.exit_code(exc)) from None
        except CnnkerasError as exc:
            if _state["verbose"]:
                err.print_exception(show_locals=False)
            label = "failed" if isinstance(exc, TrainingDiverged) else "error"
            # one message: wrapped at the terminal's width on a terminal, one line in a pipe or a log
            err.print(Text.assemble((f"{label}: ", "bold red"), str(exc)), highlight=False,
                      soft_wrap=not err.is_terminal)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


_state = {"verbose": False}


@app.callback()
def main_options(verbose: bool = typer.Option(False, "--verbose", "-v",
                                              help="Show the traceback of an error, not only its message.")) -> None:
    """Declarative CNN experiments on Keras 3, tracked in MLflow, swept with Optuna."""
    _state["verbose"] = verbose
    _configure_logging()


def _configure_logging() -> None:
    """The one place cnnkeras configures the libraries' output (the library itself never does):
    :func:`cnnkeras.process.quiet_process`. Trial worker processes call it too."""
    quiet_process()


def _metrics_table(title: str, values: dict[str, float]) -> Table:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in values.items():
        table.add_row(key, _cell(value, key))
    return table


@app.command()
@handle_errors
def run(config: Path = ConfigArg, overrides: Optional[list[str]] = OverridesArg,
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
        backend: Optional[str] = BackendOpt, tracking_uri: Optional[str] = TrackingUriOpt) -> None:
    """Train and evaluate one experiment, tracked in MLflow."""
    result = cnnkeras.run(cnnkeras.load_config(config, _with_options(overrides, backend, tracking_uri)),
                          progress=not quiet)
    keys = ["epochs_run", "best_epoch", "best_val_loss", "best_val_accuracy", "best_val_mean_iou",
            "final_gap_accuracy", "final_gap_mean_iou", "final_gap_loss", "test_loss", "test_accuracy",
            "test_mean_iou", "test_mae"]
    out.print(_metrics_table(f"{result.config.name}: results", {k: result.summary[k] for k in keys
                                                                 if k in result.summary}))
    if result.run_id:
        out.print(f"MLflow run [bold]{result.run_id}[/] in {result.tracking_uri}")
        out.print("Look at it with: [bold]cnnkeras ui[/] (then open http://127.0.0.1:5000)"
                  f"; reproduce it with: [bold]cnnkeras reproduce {result.run_id}[/]")


def _with_options(overrides: Optional[list[str]], backend: Optional[str], tracking_uri: Optional[str]) -> list[str]:
    """``--backend jax`` is the override ``backend=jax`` and ``--tracking-uri U`` is ``tracking.uri=U``:
    validated with the config, saved with the run."""
    return [*(overrides or []), *([f"backend={backend}"] if backend else []),
            *([f"tracking.uri={json.dumps(tracking_uri)}"] if tracking_uri else [])]


@app.command()
@handle_errors
def validate(config: Path = ConfigArg, overrides: Optional[list[str]] = OverridesArg) -> None:
    """Check a config (every error at once) and print the resolved config."""
    resolved = cnnkeras.validate(config, overrides or [])
    out.print(yaml.safe_dump(resolved.to_dict(), sort_keys=False), highlight=False, markup=False)
    err.print(f"[green]{config}: valid[/]")


@app.command()
def schema(markdown: bool = typer.Option(False, "--markdown", help="The configuration reference as Markdown.")) -> None:
    """Print the JSON schema of experiment files (or the Markdown reference)."""
    if markdown:
        sys.stdout.write(schema_markdown())
    else:
        print(json.dumps(cnnkeras.schema(), indent=2))


@app.command()
@handle_errors
def reproduce(run_id: str = typer.Argument(..., help="MLflow run id to re-run."), uri: Optional[str] = UriOpt,
              tolerance: float = typer.Option(0.0, help="Largest absolute difference accepted.")) -> None:
    """Re-run a logged run from its saved config and compare every metric."""
    result = cnnkeras.reproduce(run_id, uri=uri, tolerance=tolerance)
    table = Table(title=f"reproduce {run_id}", header_style="bold")
    table.add_column("metric")
    table.add_column("largest |difference|", justify="right")
    for key, diff in sorted(result.differences.items()):
        table.add_row(key, f"[{'green' if diff <= tolerance else 'red'}]{diff:.3g}[/]")
    out.print(table)
    if result.matches:
        out.print(f"[bold green]match[/]: all {result.compared} metrics agree (new run {result.new_run_id})")
    else:
        out.print(f"[bold red]mismatch[/]: some metrics differ by more than {tolerance} (new run {result.new_run_id})")
        raise typer.Exit(1)


@app.command()
@handle_errors
def ui(uri: Optional[str] = UriOpt, host: str = typer.Option("127.0.0.1", help="Address to listen on."),
       port: int = typer.Option(5000, help="Landing page port; MLflow on port+1, optuna-dashboard on port+2..."),
       root: Path = typer.Option(Path("."), help="Folder searched for studies (.cnnkeras/*.journal)."),
       reports: Path = typer.Option(Path("reports"), help="Folder of reports to serve."),
       storage: Optional[list[str]] = typer.Option(None, "--storage", help="Extra study storage URL (repeatable)."),
       mlflow_url: Optional[str] = typer.Option(None, "--mlflow-url",
                                                help="Link this running MLflow UI instead of starting one.")
       ) -> None:
    """Serve one landing page linking the MLflow UI, optuna-dashboard and the reports (Ctrl-C stops)."""
    cnnkeras.ui(root=root, uri=uri, host=host, port=port, reports=reports, storages=storage or [], mlflow_url=mlflow_url)


@app.command()
@handle_errors
def sweep(config: Path = ConfigArg, overrides: Optional[list[str]] = OverridesArg,
          jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1,
                                             help="Trials at once (each in its own process)."),
          trials: Optional[int] = typer.Option(None, "--trials", "-n", min=1,
                                               help="Total trials (default: search.n_trials)."),
          quiet: bool = typer.Option(False, "--quiet", "-q", help="One line per trial, no live panel and no "
                                     "summary table (also the output without a terminal)."),
          backend: Optional[str] = BackendOpt, tracking_uri: Optional[str] = TrackingUriOpt,
          join_anyway: bool = typer.Option(False, "--join-anyway", help="Join an existing study even if this "
                                           "config differs from the one that made it (search.join: any).")) -> None:
    """Run or resume the config's Optuna sweep; every trial is a nested MLflow run."""
    overrides = [*(overrides or []), *(["search.join=any"] if join_anyway else [])]
    try:
        result = cnnkeras.sweep(cnnkeras.load_config(config, _with_options(overrides, backend, tracking_uri)),
                                jobs=jobs, n_trials=trials, progress="lines" if quiet else True,
                                verbose=_state["verbose"])
    except SweepInterrupted as exc:
        err.print(f"[bold yellow]interrupted:[/] {exc}", highlight=False)
        raise typer.Exit(exc.exit_code) from None
    if not quiet:
        _print_sweep_summary(result)
    out.print(f"study [bold]{result.study_name}[/] in {result.storage}: {result.counts()}", highlight=False)
    if result.all_failed:
        err.print("[bold red]failed:[/] every trial of the study failed (the reasons are above and on each "
                  "trial's MLflow run)", highlight=False)
        raise typer.Exit(1)
    if result.parent_run_id:
        out.print(f"MLflow parent run [bold]{result.parent_run_id}[/]; retrain the best with: "
                  f"[bold]cnnkeras best {config}[/]")


def _print_sweep_summary(result: Any) -> None:
    """The best trials (up to 10) and the parameter importances of a finished sweep."""
    table = Table(title=f"study {result.study_name}: best trial(s)", header_style="bold")
    table.add_column("trial", justify="right", no_wrap=True)
    table.add_column("values", justify="right", no_wrap=True)
    table.add_column("parameters")
    names = console_lines.short_keys(k for best in result.best for k in best["params"])
    for best in result.best[:10]:
        table.add_row(str(best["number"]), ", ".join(f"{v:.4f}" for v in best["values"]),
                      "  ".join(f"{names[k]}={console_lines.short_number(v)}" for k, v in best["params"].items()))
    out.print(table)
    out.print(f"parent MLflow run {result.parent_run_id}", highlight=False)
    for target, ranking in result.importances.items():  # the report ranks the same trials the same way
        out.print(f"importance for {target}: {ranking.text()}", highlight=False)


@app.command()
@handle_errors
def grant(user: str = typer.Argument(..., help="The user to let in."),
          experiment: str = typer.Argument(..., help="The MLflow experiment (the config's name, or "
                                           "tracking.experiment)."),
          permission: str = typer.Option("EDIT", "--permission", help="READ, EDIT, MANAGE or NO_PERMISSIONS."),
          uri: Optional[str] = UriOpt) -> None:
    """Let a colleague write to an experiment on an MLflow server with logins (run as its owner or an admin)."""
    out.print(cnnkeras.grant(user, experiment, permission=permission, uri=uri), highlight=False)


@app.command()
@handle_errors
def best(study: str = typer.Argument(..., help="A study name, or the experiment file of the sweep."),
         storage: Optional[str] = typer.Option(None, "--storage", help="Study storage (URL or .journal file)."),
         register: bool = typer.Option(True, "--register/--no-register", help="Register in the MLflow registry."),
         quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display.")) -> None:
    """Retrain a study's best configuration on the whole training split, test it, register the model."""
    result = cnnkeras.best(study, storage=storage, register=register, progress=not quiet)
    out.print(f"retrained trial {result.trial} of study {result.study}"
              + (f" (MLflow run {result.trial_run_id})" if result.trial_run_id else "")
              + f" on the whole training split: its validation part ({result.folded:.0%}) folded into training, "
              "early stopping off", highlight=False, soft_wrap=False)
    out.print(_metrics_table("best configuration: results", result.test))
    out.print(f"MLflow run [bold]{result.run_id}[/]" + (f" (registered as model {result.study})" if result.registered
                                                        else ""), highlight=False)


@app.command()
@handle_errors
def runs(experiment: str = typer.Argument(..., help="Experiment file, study name or MLflow experiment name."),
         uri: Optional[str] = UriOpt, storage: Optional[str] = StorageOpt,
         out_path: Optional[Path] = typer.Option(None, "--out", help="Write the frame to .csv or .parquet."),
         curves: bool = typer.Option(False, "--curves", help="Per-epoch curves (long format) instead of runs."),
         k: int = typer.Option(3, help="Rising epochs that mark the onset of overfitting.")) -> None:
    """One row per run with parameters, metrics and overfitting measures (or per-epoch curves)."""
    source = run_source.resolve(experiment, uri=uri, storage=storage)
    frame = cnnkeras.curves_frame(source) if curves else cnnkeras.runs_frame(source, k=k)
    if out_path is not None:
        frames.export(frame, out_path)
        out.print(f"wrote {len(frame)} rows to {out_path}")
        return
    if curves:
        table = Table(title=f"{experiment}: per-epoch curves", header_style="bold")
        for key in ("run_name", "epoch", "metric", "value"):
            table.add_column(key.replace("_", " "))
        for row in frame.head(200).itertuples(index=False):
            values = row._asdict()
            table.add_row(*(_cell(values[key], key) for key in ("run_name", "epoch", "metric", "value")))
        out.print(table)
        return
    search = source.config.search if source.config is not None and source.config.search is not None else None
    objective = search.objectives[0] if search is not None else None
    out.print(tables.runs_table(frame, title=f"{experiment}: {len(frame)} runs", width=out.width,
                                swept=source.swept, objective=objective.metric if objective else None,
                                maximize=objective.direction == "maximize" if objective else None), highlight=False)


@app.command()
@handle_errors
def report(target: str = typer.Argument(..., help="Experiment file, study name or MLflow experiment name."),
           out_path: Optional[Path] = typer.Option(None, "--out", "-o", help="HTML file (default reports/NAME.html)."),
           uri: Optional[str] = UriOpt, storage: Optional[str] = StorageOpt,
           color_by: Optional[str] = typer.Option(None, "--color-by", help="Swept key path to colour curves by."),
           mlflow_url: Optional[str] = typer.Option(None, "--mlflow-url",
                                                    help="MLflow UI address, for links from the runs table."),
           k: int = typer.Option(3, help="Rising epochs that mark the onset of overfitting.")) -> None:
    """Write the overfitting report (one HTML page) and print each claim's verdict."""
    result = cnnkeras.report(target, out=out_path, uri=uri, storage=storage, color_by=color_by,
                             mlflow_url=mlflow_url, k=k)
    colours = {"supported": "green", "contradicted": "red", "not distinguishable from noise": "yellow"}
    for claim in result.claims:
        out.print(f"[bold]{claim.claim}[/]: [{colours.get(claim.verdict, 'dim')}]{claim.verdict}[/]", highlight=False)
        out.print(Padding(Text(claim.sentence), (0, 0, 0, 2)), highlight=False)
    out.print(f"report on {result.runs} runs: [bold]{result.path}[/]")


def _cell(value: Any, key: str) -> str:
    """A table cell for people: '-' for missing values, epochs as integers, measurements to 4 places."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float) and ("epoch" in key or key.endswith("_count")) and value.is_integer():
        return str(int(value))  # epochs are counts, not measurements
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _parse_shape(text: Optional[str]) -> Optional[tuple[int, int, int]]:
    if not text:
        return None
    try:
        h, w, c = (int(v) for v in text.split(","))
    except ValueError:
        raise CnnkerasError(f"--input must look like H,W,C (e.g. 32,32,3). Received: input={text}") from None
    if min(h, w, c) < 1:
        raise CnnkerasError(f"--input takes sizes of at least 1 (H,W,C). Received: input={text}")
    return h, w, c


def _human(n: Optional[float]) -> str:
    if n is None or n != n:
        return "-"
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(int(n))


@app.command("inspect")
@handle_errors
def inspect_cmd(target: str = typer.Argument(..., help="An architecture name or an experiment YAML file."),
                input: Optional[str] = typer.Option(None, "--input", help="Input shape H,W,C."),
                classes: Optional[int] = typer.Option(None, "--classes", help="Number of classes.")) -> None:
    """Per-layer table: output shape, parameters, MACs, receptive field, cumulative stride."""
    shape = _parse_shape(input)  # before cnnkeras.inspect, whose import loads Keras
    frame = cnnkeras.inspect(target, input_shape=shape, num_classes=classes)
    rows = [[row.layer, row.type, "x".join(str(d) for d in row.output_shape), f"{row.params:,}", _human(row.macs),
             str(row.receptive_field), str(row.stride)] for row in frame.itertuples()]
    rows.append(["total", "", "", f"{frame.attrs['params']:,}", _human(frame.attrs["macs"]), "", ""])
    Column = tables.Column
    columns = [Column(("layer",), kind="name", justify="left"),
               Column(("type",), kind="text", justify="left", shorten=tables.layer_type),
               Column(("output",), justify="left"), Column(("params",)), Column(("MACs",)), Column(("RF",)),
               Column(("stride",))]
    out.print(tables.fitted_table(f"{frame.attrs['name']} on {frame.attrs['input_shape']}", columns, rows, out.width,
                                  total_row=True), highlight=False)
    out.print("RF: receptive field in input pixels; stride: the layer's cumulative stride", highlight=False)


@app.command()
@handle_errors
def zoo(input: Optional[str] = typer.Option(None, "--input", help="Input shape H,W,C (builds every model for it; "
                                            "default: the stored figures at each model's own input)."),
        classes: Optional[int] = typer.Option(None, "--classes", help="Number of classes (builds every model)."),
        layers: bool = typer.Option(False, "--layers", help="List the layer and block names for declarative configs.")) -> None:
    """Every architecture: task, parameters and MACs, the smallest input it takes, its paper."""
    if layers:
        layer_registry.get_layer_class("conv2d")  # loads the custom layers into the registry
        out.print("[bold]layers:[/] " + ", ".join(sorted(layer_registry.LAYERS)))
        out.print("[bold]blocks:[/] " + ", ".join(sorted(layer_blocks.BLOCKS)))
        return
    shape = _parse_shape(input)
    listed = cnnkeras.zoo_catalog()
    if shape is not None or classes is not None:  # figures for another input: every model is built (slow)
        built = cnnkeras.zoo_table(input_shape=shape, num_classes=classes).set_index("arch")
        listed = listed.assign(params=listed["arch"].map(built["params"]), macs=listed["arch"].map(built["macs"]),
                               input=listed["arch"].map(built["input"]))
    rows = []
    for row in listed.itertuples():
        task = {"classification": "cls", "segmentation": "seg"}.get(row.tasks, "both")
        smallest = row.smallest_input if row.smallest_input == row.smallest_input else None
        too_small = shape is not None and smallest is not None and min(shape[:2]) < smallest
        same = row.reference_params == row.reference_params and row.reference_params == row.params
        rows.append([row.arch, task, "x".join(map(str, row.input)),
                     f"{int(smallest)}x{int(smallest)}" if smallest else "-",
                     "too small" if too_small else _human(row.params), "" if too_small else _human(row.macs),
                     "same" if same else _human(row.reference_params), row.citation])
    Column = tables.Column
    columns = [Column(("arch",), kind="name", justify="left"), Column(("task",), justify="left"),
               Column(("input",), drop=2), Column(("smallest", "min in")), Column(("params",)), Column(("MACs",)),
               Column(("reference",), drop=1), Column(("paper",), kind="text", justify="left")]
    at = f" for {input}" if shape is not None else " at each model's reference input"
    out.print(tables.fitted_table(f"cnnkeras zoo: parameters and MACs{at}", columns, rows, out.width),
              highlight=False)
    out.print("task: cls (classification), seg (segmentation, head: segmentation), both. smallest (min in): the "
              "smallest square input the model builds for, its small-input stem on where it has one (1x1: any; "
              "below it a stride or pooling window runs out of pixels, or keras.applications refuses it). "
              "reference: the published parameter count (tests check it). `cnnkeras inspect ARCH --input H,W,C` "
              "shows one model layer by layer", highlight=False)


def _count(value: Any) -> str:
    """A parameter count with thousands separators; '-' when there is none."""
    if value is None or value != value:
        return "-"
    return f"{int(value):,}"


cache_app = typer.Typer(no_args_is_help=True, help="The decoded-image cache: list its entries, clear them.")
app.add_typer(cache_app, name="cache")
CacheDirOpt = typer.Option(None, "--dir", help="Cache folder (default: $CNNKERAS_CACHE_DIR, else "
                           "~/.cache/cnnkeras/data).")


def _bytes(n: int) -> str:
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


@cache_app.command("list")
@handle_errors
def cache_list(cache_dir: Optional[Path] = CacheDirOpt) -> None:
    """Each decoded dataset: its images, shape, size on disk, and whether its files changed since (stale)."""
    entries = cnnkeras.cache_list(cache_dir)
    root = cnnkeras.api.cache_dir(cache_dir)
    total = sum(e.size_bytes for e in entries)
    if not entries:
        out.print(f"The cache at {root} is empty.", highlight=False)
        return
    rows = []
    for e in entries:
        arrays = e.meta.get("arrays", {})
        first: dict[str, Any] = next(iter(arrays.values()), {})
        shape = first.get("shape", [])
        rows.append([e.name, e.status, f"{shape[0]:,}" if shape else "-",
                     "x".join(str(d) for d in shape[1:]) or "-", _bytes(e.size_bytes)])
    Column = tables.Column
    columns = [Column(("entry",), kind="name", justify="left"), Column(("status",), kind="text", justify="left"),
               Column(("images",)), Column(("shape",), justify="left"), Column(("size",))]
    out.print(tables.fitted_table(f"{len(entries)} cached dataset(s), {_bytes(total)} in {root}", columns, rows,
                                  out.width), highlight=False)
    for e in entries:
        if e.meta.get("source"):
            out.print(f"{e.name}: decoded from {e.meta['source']} on {e.meta.get('created', '?')} in "
                      f"{e.meta.get('decode_s', 0):.1f} s", highlight=False, soft_wrap=True)
    if any(e.status in ("stale", "missing", "partial") for e in entries):
        out.print("stale: its files changed (a run decodes them again); clear those with "
                  "[bold]cnnkeras cache clear --stale[/]")


@cache_app.command("clear")
@handle_errors
def cache_clear(names: Optional[list[str]] = typer.Argument(None, help="Entries to remove (as listed)."),
                stale: bool = typer.Option(False, "--stale", help="Remove the stale, missing and partial entries."),
                everything: bool = typer.Option(False, "--all", help="Remove every entry."),
                cache_dir: Optional[Path] = CacheDirOpt) -> None:
    """Remove cached datasets: those named, the stale ones (--stale) or all of them (--all)."""
    if not names and not stale and not everything:
        raise typer.BadParameter("name the entries to remove, or give --stale or --all")
    removed = cnnkeras.cache_clear(names or [], stale=stale, everything=everything, cache_dir=cache_dir)
    freed = sum(e.size_bytes for e in removed)
    out.print(f"removed {len(removed)} entr{'y' if len(removed) == 1 else 'ies'} ({_bytes(freed)}) from "
              f"{cnnkeras.api.cache_dir(cache_dir)}", highlight=False)


def main() -> NoReturn:
    """Console-script entry point.

    A finished command ends its process without tearing its modules down: once the output is
    flushed and every ``atexit`` handler has run (MLflow's, logging's), nothing is left to save,
    and unloading TensorFlow, MLflow and SQLAlchemy takes 1-2 s of a short run on this CPU
    (docs/benchmarks.md). An unexpected exception keeps the normal exit and its traceback.
    """
    # A run imports about 3,000 modules (TensorFlow, MLflow): with the default generation-0
    # threshold (700 allocations) the collector walks the growing heap thousands of times,
    # about 0.5 CPU s of the start-up here; at 50,000 it runs a few dozen times.
    gc.set_threshold(50_000, 20, 20)
    if hasattr(signal, "SIGUSR1"):  # kill -USR1 PID prints every thread's stack: where a command hangs
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    # Commands that train hold the stop signals from their first line (cnnkeras.interrupts): a
    # Ctrl-C or SIGTERM during start-up is never lost, and every run ends recorded.
    training = _command(sys.argv[1:]) in TRAINING_COMMANDS
    try:
        with interrupts.deferred_interrupts(until_exit=True) if training else contextlib.nullcontext():
            app(standalone_mode=True)
        code = 0
    except SystemExit as exc:
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt as exc:  # a signal that came after the command's own handling
        print(f"interrupted: {interrupts.interrupt_reason(exc)}", file=sys.stderr)
        code = interrupts.exit_code(exc)
    _exit_now(code)


#: The commands that train models (and so create runs that must end recorded).
TRAINING_COMMANDS = ("run", "sweep", "best", "reproduce")


def _command(argv: list[str]) -> Optional[str]:
    """The command named on the command line (the first word that is not an option)."""
    return next((word for word in argv if not word.startswith("-")), None)


def _exit_now(code: int) -> NoReturn:
    """Flush, run the atexit handlers, and leave without the interpreter's module teardown."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (cnnkeras runs | head)
            pass
    atexit._run_exitfuncs()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
