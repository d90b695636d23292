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
- **not enough runs**: fewer runs than the fit needs.

Repeated seeds (``report.replicate_key``, ``seed`` by default) are replicates:
they are never covariates, and their spread is reported as the noise level.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from ..config.checks import value_key
from ..config.schema import CategoricalParam, Claim, ExperimentConfig
from .stats import mean_ci, trend

__all__ = ["ClaimResult", "ParamScale", "evaluate_claim", "param_scales", "setting_summary"]

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
NOISE = "not distinguishable from noise"
TOO_FEW = "not enough runs"


@dataclass(frozen=True)
class ParamScale:
    """How a swept parameter enters a fit: ``log`` (log2), ``linear``, or ``levels`` (rank in ``order``)."""

    kind: str
    order: tuple[Any, ...] = ()

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
        if not isinstance(param, CategoricalParam):
            out[path] = ParamScale("log" if param.log else "linear")
            continue
        choices = list(param.choices)
        numeric = [c for c in choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
        if len(numeric) == len(choices) and len(choices) > 1:
            spans = min(numeric) > 0 and max(numeric) / min(numeric) >= 4
            out[path] = ParamScale("log" if spans else "linear")
        else:
            out[path] = ParamScale("levels", tuple(choices))
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
        if numeric.notna().all() and len(values):
            spans = numeric.min() > 0 and numeric.max() / numeric.min() >= 4
            out[path] = ParamScale("log" if spans else "linear")
        else:
            out[path] = ParamScale("levels", tuple(sorted(values.unique(), key=str)))
    return out


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

    @property
    def sentence(self) -> str:
        """The finding in one sentence with its numbers."""
        if self.verdict == TOO_FEW:
            return (f"{self.n_runs} finished run(s) over {self.n_values} value(s) of {self.parameter}: "
                    "too few to fit a trend (sweep more values or seeds).")
        pct = int(round(self.confidence * 100))
        held = f", holding {', '.join(self.covariates)} fixed" if self.covariates else ""
        noise = (f"; seed-to-seed spread (residual std) {self.noise_std:.4f}"
                 if math.isfinite(self.noise_std) else "")
        if self.levels is not None:  # two values: the difference between them says it plainly
            scale = self.change / self.slope if self.slope else 1.0
            low, high = sorted((self.low * scale, self.high * scale))
            effect = (f"{self.measure} changes by {self.change:+.4f} from {self.parameter}={self.levels[0]} to "
                      f"{self.levels[1]} ({pct}% CI {low:+.4f} to {high:+.4f}, p={self.p_value:.3g})")
        else:
            effect = (f"{self.measure} changes by {self.slope:+.4f} {self.unit} ({pct}% CI {self.low:+.4f} to "
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


def evaluate_claim(frame: pd.DataFrame, claim: Claim, scales: Mapping[str, ParamScale], *,
                   replicate_key: str = "seed", confidence: float = 0.95) -> ClaimResult:
    """Test ``claim`` on the finished runs of ``frame`` (a runs frame)."""
    runs = finished(frame)
    column = f"param.{claim.parameter}"
    base = ClaimResult(claim.claim, claim.parameter, claim.measure, claim.expect, TOO_FEW, confidence=confidence,
                       within=claim.range)
    if runs.empty or column not in runs or claim.measure not in runs:
        return base
    runs = runs[in_range(runs, claim.parameter, claim.range)]
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
        return base
    base.slope, base.low, base.high, base.p_value = fit.slope, fit.low, fit.high, fit.p_value
    base.noise_std = fit.residual_std
    base.change = fit.slope * float(np.nanmax(x[valid]) - np.nanmin(x[valid]))
    base.unit = scale.unit(claim.parameter.split(".")[-1])
    if n_values == 2:
        raw = runs[column][valid]
        order = np.argsort(x[valid], kind="stable")
        base.levels = tuple(v.item() if hasattr(v, "item") else v for v in (raw.iloc[order[0]], raw.iloc[order[-1]]))
    wanted = 1 if claim.expect == "increasing" else -1
    if fit.low > 0 or fit.high < 0:
        base.verdict = SUPPORTED if np.sign(fit.slope) == wanted else CONTRADICTED
    else:
        base.verdict = NOISE
    return base


def setting_summary(frame: pd.DataFrame, params: list[str], measures: list[str], *,
                    replicate_key: str = "seed", confidence: float = 0.95) -> pd.DataFrame:
    """One row per setting of the non-replicate parameters: n runs and mean ± CI of each measure."""
    runs = finished(frame)
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


