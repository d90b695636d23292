"""Put the notes' claims to the test: is a measure's trend against a parameter real, reversed or noise?

A claim (``report.claims`` in the experiment file) names a swept parameter, a
measure of the runs frame and the expected direction::

    {claim: "Small learning rates overfit more", parameter: train.optimizer.learning_rate,
     measure: final_gap_accuracy, expect: decreasing}

:func:`evaluate_claim` fits the measure against the parameter over the finished
runs (log2 of the parameter when it is swept on a log scale or spans 4x or more;
its rank in ``levels`` for a categorical one), holding the other swept
parameters fixed as covariates, and reads the verdict from the slope's
confidence interval:

- **supported**: the interval excludes zero on the expected side;
- **contradicted**: it excludes zero on the other side;
- **not distinguishable from noise**: it contains zero (more seeds would tell);
- **not enough runs**: fewer runs than the fit needs; the sentence says how many runs,
  values and seeds it needs, and which setting to change.

Two more kinds of claim: a **level** (``expect: above | below | near`` a ``value`` at one
value ``at`` of the parameter) reads the mean and confidence interval of the runs there;
an **optimum** (``optimum_of``: another swept parameter) finds, for each value of the
parameter and each seed, the value of ``optimum_of`` where the measure is best, and fits
the trend of that optimum (log2 against log2 when both are log-scaled: the slope is the
exponent, 1 for "grows linearly").

Runs are compared at one budget (:mod:`cnnkeras.analysis.budget`): given a ``budget``,
the frame is one made by :func:`~cnnkeras.analysis.budget.frame_at_budget` and every
run that reached the budget counts, pruned ones included.

Repeated seeds (``report.replicate_key``, ``seed`` by default) are replicates:
they are never covariates, and their spread is reported as the noise level.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..config.checks import parameter_kind, value_key
from ..config.schema import CategoricalParam, Claim, ExperimentConfig
from ..measures import LOWER_IS_BETTER
from .budget import Budget, comparable
from .stats import mean_ci, trend
from .values import is_number, ordered_values, value_label

__all__ = ["ClaimResult", "ParamScale", "SweepContext", "counted", "evaluate_claim", "param_scales",
           "setting_summary"]

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
NOISE = "not distinguishable from noise"
TOO_FEW = "not enough runs"


@dataclass(frozen=True)
class ParamScale:
    """How a swept parameter enters a fit: ``log`` (log2), ``linear``, or ``levels`` (rank in ``order``).

    ``order`` also marks a numeric parameter that takes a few values (a categorical of numbers): its
    values, smallest first. Plots draw such a parameter as categories in that order; a fit still uses
    its numbers (log2 or linear).
    """

    kind: str
    order: tuple[Any, ...] = ()

    @property
    def categorical(self) -> bool:
        """A parameter with a few values (categories on a plot), not a continuous range."""
        return self.kind == "levels" or bool(self.order)

    def transform(self, values: pd.Series) -> np.ndarray:
        if self.kind == "log":
            return np.log2(pd.to_numeric(values, errors="coerce").astype(float).to_numpy())
        if self.kind == "linear":
            return pd.to_numeric(values, errors="coerce").astype(float).to_numpy()
        ranks = {value_key(v): i for i, v in enumerate(self.order)}
        return np.array([ranks.get(value_key(v), math.nan) for v in values], dtype=float)

    def unit(self, name: str) -> str:
        """What one step of x means, for sentences: 'per doubling of lr'."""
        if self.kind == "log":
            return f"per doubling of {name}"
        if self.kind == "linear":
            return f"per unit of {name}"
        return f"per step of {name} through {list(self.order)}"


def param_scales(config: ExperimentConfig) -> dict[str, ParamScale]:
    """The scale of every swept parameter of ``config.search``."""
    out: dict[str, ParamScale] = {}
    if config.search is None:
        return out
    for path, param in config.search.parameters.items():
        kind = parameter_kind(param)
        if not isinstance(param, CategoricalParam):
            out[path] = ParamScale(kind)
        elif kind == "levels":
            out[path] = ParamScale("levels", tuple(param.choices))
        else:
            out[path] = ParamScale(kind, tuple(ordered_values(param.choices)))
    return out


def in_range(runs: pd.DataFrame, parameter: str, bounds: tuple[float, float] | None) -> pd.Series:
    """Which runs have ``parameter`` in ``[low, high]`` (every run when there are no bounds)."""
    if bounds is None:
        return pd.Series(True, index=runs.index)
    values = pd.to_numeric(runs[f"param.{parameter}"], errors="coerce")
    return (values >= bounds[0]) & (values <= bounds[1])


def infer_scales(frame: pd.DataFrame, params: Iterable[str]) -> dict[str, ParamScale]:
    """Scales for parameters known only from a runs frame (an experiment without a study)."""
    out: dict[str, ParamScale] = {}
    for path in params:
        values = frame[f"param.{path}"].dropna()
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().all() and len(values) and not values.map(lambda v: isinstance(v, bool)).any():
            spans = numeric.min() > 0 and numeric.max() / numeric.min() >= 4
            few = tuple(ordered_values(values)) if numeric.nunique() <= FEW_VALUES else ()
            out[path] = ParamScale("log" if spans else "linear", few)
        else:
            out[path] = ParamScale("levels", tuple(ordered_values(values)))
    return out


#: A numeric parameter with at most this many values, known only from runs, is taken as categories.
FEW_VALUES = 8


@dataclass
class ClaimResult:
    """A claim, the verdict of the runs, and the numbers behind it."""

    claim: str
    parameter: str
    measure: str
    expect: str
    verdict: str
    slope: float = math.nan
    low: float = math.nan
    high: float = math.nan
    p_value: float = math.nan
    n_runs: int = 0
    n_values: int = 0
    n_replicates: int = 0
    noise_std: float = math.nan
    change: float = math.nan
    unit: str = ""
    covariates: list[str] = field(default_factory=list)
    confidence: float = 0.95
    levels: tuple[Any, Any] | None = None  # the two values, when the parameter took only two
    within: tuple[float, float] | None = None  # the claim's range of the parameter, if it has one
    kind: str = "trend"  # trend, level or optimum
    budget: str = ""  # where the runs were compared ("epoch 15")
    needed: str = ""  # for "not enough runs": what would be enough, and which setting to change
    at: Any = None  # level claims: the parameter value judged
    value: float | None = None  # level claims: the level
    tolerance: float | None = None  # near: how close counts
    mean: float = math.nan  # level claims: the mean there
    optimum_of: str | None = None  # optimum claims: the parameter whose best value trends
    optima: list[tuple[Any, Any]] = field(default_factory=list)  # optimum claims: (parameter, best optimum_of)

    @property
    def sentence(self) -> str:
        """The finding in one sentence with its numbers."""
        pct = int(round(self.confidence * 100))
        at_budget = f" at {self.budget}" if self.budget else ""
        if self.verdict == TOO_FEW:
            if self.kind == "level":
                return (f"{self.n_runs} run(s) with {self.parameter}={value_label(self.at)}{at_budget}: too few for a "
                        f"confidence interval. {self.needed}").strip()
            what = f"value(s) of {self.parameter}" + (f" with a best {self.optimum_of}" if self.kind == "optimum"
                                                       else "")
            return (f"{self.n_runs} {'point' if self.kind == 'optimum' else 'run'}(s){at_budget} over "
                    f"{self.n_values} {what}: too few to fit a trend. {self.needed}").strip()
        if self.kind == "level":
            relation = (f"within {self.tolerance:g} of {self.value:g}" if self.expect == "near"
                        else f"{self.expect} {self.value:g}")
            return (f"{self.measure} at {self.parameter}={value_label(self.at)}{at_budget} is {self.mean:.4f} "
                    f"({pct}% CI {self.low:.4f} to {self.high:.4f}, n={self.n_runs}); the claim: {relation}.")
        held = f", holding {', '.join(self.covariates)} fixed" if self.covariates else ""
        noise = (f"; seed-to-seed spread (residual std) {self.noise_std:.4f}"
                 if math.isfinite(self.noise_std) else "")
        if self.kind == "optimum":
            found = ", ".join(f"{value_label(a)}: {value_label(b)}" for a, b in self.optima)
            return (f"the best {self.optimum_of} (by {self.measure}{at_budget}) changes by {self.slope:+.3f} "
                    f"{self.unit} ({pct}% CI {self.low:+.3f} to {self.high:+.3f}, p={self.p_value:.3g}); "
                    f"best per {self.parameter.split('.')[-1]} and seed: {found}; {self.n_runs} points over "
                    f"{self.n_values} values" + (f" x {self.n_replicates} seeds" if self.n_replicates > 1 else "")
                    + f"{noise}.")
        name = self.measure + at_budget
        if self.levels is not None:  # two values: the difference between them says it plainly
            scale = self.change / self.slope if self.slope else 1.0
            low, high = sorted((self.low * scale, self.high * scale))
            effect = (f"{name} changes by {self.change:+.4f} from {self.parameter}={self.levels[0]} to "
                      f"{self.levels[1]} ({pct}% CI {low:+.4f} to {high:+.4f}, p={self.p_value:.3g})")
        else:
            effect = (f"{name} changes by {self.slope:+.4f} {self.unit} ({pct}% CI {self.low:+.4f} to "
                      f"{self.high:+.4f}, p={self.p_value:.3g}), {self.change:+.4f} across the swept range")
        if self.within is not None:
            effect += f" for {self.parameter.split('.')[-1]} in [{self.within[0]:g}, {self.within[1]:g}]"
        return (f"{effect}; {self.n_runs} runs over {self.n_values} values"
                + (f" x {self.n_replicates} seeds" if self.n_replicates > 1 else "") + held + noise + ".")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "sentence": self.sentence}


def finished(frame: pd.DataFrame) -> pd.DataFrame:
    """Runs that trained to the end (pruned and failed runs would bias final measures)."""
    if frame.empty:
        return frame
    state = frame.get("trial_state")
    keep = frame["status"].eq("FINISHED")
    if state is not None:
        keep &= state.isna() | state.eq("COMPLETE")
    return frame[keep]


def counted(frame: pd.DataFrame, budget: Budget | None) -> pd.DataFrame:
    """The runs a comparison counts: finished ones, or at a ``budget`` every run that reached it."""
    return finished(frame) if budget is None else comparable(frame, budget)


def evaluate_claim(frame: pd.DataFrame, claim: Claim, scales: Mapping[str, ParamScale], *,
                   replicate_key: str = "seed", confidence: float = 0.95,
                   budget: Budget | None = None, context: SweepContext | None = None) -> ClaimResult:
    """Test ``claim`` on the runs of ``frame`` (a runs frame; at ``budget``, one made by
    :func:`~cnnkeras.analysis.budget.frame_at_budget`).

    ``context`` (the sweep's pruner, trial count and seeds) lets a "not enough runs" verdict
    say which setting to change.
    """
    runs = counted(frame, budget)
    base = ClaimResult(claim.claim, claim.parameter, claim.measure, claim.expect, TOO_FEW, confidence=confidence,
                       within=claim.range, kind=claim.kind, budget=budget.label if budget is not None else "",
                       at=claim.at, value=claim.value, tolerance=claim.tolerance, optimum_of=claim.optimum_of)
    column = f"param.{claim.parameter}"
    excluded = len(frame) - len(runs)
    if runs.empty or column not in runs or claim.measure not in runs:
        base.needed = _advice(base, claim, runs, excluded, needed_runs=3, context=context, budget=budget)
        return base
    runs = runs[in_range(runs, claim.parameter, claim.range)]
    if claim.kind == "level":
        return _level(runs, claim, base, excluded, context, budget)
    if claim.kind == "optimum":
        return _optimum(runs, claim, scales, base, replicate_key, excluded, context, budget)
    scale = ParamScale("levels", tuple(claim.levels)) if claim.levels else scales.get(claim.parameter)
    scale = scale or infer_scales(runs, [claim.parameter])[claim.parameter]
    x = scale.transform(runs[column])
    y = pd.to_numeric(runs[claim.measure], errors="coerce").astype(float).to_numpy()
    others = [p for p in scales if p not in (claim.parameter, replicate_key) and f"param.{p}" in runs]
    covariates, used = [], []
    for path in others:
        values = scales[path].transform(runs[f"param.{path}"]) if scales[path].kind != "levels" else None
        if values is None:  # one-hot of a categorical, first level dropped
            keys = [value_key(v) for v in runs[f"param.{path}"]]
            for level in sorted(set(keys))[1:]:
                covariates.append(np.array([k == level for k in keys], dtype=float))
        else:
            covariates.append(values)
        used.append(path)
    cov = np.column_stack(covariates) if covariates else None
    fit = trend(x, y, cov, confidence=confidence)
    valid = np.isfinite(x) & np.isfinite(y)
    n_values = len(set(np.round(x[valid], 9)))
    base.n_runs, base.n_values = int(valid.sum()), n_values
    rep = f"param.{replicate_key}"
    base.n_replicates = int(runs.loc[valid, rep].nunique()) if rep in runs else 1
    base.covariates = used
    if fit.df <= 0 or n_values < 2 or not math.isfinite(fit.slope):
        base.needed = _advice(base, claim, runs, excluded + int((~valid).sum()), needed_runs=3 + len(covariates),
                              context=context, budget=budget)
        return base
    base.slope, base.low, base.high, base.p_value = fit.slope, fit.low, fit.high, fit.p_value
    base.noise_std = fit.residual_std
    base.change = fit.slope * float(np.nanmax(x[valid]) - np.nanmin(x[valid]))
    base.unit = scale.unit(claim.parameter.split(".")[-1])
    if n_values == 2:
        raw = runs[column][valid]
        order = np.argsort(x[valid], kind="stable")
        base.levels = tuple(v.item() if hasattr(v, "item") else v for v in (raw.iloc[order[0]], raw.iloc[order[-1]]))
    base.verdict = _verdict(fit.low, fit.high, fit.slope, claim.expect)
    return base


def _verdict(low: float, high: float, slope: float, expect: str) -> str:
    wanted = 1 if expect == "increasing" else -1
    if low > 0 or high < 0:
        return SUPPORTED if np.sign(slope) == wanted else CONTRADICTED
    return NOISE


def _level(runs: pd.DataFrame, claim: Claim, base: ClaimResult, excluded: int, context: Any,
           budget: Budget | None) -> ClaimResult:
    """Mean and CI of the measure over the runs at ``claim.at``, against ``claim.value``."""
    at = runs[[value_key(v) == value_key(claim.at) for v in runs[f"param.{claim.parameter}"]]]
    values = pd.to_numeric(at[claim.measure], errors="coerce").tolist()
    ci = mean_ci(values, base.confidence)
    base.n_runs, base.n_values, base.mean, base.low, base.high = ci.n, 1, ci.mean, ci.low, ci.high
    if ci.n < 2:
        base.needed = _advice(base, claim, at, excluded, needed_runs=2, context=context, budget=budget)
        return base
    assert claim.value is not None  # a level claim always has its value (Claim._kind_is_whole)
    value, tol = float(claim.value), float(claim.tolerance or 0.0)
    if claim.expect == "above":
        base.verdict = SUPPORTED if ci.low > value else CONTRADICTED if ci.high < value else NOISE
    elif claim.expect == "below":
        base.verdict = SUPPORTED if ci.high < value else CONTRADICTED if ci.low > value else NOISE
    else:
        inside = value - tol <= ci.low and ci.high <= value + tol
        outside = ci.low > value + tol or ci.high < value - tol
        base.verdict = SUPPORTED if inside else CONTRADICTED if outside else NOISE
    return base


def _optimum(runs: pd.DataFrame, claim: Claim, scales: Mapping[str, ParamScale], base: ClaimResult,
             replicate_key: str, excluded: int, context: Any, budget: Budget | None) -> ClaimResult:
    """The best ``optimum_of`` per (parameter value, seed), and the trend of that optimum."""
    assert claim.optimum_of is not None  # an optimum claim is one with optimum_of (Claim.kind)
    column, other = f"param.{claim.parameter}", f"param.{claim.optimum_of}"
    rep = f"param.{replicate_key}"
    if other not in runs:
        base.needed = _advice(base, claim, runs, excluded, needed_runs=3, context=context, budget=budget)
        return base
    lower = lower_is_better(claim.measure)
    keys = [column] + ([rep] if rep in runs else [])
    points = []
    for group_key, group in runs.groupby(keys, dropna=True, sort=False):
        scores = group.assign(_y=pd.to_numeric(group[claim.measure], errors="coerce")).dropna(subset=["_y"])
        if scores.empty:
            continue
        # several runs at one optimum_of value (other covariates): their mean decides
        means = scores.groupby(other)["_y"].mean()
        best = means.idxmin() if lower else means.idxmax()
        value = group_key[0] if isinstance(group_key, tuple) else group_key
        points.append((value, best))
    points.sort(key=lambda p: (float(p[0]) if is_number(p[0]) else str(p[0]), float(p[1]) if is_number(p[1]) else 0))
    base.optima = points
    param_scale = scales.get(claim.parameter) or infer_scales(runs, [claim.parameter])[claim.parameter]
    other_scale = scales.get(claim.optimum_of) or infer_scales(runs, [claim.optimum_of])[claim.optimum_of]
    x = param_scale.transform(pd.Series([p[0] for p in points], dtype=object))
    y = other_scale.transform(pd.Series([p[1] for p in points], dtype=object))
    fit = trend(x, y, None, confidence=base.confidence)
    valid = np.isfinite(x) & np.isfinite(y)
    base.n_runs, base.n_values = int(valid.sum()), len(set(np.round(x[valid], 9)))
    base.n_replicates = int(runs[rep].nunique()) if rep in runs else 1
    if fit.df <= 0 or base.n_values < 2 or not math.isfinite(fit.slope):
        base.needed = _advice(base, claim, runs, excluded, needed_runs=3, context=context, budget=budget,
                              points=True)
        return base
    base.slope, base.low, base.high, base.p_value = fit.slope, fit.low, fit.high, fit.p_value
    base.noise_std = fit.residual_std
    base.change = fit.slope * float(np.nanmax(x[valid]) - np.nanmin(x[valid]))
    what = "log2 of" if other_scale.kind == "log" else ""
    per = param_scale.unit(claim.parameter.split(".")[-1])
    base.unit = f"in {what} {claim.optimum_of.split('.')[-1]} {per}".replace("  ", " ")
    if other_scale.kind == "log" and param_scale.kind == "log":
        base.unit += " (the exponent: 1 is linear scaling)"
    base.verdict = _verdict(fit.low, fit.high, fit.slope, claim.expect)
    return base


def lower_is_better(measure: str) -> bool:
    """Whether a runs-frame measure is better when lower (losses, errors, gaps, epochs to fit)."""
    name = measure
    for prefix in ("final_", "best_", "test_"):
        name = name.removeprefix(prefix)
    return name in LOWER_IS_BETTER or name in ("loss", "mae", "data_loss", "minus_val_loss")


@dataclass(frozen=True)
class SweepContext:
    """What a "not enough runs" verdict needs to know about the sweep to say what to change."""

    pruner: str = "none"
    n_trials: int | None = None
    grid: int | None = None  # the full grid's size when every parameter is categorical
    seeds: tuple[Any, ...] = ()
    replicate_key: str = "seed"

    @classmethod
    def of(cls, config: ExperimentConfig | None, replicate_key: str = "seed") -> SweepContext | None:
        if config is None or config.search is None:
            return None
        search = config.search
        params = search.parameters.values()
        grid = None
        categorical = [p for p in params if isinstance(p, CategoricalParam)]
        if len(categorical) == len(params):
            grid = int(np.prod([len(p.choices) for p in categorical]))
        seeds = search.parameters.get(replicate_key)
        return cls(search.pruner.name, search.n_trials, grid, tuple(getattr(seeds, "choices", ()) or ()),
                   replicate_key)


def _advice(result: ClaimResult, claim: Claim, runs: pd.DataFrame, excluded: int, *, needed_runs: int,
            context: SweepContext | None, budget: Budget | None, points: bool = False) -> str:
    """What a claim that got "not enough runs" needs, and which setting gives it."""
    parts = []
    if result.kind == "level":
        parts.append(f"A level needs at least 2 runs at {claim.parameter}={value_label(claim.at)} (it has "
                     f"{result.n_runs}).")
    else:
        unit = "points (one per value and seed)" if points else "runs"
        parts.append(f"A trend needs at least 2 values of {claim.parameter} and {needed_runs} {unit} (it has "
                     f"{result.n_values} and {result.n_runs}).")
    if excluded:
        where = f" before {budget.label}" if budget is not None and budget.kind != "final" else ""
        parts.append(f"{excluded} run(s) were left out (failed, pruned, or stopped{where}).")
    if context is not None:
        if context.pruner != "none" and excluded:
            parts.append("Set search.pruner.name: none (or report.budget: {epoch: N} at or before the epoch where "
                         "trials were pruned) so pruned trials count.")
        seeds = context.replicate_key
        more_seeds = len(context.seeds) + 2 if context.seeds else 3
        if context.seeds:
            parts.append(f"Add seeds to search.parameters.{seeds}.choices (e.g. {more_seeds} of them)")
        else:
            parts.append(f"Sweep {seeds} as repeats: search.parameters.{seeds}: {{type: categorical, choices: "
                         f"{list(range(more_seeds))}}}")
        if context.grid is not None:
            per_seed = context.grid // max(1, len(context.seeds) or 1)
            parts[-1] += f" and raise search.n_trials to the grid's size ({per_seed} x the number of seeds)."
        else:
            parts[-1] += f", or raise search.n_trials (now {context.n_trials})."
    else:
        parts.append(f"Sweep more values of {claim.parameter}, or more seeds.")
    return " ".join(parts)


def setting_summary(frame: pd.DataFrame, params: list[str], measures: list[str], *,
                    replicate_key: str = "seed", confidence: float = 0.95,
                    budget: Budget | None = None) -> pd.DataFrame:
    """One row per setting of the non-replicate parameters: n runs and mean ± CI of each measure
    (the runs :func:`counted` at ``budget``), settings in the order of their values."""
    runs = counted(frame, budget)
    keys = [f"param.{p}" for p in params if p != replicate_key and f"param.{p}" in runs]
    if runs.empty:
        return pd.DataFrame()
    groups = runs.groupby(keys, dropna=False, sort=True) if keys else [((), runs)]
    rows = []
    for values, group in groups:
        values = values if isinstance(values, tuple) else (values,)
        row: dict[str, Any] = {k.removeprefix("param."): v for k, v in zip(keys, values)}
        row["n"] = len(group)
        for measure in measures:
            if measure in group:
                ci = mean_ci(pd.to_numeric(group[measure], errors="coerce").tolist(), confidence)
                row[f"{measure}_mean"], row[f"{measure}_low"], row[f"{measure}_high"] = ci.mean, ci.low, ci.high
        rows.append(row)
    return pd.DataFrame(rows)


