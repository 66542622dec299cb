"""The statistics the verdict is built from: t bounds of a mean across units, Holm's step-down
correction, and a sample-size estimate. Array-valued where it matters, so the power calculator
pushes thousands of simulated studies through the very same functions as one real study.

>>> import numpy as np
>>> b = t_bounds(np.array([0.002, 0.004, -0.001, 0.003]), margin=0.01, alpha=0.05)
>>> bool(b.upper < 0.01), bool(b.p_below < 0.05)
(True, True)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.stats
from statsmodels.stats.power import TTestPower


@dataclass(frozen=True)
class Bounds:
    """One-sided (1 − α) bounds of a mean across the last axis, and the two one-sided p-values
    against the margin δ: ``p_below`` for H1 "mean < δ", ``p_above`` for H1 "mean > δ".
    Fewer than two units give infinite bounds and p-values of 1 (nothing can be decided)."""

    n: np.ndarray
    mean: np.ndarray
    se: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    p_below: np.ndarray
    p_above: np.ndarray


def t_bounds(values: np.ndarray, margin: float, alpha: float) -> Bounds:
    """Student-t bounds of the mean of ``values`` over its last axis (units are rows of data:
    pairs or teachers, never seeds). NaN entries are missing units."""
    values = np.asarray(values, dtype=float)
    present = ~np.isnan(values)
    n = present.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.nansum(values, -1) / np.maximum(n, 1), np.nan)
        centred = np.where(present, values - mean[..., None], 0.0)
        var = (centred**2).sum(-1) / np.maximum(n - 1, 1)
        se = np.sqrt(var) / np.sqrt(np.maximum(n, 1))
        df = np.maximum(n - 1, 1)
        q = scipy.stats.t.ppf(1.0 - alpha, df)
        lower = np.where(n >= 2, mean - q * se, -np.inf)
        upper = np.where(n >= 2, mean + q * se, np.inf)
        z = (mean - margin) / se
        # A spread of exactly zero: the mean is the answer, without sampling error.
        z = np.where(se > 0, z, np.sign(mean - margin) * np.inf)
        p_below = np.where(n >= 2, scipy.stats.t.cdf(z, df), 1.0)
        p_above = np.where(n >= 2, scipy.stats.t.sf(z, df), 1.0)
        tie = (n >= 2) & (se == 0) & (mean == margin)
        p_below = np.where(tie, 1.0, p_below)
        p_above = np.where(tie, 1.0, p_above)
    return Bounds(n, mean, se, lower, upper, p_below, p_above)


def holm_adjusted(pvalues: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values over the last axis (each row one family): the running maximum of
    (m − i)·p_(i) in sorted order, capped at 1. Vectorised, so thousands of simulated studies
    cost one sort; NaN p-values are not in the family and stay NaN. The test suite checks it
    against statsmodels' ``multipletests`` (one family per call, too slow for simulation)."""
    p = np.asarray(pvalues, dtype=float)
    if p.size == 0:
        return p.copy()
    flat = p.reshape(-1, p.shape[-1]) if p.ndim else p.reshape(1, 1)
    missing = np.isnan(flat)
    m = (~missing).sum(-1, keepdims=True)
    order = np.argsort(np.where(missing, np.inf, flat), axis=-1, kind="stable")
    ranked = np.take_along_axis(flat, order, -1)
    step = np.arange(flat.shape[-1])[None, :]
    scaled = np.minimum(1.0, (m - step) * ranked)
    scaled = np.where(step < m, scaled, -np.inf)  # NaNs sort last: keep them out of the max
    adjusted = np.maximum.accumulate(scaled, axis=-1)
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, -1)
    out[missing] = np.nan
    return out.reshape(p.shape)


def holm_reject(pvalues: np.ndarray, alpha: float) -> np.ndarray:
    """Holm's step-down rejections at level ``alpha`` over the last axis; NaN is never rejected."""
    adjusted = holm_adjusted(pvalues)
    return np.where(np.isnan(adjusted), False, adjusted <= alpha)


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float, float]:
    """Mean, two-sided ``level`` t interval and the two-sided p-value of "mean = 0" (scipy);
    NaN where fewer than two values."""
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if len(x) == 0:
        return (math.nan,) * 4
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan, math.nan
    if np.all(x == x[0]):
        return mean, mean, mean, (1.0 if mean == 0 else 0.0)
    with warnings.catch_warnings():  # nearly equal values: the t statistic is still right
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        result = scipy.stats.ttest_1samp(x, 0.0)
        ci = result.confidence_interval(level)
    return mean, float(ci.low), float(ci.high), float(result.pvalue)


def units_needed(
    distance: float, sd: float, alpha: float, power: float = 0.8, cap: int = 10_000
) -> int | None:
    """Units for a one-sided one-sample t test to reach ``power`` when the true mean lies
    ``distance`` beyond the margin on the side the test looks for (statsmodels' power of the
    t test, searched over whole numbers). ``None`` when the distance is not positive (no number
    of units decides it); at most ``cap``."""
    if not distance > 0 or math.isnan(sd):
        return None
    if not sd > 0:
        return 2
    effect = distance / sd
    analysis = TTestPower()

    def enough(n: int) -> bool:
        return analysis.power(effect, nobs=n, alpha=alpha, alternative="larger") >= power

    low, high = 1, 2
    while not enough(high):
        low, high = high, high * 2
        if high >= cap:
            return cap
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return high
