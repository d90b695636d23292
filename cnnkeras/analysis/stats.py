"""Small statistics for telling an effect from noise: means with confidence intervals, and trends.

Repeated seeds of one setting give a mean and a Student-t confidence interval
(:func:`mean_ci`). A claim such as "small learning rates overfit more" is a trend
of a measure (the final gap) against a parameter (log2 of the learning rate):
:func:`trend` fits it by ordinary least squares, with the other swept parameters
as covariates, and gives the slope with its confidence interval. A slope whose
interval excludes zero is an effect; one whose interval straddles zero is not
distinguishable from noise at that confidence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..lazy import lazy_import

stats = lazy_import("scipy.stats")

__all__ = ["MeanCI", "Trend", "mean_ci", "trend"]


@dataclass(frozen=True)
class MeanCI:
    """Mean of ``n`` values with a two-sided confidence interval [low, high] (NaN for n < 2)."""

    mean: float
    low: float
    high: float
    std: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def __str__(self) -> str:
        if self.n < 2:
            return f"{self.mean:.4f} (n=1)"
        return f"{self.mean:.4f} ± {self.half_width:.4f} (n={self.n})"


def _t(confidence: float, df: int) -> float:
    return float(stats.t.ppf((1 + confidence) / 2, df))


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> MeanCI:
    """Mean and Student-t confidence interval of finite ``values``.

    Example: ``mean_ci([1, 2, 3])`` is 2 ± 2.48 (t(0.975, 2) = 4.30, s = 1, n = 3).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1). Received: confidence={confidence}")
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return MeanCI(math.nan, math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n < 2:
        return MeanCI(mean, math.nan, math.nan, math.nan, 1)
    std = float(x.std(ddof=1))
    half = _t(confidence, n - 1) * std / math.sqrt(n)
    return MeanCI(mean, mean - half, mean + half, std, n)


@dataclass(frozen=True)
class Trend:
    """OLS slope of y on x (other covariates held fixed), with its confidence interval.

    ``residual_std`` is the spread left once the trend and covariates are removed: with
    repeated seeds, mostly seed-to-seed noise.
    """

    slope: float
    low: float
    high: float
    p_value: float
    n: int
    df: int
    residual_std: float

    @property
    def significant(self) -> bool:
        return self.df > 0 and (self.low > 0 or self.high < 0)


def trend(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, covariates: np.ndarray | None = None,
          confidence: float = 0.95) -> Trend:
    """Slope of ``y`` against ``x`` by least squares, ``y ~ 1 + x + covariates``.

    Args:
        x: the parameter (already transformed, e.g. log2 of the learning rate), shape ``(n,)``.
        y: the measure, shape ``(n,)``.
        covariates: other explanatory columns, shape ``(n, k)``, or None.
        confidence: of the slope's interval.

    Rows with a non-finite value are dropped. With no degrees of freedom left the
    interval is infinite.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    columns = [np.ones_like(x), x]
    if covariates is not None and np.size(covariates):
        cov = np.asarray(covariates, dtype=float).reshape(len(x), -1)
        columns += [cov[:, i] for i in range(cov.shape[1])]
    design = np.column_stack(columns)
    keep = np.isfinite(y) & np.all(np.isfinite(design), axis=1)
    design, y = design[keep], y[keep]
    # Drop covariates that are constant or duplicate earlier columns (rank-deficient designs).
    chosen: list[int] = []
    for j in range(design.shape[1]):
        trial = chosen + [j]
        if np.linalg.matrix_rank(design[:, trial]) == len(trial):
            chosen.append(j)
    n = len(y)
    if 1 not in chosen or n == 0:
        return Trend(math.nan, -math.inf, math.inf, math.nan, n, 0, math.nan)
    design = design[:, chosen]
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    df = n - design.shape[1]
    slope = float(coef[1])
    if df <= 0:
        return Trend(slope, -math.inf, math.inf, math.nan, n, 0, math.nan)
    residuals = y - design @ coef
    sigma2 = float(residuals @ residuals) / df
    se = math.sqrt(sigma2 * float(np.linalg.inv(design.T @ design)[1, 1]))
    if se == 0:
        return Trend(slope, slope, slope, 0.0 if slope else 1.0, n, df, 0.0)
    half = _t(confidence, df) * se
    p = float(2 * stats.t.sf(abs(slope) / se, df))
    return Trend(slope, slope - half, slope + half, p, n, df, math.sqrt(sigma2))
